package tracing

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Observe adds v to o, with the trace id of ctx's span as the exemplar when
// the span is sampled (an unsampled trace is nowhere to be found, so it
// would be a dead link). Exemplars are exposed in the OpenMetrics format
// only (promhttp with EnableOpenMetrics).
func Observe(ctx context.Context, o prometheus.Observer, v float64) {
	sc := trace.SpanContextFromContext(ctx)
	if sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(v)
}
