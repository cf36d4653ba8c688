//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// callerSpanID is the parent span id of the traceparent the trace tests
// send, as a caller of the ingress would.
const callerSpanID = "00f067aa0ba902b7"

// checkTrace is the traces part of TestDevEndToEnd (issue 15 item 4), on
// its running dev: a submission carrying a W3C traceparent runs an http
// step against a server of the test; that server receives a traceparent of
// the same trace, and the ingress's and the http step's call records in
// ClickHouse carry the trace id.
func (e *e2e) checkTrace(chAddr string) {
	e.t.Helper()
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	srv := newTraceparentServer()
	defer srv.Close()

	// An inline definition: one http step to the test's server (the dev
	// tenant may call loopback addresses).
	id := e.submitTraced(traceID, []any{
		map[string]any{"id": "call", "kind": "http", "url": srv.URL + "/traced", "method": "POST", "body": map[string]any{"x": 1}},
	}, "${{ steps.call.output.body }}")
	got := srv.seen()
	if len(got) == 0 {
		e.t.Fatal("the http step never reached the test's server")
	}
	for _, tp := range got {
		// 00-<trace id>-<the client span's id>-<flags>
		if parts := strings.Split(tp, "-"); len(parts) != 4 || parts[1] != traceID || parts[2] == callerSpanID {
			e.t.Errorf("outbound traceparent %q: want trace %s and a span of our own", tp, traceID)
		}
	}
	e.checkTraceRecords(chAddr, id, traceID, []string{"http", "ingress"})
}

// traceparentServer is an http step's target that notes the traceparent
// of every request.
type traceparentServer struct {
	*httptest.Server
	mu          sync.Mutex
	traceparent []string
}

func newTraceparentServer() *traceparentServer {
	s := &traceparentServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.traceparent = append(s.traceparent, r.Header.Get("Traceparent"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	return s
}

// seen returns the traceparents received so far.
func (s *traceparentServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.traceparent...)
}

// submitTraced submits an inline definition of these steps with the
// traceparent 00-traceID-callerSpanID-01, waits until it succeeds and
// returns its id.
func (e *e2e) submitTraced(traceID string, steps []any, output string) string {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{
		"definition": map[string]any{"name": "traced", "version": "1", "steps": steps, "output": output},
		"input":      map[string]any{},
	})
	req, _ := http.NewRequest(http.MethodPost, e.api+"/v1/workflows", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", "00-"+traceID+"-"+callerSpanID+"-01")
	cl := &http.Client{Timeout: 30 * time.Second} // a bound: submitting must not hang
	resp, err := cl.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	var sub struct{ ID string }
	err = json.NewDecoder(resp.Body).Decode(&sub)
	resp.Body.Close()
	if err != nil || resp.StatusCode/100 != 2 || sub.ID == "" {
		e.t.Fatalf("traced submit: %s %v %+v", resp.Status, err, sub)
	}
	if st := e.watch(sub.ID); st.State != "succeeded" {
		e.t.Fatalf("traced run: %+v", st)
	}
	return sub.ID
}

// checkTraceRecords waits for call records of these kinds of workflow id
// in ClickHouse and checks that each carries traceID and a span id, and
// that the submission has exactly one ingress record.
func (e *e2e) checkTraceRecords(chAddr, id, traceID string, kinds []string) {
	e.t.Helper()
	e.waitRecords(chAddr, map[string][]string{id: kinds})
	conn := e.clickhouse(chAddr)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT kind, target, trace_id, span_id FROM calls FINAL WHERE workflow_id = ? ORDER BY kind", "dev/"+id)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	submits := 0
	for rows.Next() {
		var kind, target, tid, sid string
		if err := rows.Scan(&kind, &target, &tid, &sid); err != nil {
			e.t.Fatal(err)
		}
		if kind == "ingress" && target != "POST /v1/workflows" {
			continue // the CLI's watch: a request (and trace) of its own
		}
		if kind == "ingress" {
			submits++
		}
		if tid != traceID || len(sid) != 16 {
			e.t.Errorf("%s record %s: trace_id %q span_id %q, want trace %s", kind, target, tid, sid, traceID)
		}
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	if submits != 1 {
		e.t.Errorf("%d ingress records of the submission, want 1", submits)
	}
}
