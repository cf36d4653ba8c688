package tracing

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// discardExporter takes spans and drops them.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

func newTracing(t testing.TB, exporter sdktrace.SpanExporter) *Tracing {
	t.Helper()
	tr, err := New(context.Background(), Options{Service: "test", Exporter: exporter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr
}

func TestStartServer(t *testing.T) {
	cases := []struct {
		name        string
		tr          *Tracing
		traceparent string
		// wantCaller: the caller's trace continues; else a new trace
		// (wantNew) or none at all.
		wantCaller, wantNew, wantSampled bool
	}{
		{name: "caller's sampled trace, no exporter", tr: newTracing(t, nil), traceparent: "00-" + callerTrace + "-" + callerSpan + "-01", wantCaller: true, wantSampled: true},
		{name: "caller's unsampled trace", tr: newTracing(t, nil), traceparent: "00-" + callerTrace + "-" + callerSpan + "-00", wantCaller: true},
		{name: "no traceparent: a new unsampled trace", tr: newTracing(t, nil), wantNew: true},
		{name: "no traceparent, exporting: a new sampled trace", tr: newTracing(t, discardExporter{}), wantNew: true, wantSampled: true},
		{name: "garbage traceparent: a new trace", tr: newTracing(t, nil), traceparent: "00-zz-yy-01", wantNew: true},
		{name: "nil tracing passes the caller's trace on", tr: nil, traceparent: "00-" + callerTrace + "-" + callerSpan + "-01", wantCaller: true, wantSampled: true},
		{name: "nil tracing makes no trace", tr: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if c.traceparent != "" {
				r.Header.Set("Traceparent", c.traceparent)
			}
			ctx, span := c.tr.StartServer(r, "GET /")
			defer span.End()
			tid, sid, sampled := IDs(ctx)
			switch {
			case c.wantCaller && (tid != callerTrace || sid == "" || sampled != c.wantSampled):
				t.Errorf("ids %s %s sampled=%v, want the caller's trace, sampled=%v", tid, sid, sampled, c.wantSampled)
			case c.wantCaller && c.tr != nil && sid == callerSpan:
				t.Errorf("span id is the caller's")
			case c.wantNew && (len(tid) != 32 || tid == callerTrace || sampled != c.wantSampled):
				t.Errorf("ids %s %s sampled=%v, want a new trace, sampled=%v", tid, sid, sampled, c.wantSampled)
			case !c.wantCaller && !c.wantNew && tid != "":
				t.Errorf("ids %s %s, want none", tid, sid)
			}
		})
	}
}

func TestTransportInjects(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Traceparent")
	}))
	defer srv.Close()
	for _, tr := range []*Tracing{nil, newTracing(t, nil), newTracing(t, discardExporter{})} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: mustTraceID(t), SpanID: mustSpanID(t), TraceFlags: trace.FlagsSampled, Remote: true})
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		resp, err := (&http.Client{Transport: tr.Transport(nil)}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		tp := <-got
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[1] != callerTrace || parts[3] != "01" {
			t.Errorf("traceparent %q: want trace %s, sampled", tp, callerTrace)
		}
		// Exporting, the request has a client span of its own;
		// otherwise the caller's span is the parent.
		if own := tr != nil && tr.exporting; own == (parts[2] == callerSpan) {
			t.Errorf("traceparent %q: client span of its own: want %v", tp, own)
		}
	}
}

func TestObserveExemplar(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: []float64{1}})
		flags := trace.TraceFlags(0)
		if sampled {
			flags = trace.FlagsSampled
		}
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: mustTraceID(t), SpanID: mustSpanID(t), TraceFlags: flags}))
		Observe(ctx, h, 0.5)
		var m dto.Metric
		if err := h.Write(&m); err != nil {
			t.Fatal(err)
		}
		ex := m.GetHistogram().GetBucket()[0].GetExemplar()
		switch {
		case sampled && (ex == nil || ex.GetLabel()[0].GetValue() != callerTrace):
			t.Errorf("sampled: exemplar %v, want trace %s", ex, callerTrace)
		case !sampled && ex != nil:
			t.Errorf("unsampled: exemplar %v, want none", ex)
		}
		if m.GetHistogram().GetSampleCount() != 1 {
			t.Errorf("count %d", m.GetHistogram().GetSampleCount())
		}
	}
}

func TestCheckEndpoint(t *testing.T) {
	for ep, ok := range map[string]bool{"": true, "http://otel:4317": true, "https://otel.example:4317": true,
		"otel:4317": false, "grpc://otel:4317": false, "http://": false} {
		if err := CheckEndpoint(ep); (err == nil) != ok || (err != nil && !errors.Is(err, ErrEndpoint)) {
			t.Errorf("%q: %v", ep, err)
		}
	}
}

func mustTraceID(t testing.TB) trace.TraceID {
	id, err := trace.TraceIDFromHex(callerTrace)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustSpanID(t testing.TB) trace.SpanID {
	id, err := trace.SpanIDFromHex(callerSpan)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// BenchmarkOutboundCall is the activity's outbound call path, one request
// to a loopback server, under each set-up in one run: bare (the transport
// alone, as before tracing), nil (wrapped, no tracing: the caller's
// traceparent passed on), ids (no exporter: the same, the default) and
// exported (a client span recorded, handed to an exporter that drops it).
// The request's context holds the activity's span, as under Temporal's
// interceptor.
func BenchmarkOutboundCall(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	base := http.DefaultTransport.(*http.Transport).Clone()
	ids, exported := newTracing(b, nil), newTracing(b, discardExporter{})
	cases := []struct {
		name string
		rt   http.RoundTripper
		tr   *Tracing
	}{
		{"bare", base, nil},
		{"nil", (*Tracing)(nil).Transport(base), nil},
		{"ids", ids.Transport(base), ids},
		{"exported", exported.Transport(base), exported},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			cl := &http.Client{Transport: c.rt}
			// The activity's span: an unsampled one without an exporter,
			// a sampled one with.
			ctx, span := c.tr.Tracer().Start(context.Background(), "activity")
			defer span.End()
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
				resp, err := cl.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkServerSpan is what the ingress adds per request, alone: the
// server span started (from the request's headers) and ended, and the ids
// read for the call record, under each set-up in one run.
func BenchmarkServerSpan(b *testing.B) {
	ids, exported := newTracing(b, nil), newTracing(b, discardExporter{})
	cases := []struct {
		name        string
		tr          *Tracing
		traceparent string
	}{
		{"nil", nil, ""},
		{"ids", ids, ""},
		{"ids-caller-unsampled", ids, "00-" + callerTrace + "-" + callerSpan + "-00"},
		{"exported", exported, ""},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest("POST", "/v1/workflows", nil)
			if c.traceparent != "" {
				r.Header.Set("Traceparent", c.traceparent)
			}
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := c.tr.StartServer(r, "POST /v1/workflows")
				_, _, _ = IDs(ctx)
				span.End()
			}
		})
	}
}
