//go:build integration

package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// TestDevOTLPExport proves that spans reach an OTLP/gRPC collector through
// the real stack (issue 15 item 4): `gateflow dev` exporting to a
// collector of the test (OTEL_EXPORTER_OTLP_ENDPOINT, which dev's parts
// read when --otlp-endpoint is not given; OTEL_EXPORTER_OTLP_HEADERS sends
// a credential), a submission carrying a traceparent that runs an http
// step and a model step. The collector gets, in the caller's trace, the
// ingress's server span (child of the caller's span), the Temporal
// interceptor's StartWorkflow, RunWorkflow, StartActivity and RunActivity
// spans and the worker's outbound HTTP client spans (the one the http
// step's server saw in its traceparent, and the model call's); every span's
// parent is a span of the trace or the caller's; each resource names its
// service; the call records in ClickHouse carry the trace id.
//
// Then the collector goes away (its port closed): a request still
// succeeds within a bound, the failed export is logged as a warning of
// the part that exported (not as the embedded Temporal server's error),
// dev still stops in time, and the credential of the exporter's headers
// appears in no log.
func TestDevOTLPExport(t *testing.T) {
	const (
		traceID = "5a1e0c7d2b9f4e6a8c3d1f0b7e2a9c4d"
		secret  = "otlp-secret-4711"
	)
	col := startOTLPCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+col.addr)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20"+secret)
	// One export attempt (with its retries) gives up after 5 s instead of
	// 10 s, so that the failure part sees its error sooner.
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5000")

	e := startDevE2E(t)

	srv := newTraceparentServer()
	defer srv.Close()
	steps := []any{
		map[string]any{"id": "call", "kind": "http", "url": srv.URL + "/traced", "method": "POST", "body": map[string]any{"x": 1}},
		map[string]any{"id": "note", "kind": "model", "model": "demo/echo", "prompt": "Say hello.", "max_tokens": 20},
	}
	id := e.submitTraced(traceID, steps, "${{ steps.call.output.body }}")
	tps := srv.seen()
	if len(tps) != 1 {
		t.Fatalf("the http step's server got %d requests, want 1: %v", len(tps), tps)
	}
	parts := strings.Split(tps[0], "-")
	if len(parts) != 4 || parts[1] != traceID {
		t.Fatalf("outbound traceparent %q: want trace %s", tps[0], traceID)
	}
	httpSpanID := parts[2]

	// Spans are batched (2 s in activities/tracing): wait, bounded, until
	// every expected span is in and every parent is known.
	var spans []gotSpan
	var problems []string
	e.poll("spans of trace "+traceID+" at the collector", 60*time.Second, func() (bool, string) {
		spans = col.trace(traceID)
		problems = checkOTLPTrace(spans, httpSpanID)
		return len(problems) == 0, strings.Join(problems, "; ")
	})
	for _, s := range spans {
		t.Logf("span %s/%s parent %s %s %s (%s)", s.traceID[:8], s.spanID, s.parentID, s.kind, s.name, s.service)
	}
	if got := col.header("authorization"); !slices.Contains(got, "Bearer "+secret) {
		t.Errorf("collector got authorization %q: OTEL_EXPORTER_OTLP_HEADERS not sent", got)
	}
	chAddr := "127.0.0.1:" + strconv.Itoa(e.ports.ch)
	e.checkTraceRecords(chAddr, id, traceID, []string{"http", "ingress", "model"})

	// The collector goes away: requests still succeed, and the failed
	// export is logged without the exporter's credential.
	col.stop()
	const traceID2 = "6b2f1d8e3cae5f7b9d4e2a1c8f3bad5e"
	e.submitTraced(traceID2, steps[:1], "${{ steps.call.output.body }}")
	logPath := filepath.Join(e.dir, "logs", "gateflow.log")
	const failed = "trace spans not exported"
	// Usually ~7 s (the 2 s batch, then the 5 s export timeout); once, at
	// load ~20 with two other dev stacks running, not within a minute (not
	// understood): the bound is generous.
	e.poll("the failed export in dev's log", 2*time.Minute, func() (bool, string) {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), failed), "no line " + failed
	})
	e.dev.stop(t)
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"gateflow.log": string(b), "stderr": e.dev.stderr.String()} {
		if strings.Contains(text, secret) {
			t.Errorf("%s holds the OTLP header's credential", name)
		}
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, failed) {
				t.Logf("%s: %s", name, line)
			}
		}
	}
}

