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

// checkTrace is the traces part of TestDevEndToEnd (issue 15 item 4), on
// its running dev: a submission carrying a W3C traceparent runs an http
// step against a server of the test; that server receives a traceparent of
// the same trace, and the ingress's and the http step's call records in
// ClickHouse carry the trace id.
func (e *e2e) checkTrace(chAddr string) {
	e.t.Helper()
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Traceparent"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()

	// An inline definition: one http step to the test's server (the dev
	// tenant may call loopback addresses).
	body, _ := json.Marshal(map[string]any{
		"definition": map[string]any{"name": "traced", "version": "1",
			"steps":  []any{map[string]any{"id": "call", "kind": "http", "url": srv.URL + "/traced", "method": "POST", "body": map[string]any{"x": 1}}},
			"output": "${{ steps.call.output.body }}"},
		"input": map[string]any{},
	})
	req, _ := http.NewRequest(http.MethodPost, e.api+"/v1/workflows", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
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
	mu.Lock()
	got := append([]string(nil), seen...)
	mu.Unlock()
	if len(got) == 0 {
		e.t.Fatal("the http step never reached the test's server")
	}
	for _, tp := range got {
		// 00-<trace id>-<the client span's id>-<flags>
		if parts := strings.Split(tp, "-"); len(parts) != 4 || parts[1] != traceID || parts[2] == "00f067aa0ba902b7" {
			e.t.Errorf("outbound traceparent %q: want trace %s and a span of our own", tp, traceID)
		}
	}

	e.waitRecords(chAddr, map[string][]string{sub.ID: {"http", "ingress"}})
	conn := e.clickhouse(chAddr)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT kind, target, trace_id, span_id FROM calls FINAL WHERE workflow_id = ? ORDER BY kind", "dev/"+sub.ID)
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
