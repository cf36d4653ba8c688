package ingress

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gateflow/gateflow/activities/tracing"
)

// metrics are the ingress's Prometheus collectors.
type metrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	inFlight    prometheus.Gauge
	rateLimited *prometheus.CounterVec
	streams     prometheus.Gauge
	// streamsRefused counts streams refused at a cap, by scope.
	streamsRefused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateflow_ingress_requests_total",
			Help: "Ingress requests by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateflow_ingress_request_duration_seconds",
			Help:    "Ingress request latency by method and route pattern (event streams: their whole duration).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateflow_ingress_in_flight_requests",
			Help: "Requests being served.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateflow_ingress_rate_limited_total",
			Help: "Requests refused with 429, by the bucket that refused (key or tenant).",
		}, []string{"scope"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateflow_ingress_event_streams",
			Help: "Open long-lived responses: SSE status streams, streamed chat completions, MCP requests.",
		}),
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateflow_ingress_streams_refused_total",
			Help: "Long-lived responses refused with 429 at the per-key or per-tenant cap, by scope.",
		}, []string{"scope"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.inFlight, m.rateLimited, m.streams, m.streamsRefused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ingress: register metrics: %w", err)
		}
	}
	return m, nil
}

// observe counts a request and its latency; a request in a sampled trace
// leaves its trace id as the bucket's exemplar, so a slow bucket on a
// dashboard links to a trace of it.
func (m *metrics) observe(ctx context.Context, method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	tracing.Observe(ctx, m.latency.WithLabelValues(method, route), d.Seconds())
}
