//go:build integration

package worker_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
)

// TestResponsesFitTemporalPayloads: a service response that would not fit
// Temporal's payload limit (2 MiB by default) fails its step with class
// too_large and a clear message, rather than an activity result Temporal
// refuses (issue 10 item 9): by the response cap (1 MiB by default), or
// once encoded (text that JSON escaping multiplies).
func TestResponsesFitTemporalPayloads(t *testing.T) {
	ts := newServer(t)
	c := ts.GetDefaultClient()
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"blob": %q}`, strings.Repeat("a", 3<<20)) // within the old 10 MiB cap
		case "/escaped":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, strings.Repeat("<>", 400<<10)) // 800 KiB, 4.8 MiB as a JSON string
		}
	}))
	defer svc.Close()
	startWorker(t, c, "payloadlimit", worker.Deps{Services: staticServices{"svc": svc.URL}})

	for _, path := range []string{"/json", "/escaped"} {
		t.Run(path, func(t *testing.T) {
			id := "payloadlimit" + strings.ReplaceAll(path, "/", "-")
			d := mustDef(t, `{"steps": [{"id": "get", "kind": "http", "service": "svc", "path": "`+path+`", "retry": {"max_attempts": 1}}]}`)
			run := start(t, c, "payloadlimit", id, orchestration(d, `{}`))
			if _, err := resultOf(t, run, 60*time.Second); err == nil {
				t.Fatal("the workflow succeeded")
			}
			st := stepStatus(queryStatus(t, c, id), "get")
			if st.State != workflows.StepFailed || !strings.Contains(st.Error, "GET svc"+path) ||
				!(strings.Contains(st.Error, "larger than") || strings.Contains(st.Error, "once encoded")) {
				t.Errorf("step %s: %q, want a %s failure naming the limit", st.State, st.Error, calls.ClassTooLarge)
			}
		})
	}
}
