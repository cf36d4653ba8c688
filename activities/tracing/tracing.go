// Package tracing is the one home of distributed tracing: the process's
// tracer provider (OTLP export off by default), the W3C Trace Context
// propagator, and the wrappers that carry a trace across the ingress, the
// Temporal workflow and every outbound HTTP, model and MCP call.
//
// Without an exporter, spans are not recorded, but trace ids are still made
// at the ingress (or taken from the caller's traceparent) and passed on, so
// every call record of one request carries the same trace id and outbound
// calls carry a traceparent. docs/TRACING.md describes it for operators.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// InstrumentationName names the tracer of Gateflow's own spans.
const InstrumentationName = "github.com/gateflow/gateflow"

// Tracing is a process's tracer provider and propagator. The zero value
// (and nil) traces nothing but still passes an incoming traceparent on.
type Tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	tracer     trace.Tracer
	shutdown   func(context.Context) error
	// exporting: spans are recorded and exported (an endpoint or an
	// exporter was given).
	exporting bool
}

// Options configure New.
type Options struct {
	// Service is the service.name of exported spans (gateflow-ingress,
	// gateflow-worker).
	Service string
	// Endpoint is the OTLP/gRPC collector URL (http://host:4317 for
	// plain text, https://host:4317 for TLS). Empty: no export, and spans
	// are not recorded (trace ids are still made and passed on).
	Endpoint string
	// SampleRatio is the share of new traces recorded and exported when
	// Endpoint is set (a caller's sampled flag is followed).
	SampleRatio float64
	// Exporter replaces the OTLP exporter (tests); it turns recording on.
	Exporter sdktrace.SpanExporter
	// Log receives failed exports (nil: OpenTelemetry's global error
	// handler does).
	Log *slog.Logger
}

// ErrEndpoint is wrapped by refusals of an OTLP endpoint.
var ErrEndpoint = errors.New("bad OTLP endpoint")

// CheckEndpoint reports whether endpoint is usable as Options.Endpoint.
func CheckEndpoint(endpoint string) error {
	if endpoint == "" {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w %q: want http://host:port (plain text) or https://host:port", ErrEndpoint, endpoint)
	}
	return nil
}

// New returns the process's tracing. Shutdown flushes the exporter.
func New(ctx context.Context, opts Options) (*Tracing, error) {
	exp := opts.Exporter
	if exp == nil && opts.Endpoint != "" {
		if err := CheckEndpoint(opts.Endpoint); err != nil {
			return nil, err
		}
		var err error
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(opts.Endpoint))
		if err != nil {
			return nil, fmt.Errorf("OTLP exporter %s: %w", opts.Endpoint, err)
		}
	}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", opts.Service))),
	}
	if exp != nil && opts.Log != nil {
		exp = &loggedExporter{SpanExporter: exp, log: opts.Log}
	}
	if exp != nil {
		ratio := opts.SampleRatio
		if ratio <= 0 || ratio > 1 {
			ratio = 1
		}
		tpOpts = append(tpOpts,
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
			sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(2*time.Second)))
	} else {
		// No exporter: new traces get ids but are never recorded; a
		// caller's sampled trace is recorded (for nobody) so that its
		// sampled flag reaches the services we call unchanged.
		tpOpts = append(tpOpts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	return &Tracing{
		provider:   tp,
		propagator: Propagator(),
		tracer:     tp.Tracer(InstrumentationName),
		shutdown:   tp.Shutdown,
		exporting:  exp != nil,
	}, nil
}

// Propagator is W3C Trace Context (traceparent, tracestate) alone:
// baggage sent by a client is not taken, so that nothing a caller puts in
// it reaches Temporal's history or the services we call.
func Propagator() propagation.TextMapPropagator {
	return propagation.TraceContext{}
}

// Provider returns the tracer provider (a no-op one for nil).
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil || t.provider == nil {
		return noop.NewTracerProvider()
	}
	return t.provider
}

// TextMapPropagator returns the propagator (W3C for nil).
func (t *Tracing) TextMapPropagator() propagation.TextMapPropagator {
	if t == nil || t.propagator == nil {
		return Propagator()
	}
	return t.propagator
}

// Tracer returns the tracer of Gateflow's own spans.
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil || t.tracer == nil {
		return t.Provider().Tracer(InstrumentationName)
	}
	return t.tracer
}

// Shutdown flushes and stops the exporter; nil-safe.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// serverSpan are the options of server spans (a variable: no allocation
// per request).
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// StartServer starts the server span of an incoming request, continuing the
// caller's traceparent when it sent a valid one. End the span when done.
// With nil, no span is made: the caller's span context, if any, is passed
// on as it is.
func (t *Tracing) StartServer(r *http.Request, name string) (context.Context, trace.Span) {
	ctx := r.Context()
	if _, ok := r.Header["Traceparent"]; ok {
		ctx = t.TextMapPropagator().Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	if t == nil || t.tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx, span := t.tracer.Start(ctx, name, serverSpan...)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("http.request.method", r.Method))
	}
	return ctx, span
}

// Transport wraps base (nil: http.DefaultTransport) so that every request
// made with a context holding a span carries a traceparent. When spans are
// exported, each request also gets a client span of its own (otelhttp);
// otherwise the caller's span context is injected as it is, which costs a
// header copy instead of otelhttp's wrapping (a client span nobody
// receives would only cost).
func (t *Tracing) Transport(base http.RoundTripper) *TracedTransport {
	if base == nil {
		base = http.DefaultTransport
	}
	tt := &TracedTransport{Base: base, propagator: t.TextMapPropagator()}
	if t != nil && t.exporting {
		tt.traced = otelhttp.NewTransport(base,
			otelhttp.WithTracerProvider(t.Provider()),
			otelhttp.WithPropagators(t.TextMapPropagator()),
			// Metrics are Prometheus's job here; no global meter.
			otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method }),
		)
	}
	return tt
}

// TracedTransport is a transport that passes the trace on around Base.
type TracedTransport struct {
	// Base sends the requests.
	Base       http.RoundTripper
	propagator propagation.TextMapPropagator
	// traced is Base with client spans (otelhttp); nil: inject only.
	traced http.RoundTripper
}

// RoundTrip sends r through Base with the trace context of r's context.
func (t *TracedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.traced != nil {
		return t.traced.RoundTrip(r)
	}
	if !trace.SpanContextFromContext(r.Context()).IsValid() {
		return t.Base.RoundTrip(r)
	}
	// A RoundTripper must not change the caller's request.
	out := new(http.Request)
	*out = *r
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	t.propagator.Inject(r.Context(), propagation.HeaderCarrier(out.Header))
	return t.Base.RoundTrip(out)
}

// CloseIdleConnections closes Base's idle connections.
func (t *TracedTransport) CloseIdleConnections() {
	if c, ok := t.Base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// IDs returns the trace and span ids of the span in ctx as lower-case hex,
// and whether the span is sampled (recorded and exported); empty strings
// when ctx holds no valid span.
func IDs(ctx context.Context) (traceID, spanID string, sampled bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", "", false
	}
	return sc.TraceID().String(), sc.SpanID().String(), sc.IsSampled()
}

// Inject writes the W3C traceparent (and tracestate) of ctx's span into h,
// for requests not made through Transport (the gateway's forwarded ones).
func Inject(ctx context.Context, h http.Header) {
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}
