package ingress

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gateflow/gateflow/activities/tracing"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// benchOrch answers Start at once, so the benchmarks measure the gateway.
type benchOrch struct{ *fakeOrch }

func (benchOrch) Start(context.Context, orchestrator.Caller, orchestrator.StartRequest) (orchestrator.StartResult, error) {
	return orchestrator.StartResult{ID: "0190c7d2-aaaa-7bbb-8ccc-000000000000", RunID: "r", Definition: "order", Version: "1", Created: true}, nil
}

const benchBody = `{"definition":"order","version":"1","input":{"customer":"c-42","items":[{"sku":"a-1","qty":2},{"sku":"b-7","qty":1}],"amount":129.5},"labels":{"team":"checkout"}}`

// BenchmarkMiddlewareChain is one submission through the whole ingress
// (request id, metrics, access log at info to a discarding handler, call
// record, auth, rate limit, body limit, strict decoding and validation),
// with an orchestrator that answers at once.
func BenchmarkMiddlewareChain(b *testing.B) {
	benchSubmit(b, nil, "")
}

// benchSubmit submits through the whole chain with tr (nil: no tracing)
// and, when set, the caller's traceparent: the loop BenchmarkMiddlewareChain
// and BenchmarkTracing share.
func benchSubmit(b *testing.B, tr *tracing.Tracing, traceparent string) {
	h := newHarness(b, func(d *Deps, c *Config) {
		d.Orchestrator = benchOrch{newFake(b)}
		d.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
		d.Tracing = tr
		c.KeyLimit = ratelimit.Limit{RPS: 1e9, Burst: 1e9}
		c.TenantLimit = ratelimit.Limit{RPS: 1e9, Burst: 1e9}
	})
	token := "Bearer " + testKeys["submitter"].token
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/workflows", strings.NewReader(benchBody))
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		if traceparent != "" {
			req.Header.Set("Traceparent", traceparent)
		}
		w := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(w, req)
		if w.Code != 201 {
			b.Fatal(w.Code, w.Body)
		}
	}
}

// BenchmarkBareHandler is the bare alternative: a net/http handler that
// decodes the same body with encoding/json and answers the same JSON,
// without any gateway duty.
func BenchmarkBareHandler(b *testing.B) {
	orch := benchOrch{}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body StartBody
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var name string
		_ = json.Unmarshal(body.Definition, &name)
		res, _ := orch.Start(r.Context(), orchestrator.Caller{}, orchestrator.StartRequest{Definition: name, Input: body.Input})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(StartResponse{ID: res.ID, RunID: res.RunID, Definition: res.Definition, Version: res.Version})
	})
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/workflows", strings.NewReader(benchBody))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		bare.ServeHTTP(w, req)
		if w.Code != 201 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkDecodeStart is the strict decoding and validation alone.
func BenchmarkDecodeStart(b *testing.B) {
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeStart(body, 32); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTracing is BenchmarkMiddlewareChain under each tracing set-up,
// in one run: off (no Tracing: a caller's traceparent is passed on, no ids
// made), ids (the default without an exporter: a trace id made per request,
// nothing recorded), ids with the caller's unsampled traceparent, and
// exported (every span recorded and handed to an exporter that drops it).
func BenchmarkTracing(b *testing.B) {
	ids, err := tracing.New(context.Background(), tracing.Options{Service: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	exported, err := tracing.New(context.Background(), tracing.Options{Service: "bench", Exporter: discardExporter{}, SampleRatio: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer exported.Shutdown(context.Background())
	cases := []struct {
		name        string
		tr          *tracing.Tracing
		traceparent string
	}{
		{"off", nil, ""},
		{"ids", ids, ""},
		{"ids-caller-unsampled", ids, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		{"exported", exported, ""},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { benchSubmit(b, c.tr, c.traceparent) })
	}
}

// discardExporter takes spans and drops them.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }
