//go:build integration

package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
)

// hits records when each path was called.
type hits struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (h *hits) add(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at == nil {
		h.at = map[string][]time.Time{}
	}
	h.at[path] = append(h.at[path], time.Now())
	return len(h.at[path])
}

func (h *hits) times(path string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.at[path]...)
}

// TestRetriesFollowBackoff runs http steps against a service that fails,
// is slow, or answers a non-retryable status, and checks the attempts the
// service saw against the configured backoff, plus the call records.
func TestRetriesFollowBackoff(t *testing.T) {
	ts := newServer(t)
	c := ts.GetDefaultClient()
	var h hits
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := h.add(r.URL.Path)
		switch r.URL.Path {
		case "/flaky":
			if n <= 2 {
				http.Error(w, "try again", http.StatusInternalServerError)
				return
			}
			fmt.Fprint(w, `{"ok": true}`)
		case "/slow":
			if n == 1 {
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
				return
			}
			fmt.Fprint(w, `{"fast": true}`)
		case "/bad":
			http.Error(w, `{"error": "invalid order"}`, http.StatusUnprocessableEntity)
		}
	}))
	defer svc.Close()
	recs := &recordtest.Sink{}
	startWorker(t, c, "retries", worker.Deps{Services: staticServices{"svc": svc.URL}, Recorder: recs})

	d := mustDef(t, `{"steps": [
		{"id": "flaky", "kind": "http", "service": "svc", "path": "/flaky", "retry": {"max_attempts": 5, "initial_interval": "300ms", "backoff_coefficient": 2}},
		{"id": "slow", "kind": "http", "service": "svc", "path": "/slow", "timeout": "300ms", "retry": {"max_attempts": 3, "initial_interval": "100ms"}}
	], "output": {"ok": "${{ steps.flaky.output.body.ok }}", "fast": "${{ steps.slow.output.body.fast }}"}}`)
	out, err := resultOf(t, start(t, c, "retries", "retries-ok", orchestration(d, `{}`)), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out["ok"] != true || out["fast"] != true {
		t.Errorf("output %v", out)
	}
	at := h.times("/flaky")
	if len(at) != 3 {
		t.Fatalf("flaky called %d times", len(at))
	}
	for i, want := range []time.Duration{300 * time.Millisecond, 600 * time.Millisecond} {
		gap := at[i+1].Sub(at[i])
		t.Logf("retry %d after %s (configured %s)", i+1, gap.Round(time.Millisecond), want)
		if gap < want || gap > want+1500*time.Millisecond {
			t.Errorf("retry %d came %s after the previous attempt, want about %s", i+1, gap, want)
		}
	}
	if at := h.times("/slow"); len(at) != 2 || at[1].Sub(at[0]) < 400*time.Millisecond {
		t.Errorf("slow attempts %v (the first must time out after 300ms, then wait 100ms)", at)
	}
	st := queryStatus(t, c, "retries-ok")
	if s := stepStatus(st, "flaky"); s.Attempts != 3 || s.State != workflows.StepSucceeded {
		t.Errorf("flaky status %+v", s)
	}
	flaky := byStep(recs, "flaky")
	if len(flaky) != 3 || flaky[0].Outcome != record.OutcomeError || flaky[0].StatusCode != 500 || flaky[0].ErrorClass != calls.ClassStatus ||
		flaky[2].Outcome != record.OutcomeOK || flaky[2].Attempt != 3 || flaky[2].WorkflowID != "retries-ok" || flaky[2].Target != "svc" {
		t.Errorf("flaky records %+v", flaky)
	}
	if slow := byStep(recs, "slow"); len(slow) != 2 || slow[0].Outcome != record.OutcomeTimeout || slow[0].ErrorClass != calls.ClassTimeout {
		t.Errorf("slow records %+v", slow)
	}

	// A status listed as non-retryable fails the step at once.
	bad := mustDef(t, `{"steps": [{"id": "bad", "kind": "http", "service": "svc", "path": "/bad", "method": "POST", "body": {"x": 1},
		"retry": {"max_attempts": 5, "initial_interval": "100ms", "non_retryable_statuses": [422]}}]}`)
	_, err = resultOf(t, start(t, c, "retries", "retries-bad", orchestration(bad, `{}`)), 30*time.Second)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeStepFailed || !strings.Contains(ae.Error(), "status 422") {
		t.Fatalf("error %v", err)
	}
	if n := len(h.times("/bad")); n != 1 {
		t.Errorf("bad called %d times", n)
	}
	if s := stepStatus(queryStatus(t, c, "retries-bad"), "bad"); s.State != workflows.StepFailed || s.Attempts != 1 || !strings.Contains(s.Error, "invalid order") {
		t.Errorf("bad status %+v", s)
	}
}

// TestWorkerKilledDuringStep kills the worker process while an http call
// is in flight; a new worker process retries the call after the heartbeat
// timeout and the orchestration completes.
//
// It also holds docs/WORKFLOWS.md to "a worker dying mid-call costs ~10 s,
// not the whole attempt timeout", with two bounds that tell mechanisms
// apart rather than measure speed (their margins are 5 s and 14 s; only a
// broken heartbeat path, or a stall of that size, fails them):
//   - the call is kept in flight for heldBeforeKill (15 s), longer than the
//     10 s heartbeat timeout: only the activity's heartbeats keep the
//     attempt alive, so no retry may reach the service before the kill;
//   - after the kill, the retry must come within killDetectionBound (25 s):
//     ~2–11 s when the heartbeat timeout notices the dead worker, ~50 s
//     when only the 65 s attempt timeout (60 s step timeout + 5 s grace,
//     counted from the start) would.
func TestWorkerKilledDuringStep(t *testing.T) {
	ts := newServer(t)
	c := ts.GetDefaultClient()
	var h hits
	inflight := make(chan struct{}, 1)
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := h.add(r.URL.Path)
		body, _ := io.ReadAll(r.Body) // lets the server notice the client going away
		if r.URL.Path == "/work" && n == 1 {
			inflight <- struct{}{}
			select { // hangs until the worker dies and the connection drops
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
			return
		}
		fmt.Fprintf(w, `{"path": %q, "got": %s, "n": %d}`, r.URL.Path, orNull(body), n)
	}))
	defer svc.Close()
	services := map[string]string{"svc": svc.URL}
	first := startChild(t, ts, "killstep", services)

	d := mustDef(t, `{"steps": [
		{"id": "work", "kind": "http", "service": "svc", "path": "/work", "method": "POST", "body": {"id": "${{ input.id }}"}, "timeout": "60s"},
		{"id": "after", "kind": "http", "service": "svc", "path": "/after", "method": "POST", "body": "${{ steps.work.output.body.n }}"}
	], "output": {"work": "${{ steps.work.output.body }}", "after": "${{ steps.after.output.body.got }}"}}`)
	run := start(t, c, "killstep", "killstep", orchestration(d, `{"id": "o-1"}`))
	select {
	case <-inflight:
	case <-time.After(30 * time.Second):
		t.Fatalf("the step never started; worker stderr:\n%s", first.out.String())
	}
	time.Sleep(heldBeforeKill)
	if n := len(h.times("/work")); n != 1 {
		t.Fatalf("/work called %d times while its first worker was alive: the attempt timed out after the 10 s heartbeat timeout, so the activity did not heartbeat", n)
	}
	first.kill()
	killedAt := time.Now()
	startChild(t, ts, "killstep", services)
	out, err := resultOf(t, run, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("completed %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	attempts := h.times("/work")
	if len(attempts) != 2 {
		t.Fatalf("/work called %d times, want 2", len(attempts))
	}
	detected := attempts[1].Sub(killedAt)
	t.Logf("the retry reached the service %s after the kill (heartbeat timeout 10 s, attempt timeout 65 s)", detected.Round(time.Millisecond))
	if detected > killDetectionBound {
		t.Errorf("the retry came %s after the kill, want < %s: the dead worker was noticed by the attempt timeout, not by heartbeats",
			detected.Round(time.Millisecond), killDetectionBound)
	}
	work, _ := out["work"].(map[string]any)
	if work["n"] != 2.0 || fmt.Sprint(work["got"]) != "map[id:o-1]" || out["after"] != 2.0 {
		t.Errorf("output %v", out)
	}
	if s := stepStatus(queryStatus(t, c, "killstep"), "work"); s.Attempts != 2 {
		t.Errorf("work status %+v", s)
	}
}

// Bounds of TestWorkerKilledDuringStep. heldBeforeKill outlasts the 10 s
// heartbeat timeout (a retry would reach the service ~11 s after the start
// if the activity did not heartbeat); killDetectionBound separates a dead
// worker noticed through the heartbeat timeout (retry ~2–11 s after the
// kill: the SDK sends heartbeats at most every 8 s) from one noticed only
// when the attempt timeout expires (~50 s after the kill).
const (
	heldBeforeKill     = 15 * time.Second
	killDetectionBound = 25 * time.Second
)

func orNull(b []byte) string {
	if len(b) == 0 {
		return "null"
	}
	return string(b)
}

// TestWorkerKilledWaitingForApproval kills the worker while the
// orchestration waits for an approval; the decision is sent after a new
// worker process started, and the orchestration completes with it.
func TestWorkerKilledWaitingForApproval(t *testing.T) {
	ts := newServer(t)
	c := ts.GetDefaultClient()
	var h hits
	var shipped []byte
	var mu sync.Mutex
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.add(r.URL.Path)
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/ship" {
			mu.Lock()
			shipped = body
			mu.Unlock()
		}
		fmt.Fprintf(w, `{"path": %q}`, r.URL.Path)
	}))
	defer svc.Close()
	services := map[string]string{"svc": svc.URL}
	first := startChild(t, ts, "killapproval", services)

	d := mustDef(t, `{"steps": [
		{"id": "reserve", "kind": "http", "service": "svc", "path": "/reserve"},
		{"id": "approve", "kind": "approval", "approvers": {"roles": ["manager"]}, "timeout": "10m"},
		{"id": "ship", "kind": "http", "service": "svc", "path": "/ship", "method": "POST",
		 "body": {"decision": "${{ steps.approve.output.decision }}", "comment": "${{ steps.approve.output.comment }}"}}
	], "output": "${{ steps.approve.output }}"}`)
	run := start(t, c, "killapproval", "killapproval", orchestration(d, `{}`))
	waitFor(t, 30*time.Second, "the approval to wait", func() bool {
		st := queryStatus(t, c, "killapproval")
		return len(st.Pending) == 1 && st.Pending[0].StepID == "approve"
	})
	first.kill()
	startChild(t, ts, "killapproval", services)

	decide := func(d workflows.Decision) (workflows.DecisionResult, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		handle, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: "killapproval", UpdateName: workflows.DecideUpdate, Args: []any{d},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err != nil {
			return workflows.DecisionResult{}, err
		}
		var res workflows.DecisionResult
		err = handle.Get(ctx, &res)
		return res, err
	}
	_, err := decide(workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: workflows.Identity{KeyID: "k-eve", User: "eve", Roles: []string{"viewer"}}})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeNotApprover {
		t.Errorf("outsider's decision: %v", err)
	}
	res, err := decide(workflows.Decision{StepID: "approve", Decision: workflows.Approve, Comment: "ship it", By: workflows.Identity{KeyID: "k-ann", User: "ann", Roles: []string{"manager"}}})
	if err != nil || !res.Resolved || res.Outcome != workflows.OutcomeApproved {
		t.Fatalf("decision: %+v %v", res, err)
	}
	out, err := resultOf(t, run, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out["decision"] != workflows.OutcomeApproved || out["comment"] != "ship it" {
		t.Errorf("output %v", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if string(shipped) != `{"comment":"ship it","decision":"approved"}` {
		t.Errorf("ship body %s", shipped)
	}
	if n := len(h.times("/reserve")); n != 1 {
		t.Errorf("reserve called %d times after the restart", n)
	}
}

// TestEnsureSearchAttributes registers the attributes twice (idempotent)
// and starts an orchestration with them.
func TestEnsureSearchAttributes(t *testing.T) {
	ts := newServer(t)
	c := ts.GetDefaultClient()
	ctx := context.Background()
	for range 2 {
		if err := worker.EnsureSearchAttributes(ctx, c, ts.GetDefaultNamespace()); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ts.GetDefaultNamespace()})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range worker.SearchAttributes {
		if resp.GetCustomAttributes()[name] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			t.Errorf("%s: %v", name, resp.GetCustomAttributes()[name])
		}
	}
	for name, typ := range workflows.SearchAttributeTypes() {
		if resp.GetCustomAttributes()[name] != typ {
			t.Errorf("%s: %v, want %v", name, resp.GetCustomAttributes()[name], typ)
		}
	}
	startWorker(t, c, "sa", worker.Deps{Services: staticServices{}})
	d := mustDef(t, `{"name": "sa", "version": "7", "steps": [{"id": "w", "kind": "wait", "duration": "10ms"}], "output": {"done": true}}`)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "sa-1", TaskQueue: "sa",
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrTenant).ValueSet("acme"),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrDefinition).ValueSet("sa"),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrVersion).ValueSet("7"),
		)}, workflows.OrchestrationWorkflow, orchestration(d, `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := resultOf(t, run, 20*time.Second); err != nil || out["done"] != true {
		t.Fatalf("%v %v", out, err)
	}
	waitFor(t, 10*time.Second, "the orchestration to be listed by tenant", func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ts.GetDefaultNamespace(),
			Query: fmt.Sprintf("%s = 'acme' AND %s = 'sa'", workflows.SearchAttrTenant, workflows.SearchAttrDefinition)})
		return err == nil && len(resp.GetExecutions()) == 1
	})
}

// TestRejectionContinues: an approval step with on_reject: continue,
// rejected through the Update on a real server: the orchestration takes the
// rejection branch and completes, nothing is compensated.
func TestRejectionContinues(t *testing.T) {
	ts := newServer(t)
	c := ts.GetDefaultClient()
	var h hits
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.add(r.URL.Path)
		fmt.Fprintf(w, `{"path": %q}`, r.URL.Path)
	}))
	defer svc.Close()
	startWorker(t, c, "rejectcontinue", worker.Deps{Services: staticServices{"svc": svc.URL}})

	d := mustDef(t, `{"steps": [
		{"id": "reserve", "kind": "http", "service": "svc", "path": "/reserve",
		 "compensate": {"id": "unreserve", "kind": "http", "service": "svc", "path": "/unreserve"}},
		{"id": "approve", "kind": "approval", "approvers": {"roles": ["manager"]}, "on_reject": "continue"},
		{"id": "ship", "kind": "http", "service": "svc", "path": "/ship", "when": "steps.approve.output.decision == 'approved'"},
		{"id": "notify", "kind": "http", "service": "svc", "path": "/notify", "when": "steps.approve.output.decision == 'rejected'"}
	], "output": "${{ steps.approve.output }}"}`)
	run := start(t, c, "rejectcontinue", "rejectcontinue", orchestration(d, `{}`))
	waitFor(t, 30*time.Second, "the approval to wait", func() bool {
		return len(queryStatus(t, c, "rejectcontinue").Pending) == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	handle, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: "rejectcontinue", UpdateName: workflows.DecideUpdate, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{workflows.Decision{StepID: "approve", Decision: workflows.Reject, Comment: "no stock",
			By: workflows.Identity{KeyID: "k-ann", User: "ann", Roles: []string{"manager"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.DecisionResult
	if err := handle.Get(ctx, &res); err != nil || res.Outcome != workflows.OutcomeRejected {
		t.Fatalf("decision %+v %v", res, err)
	}
	out, err := resultOf(t, run, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out["decision"] != workflows.OutcomeRejected || out["comment"] != "no stock" {
		t.Errorf("output %v", out)
	}
	if len(h.times("/notify")) != 1 || len(h.times("/ship")) != 0 || len(h.times("/unreserve")) != 0 {
		t.Errorf("calls: notify %d, ship %d, unreserve %d", len(h.times("/notify")), len(h.times("/ship")), len(h.times("/unreserve")))
	}
	if st := queryStatus(t, c, "rejectcontinue"); st.State != workflows.RunSucceeded || stepStatus(st, "ship").State != workflows.StepSkipped {
		t.Errorf("status %s, ship %s", st.State, stepStatus(st, "ship").State)
	}
}