// checkOTLPTrace lists what the spans of one trace lack: the ingress's
// server span (child of the caller's span), the Temporal interceptor's
// spans, the http step's client span (httpSpanID, the span id its server
// saw) and the model call's, service names, and parents inside the trace.
func checkOTLPTrace(spans []gotSpan, httpSpanID string) []string {
	var problems []string
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.spanID] = true
	}
	find := func(what string, ok func(gotSpan) bool) *gotSpan {
		for i, s := range spans {
			if ok(s) {
				return &spans[i]
			}
		}
		problems = append(problems, "no "+what)
		return nil
	}
	find("ingress server span POST /v1/workflows, child of the caller's span", func(s gotSpan) bool {
		return s.service == "gateflow-ingress" && s.kind == tracepb.Span_SPAN_KIND_SERVER &&
			s.name == "POST /v1/workflows" && s.parentID == callerSpanID
	})
	for _, w := range []struct{ service, prefix string }{
		{"gateflow-ingress", "StartWorkflow:"},
		{"gateflow-worker", "RunWorkflow:"},
		{"gateflow-worker", "StartActivity:"},
		{"gateflow-worker", "RunActivity:"},
	} {
		find(w.service+" span "+w.prefix+"*", func(s gotSpan) bool {
			return s.service == w.service && strings.HasPrefix(s.name, w.prefix)
		})
	}
	find("http step's client span "+httpSpanID, func(s gotSpan) bool {
		return s.service == "gateflow-worker" && s.kind == tracepb.Span_SPAN_KIND_CLIENT && s.spanID == httpSpanID && s.name == "HTTP POST"
	})
	find("model call's client span", func(s gotSpan) bool {
		return s.service == "gateflow-worker" && s.kind == tracepb.Span_SPAN_KIND_CLIENT && s.spanID != httpSpanID && s.name == "HTTP POST"
	})
	for _, s := range spans {
		if s.service == "" {
			problems = append(problems, fmt.Sprintf("span %s %s: resource without service.name", s.spanID, s.name))
		}
		if s.parentID != callerSpanID && !ids[s.parentID] {
			problems = append(problems, fmt.Sprintf("span %s %s (%s): parent %q not in the trace", s.spanID, s.name, s.service, s.parentID))
		}
	}
	return problems
}

// gotSpan is a span as the collector received it.
type gotSpan struct {
	traceID, spanID, parentID string
	name, service             string
	kind                      tracepb.Span_SpanKind
}

// otlpCollector is a minimal OTLP/gRPC trace receiver on loopback.
type otlpCollector struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string
	srv  *grpc.Server

	mu      sync.Mutex
	spans   []gotSpan
	headers metadata.MD
}

func startOTLPCollector(t *testing.T) *otlpCollector {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &otlpCollector{addr: l.Addr().String(), srv: grpc.NewServer(), headers: metadata.MD{}}
	collectortrace.RegisterTraceServiceServer(c.srv, c)
	go func() { _ = c.srv.Serve(l) }()
	t.Cleanup(c.stop)
	return c
}

// stop closes the listener and every connection; idempotent.
func (c *otlpCollector) stop() { c.srv.Stop() }

// Export stores the spans of a request.
func (c *otlpCollector) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for k, v := range md {
			c.headers[k] = append(c.headers[k], v...)
		}
	}
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, gotSpan{
					traceID: hex.EncodeToString(s.GetTraceId()), spanID: hex.EncodeToString(s.GetSpanId()),
					parentID: hex.EncodeToString(s.GetParentSpanId()),
					name:     s.GetName(), service: service, kind: s.GetKind(),
				})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// trace returns the spans received of one trace.
func (c *otlpCollector) trace(traceID string) []gotSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []gotSpan
	for _, s := range c.spans {
		if s.traceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// header returns the values of a gRPC metadata key received.
func (c *otlpCollector) header(key string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.headers[key]...)
}
