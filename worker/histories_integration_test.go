//go:build integration

package worker_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/callback"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/events"
)

// update rewrites the stored histories:
//
//	go test -tags integration -run TestRecordHistories ./worker/ -update
var update = flag.Bool("update", false, "rewrite workflows/testdata/histories from this run")

// historiesDir is where the replay test of the workflows package reads.
const historiesDir = "../workflows/testdata/histories"

// historyScenario is one orchestration whose history is kept.
type historyScenario struct {
	name     string
	def      string
	input    string
	canAfter int
	// limits, when set, are the run's limits (else the defaults).
	limits *definition.RunLimits
	// drive acts on the running orchestration (decisions, cancel).
	drive   func(t *testing.T, c client.Client, id string)
	wantErr bool
	// trigger starts the run as a schedule does (input template, trigger).
	trigger bool
	// tenantID gives the run a workflow id in tenant acme's space, as the
	// ingress does (callback tokens are bound to it).
	tenantID bool
}

var historyScenarios = []historyScenario{
	{name: "http_retry_dataflow", input: `{"key": "a", "n": 3}`, def: `{"name": "http", "version": "1",
		"vars": {"double": "${{ input.n * 2 }}"},
		"steps": [
			{"id": "flaky", "kind": "http", "service": "svc", "path": "/flaky/${{ input.key }}", "retry": {"max_attempts": 3, "initial_interval": "50ms"}},
			{"id": "post", "kind": "http", "service": "svc", "method": "POST", "path": "/echo", "headers": {"X-Key": "${{ input.key }}"},
			 "query": {"n": "${{ vars.double }}"}, "body": {"prev": "${{ steps.flaky.output.status }}"}}
		], "output": {"post": "${{ steps.post.output.body }}"}}`},
	{name: "model_mcp", input: `{"text": "hello"}`, def: `{"name": "ai", "version": "1", "steps": [
			{"id": "classify", "kind": "model", "model": "small", "system": "Classify.", "prompt": "${{ input.text }}", "response_format": "json", "max_tokens": 20},
			{"id": "tool", "kind": "mcp", "server": "files", "tool": "write", "arguments": {"label": "${{ steps.classify.output.json.label }}"}}
		], "output": {"label": "${{ steps.classify.output.json.label }}", "tool": "${{ steps.tool.output.content }}"}}`},
	{name: "approval_quorum_update_signal", input: `{}`, def: `{"name": "approve", "version": "1", "steps": [
			{"id": "approve", "kind": "approval", "approvers": {"roles": ["manager"]}, "quorum": 2, "timeout": "1h"},
			{"id": "ship", "kind": "http", "service": "svc", "path": "/echo", "body": "${{ steps.approve.output.decision }}"}
		], "output": "${{ steps.approve.output }}"}`,
		drive: func(t *testing.T, c client.Client, id string) {
			waitPending(t, c, id, "approve")
			// The submitter's own vote (key k1, no user) is ignored.
			if err := c.SignalWorkflow(context.Background(), id, "", workflows.DecisionSignal,
				workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: workflows.Identity{KeyID: "k1", Roles: []string{"manager"}}}); err != nil {
				t.Error(err)
			}
			decideUpdate(t, c, id, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: workflows.Identity{KeyID: "k1", User: "ann", Roles: []string{"manager"}}})
			if err := c.SignalWorkflow(context.Background(), id, "", workflows.DecisionSignal,
				workflows.Decision{StepID: "approve", Decision: workflows.Approve, Comment: "ok", By: workflows.Identity{KeyID: "k2", User: "bob", Roles: []string{"manager"}}}); err != nil {
				t.Error(err)
			}
		}},
	{name: "approval_timeout_escalate_compensate", input: `{}`, wantErr: true, def: `{"name": "escalate", "version": "1", "steps": [
			{"id": "reserve", "kind": "http", "service": "svc", "path": "/echo", "compensate": {"id": "release", "kind": "http", "service": "svc", "path": "/echo"}},
			{"id": "approve", "kind": "approval", "approvers": {"users": ["ann"]}, "timeout": "300ms", "on_timeout": "escalate",
			 "escalate_to": {"roles": ["director"]}, "escalation_timeout": "300ms"}
		]}`},
	{name: "parallel_switch_wait_when", input: `{"n": 7}`, def: `{"name": "control", "version": "1", "steps": [
			{"id": "fan", "kind": "parallel", "branches": [
				{"name": "a", "steps": [{"id": "a1", "kind": "http", "service": "svc", "path": "/echo"}]},
				{"name": "b", "steps": [{"id": "nap", "kind": "wait", "duration": "100ms"}, {"id": "b1", "kind": "http", "service": "svc", "path": "/echo"}]}
			]},
			{"id": "route", "kind": "switch", "cases": [{"when": "input.n > 5", "steps": [{"id": "big", "kind": "http", "service": "svc", "path": "/echo"}]}],
			 "default": [{"id": "small", "kind": "http", "service": "svc", "path": "/echo"}]},
			{"id": "skipme", "kind": "http", "service": "svc", "path": "/echo", "when": "input.n < 0"},
			{"id": "until", "kind": "wait", "until": "1000"}
		], "output": {"fan": "${{ steps.fan.output.a.a1.status }}", "case": "${{ steps.route.output.case }}"}}`},
	{name: "foreach", input: `{"items": ["a", "b", "c", "d", "e"]}`, def: `{"name": "loop", "version": "1", "steps": [
			{"id": "each", "kind": "foreach", "items": "input.items", "concurrency": 2, "steps": [
				{"id": "call", "kind": "http", "service": "svc", "path": "/echo", "body": {"item": "${{ item }}", "i": "${{ index }}"}}]}
		], "output": {"n": "${{ len(steps.each.output) }}"}}`},
	{name: "compensation_on_failure", input: `{}`, wantErr: true, def: `{"name": "saga", "version": "1", "steps": [
			{"id": "a", "kind": "http", "service": "svc", "path": "/echo", "compensate": {"id": "undo_a", "kind": "http", "service": "svc", "path": "/echo"}},
			{"id": "b", "kind": "http", "service": "svc", "path": "/echo", "compensate": {"id": "undo_b", "kind": "http", "service": "svc", "path": "/echo"}},
			{"id": "c", "kind": "http", "service": "svc", "path": "/fail", "retry": {"max_attempts": 2, "initial_interval": "50ms"}}
		]}`},
	{name: "cancel_compensate", input: `{}`, wantErr: true, def: `{"name": "cancel", "version": "1", "steps": [
			{"id": "a", "kind": "http", "service": "svc", "path": "/echo", "compensate": {"id": "undo_a", "kind": "http", "service": "svc", "path": "/echo"}},
			{"id": "approve", "kind": "approval", "approvers": {"roles": ["manager"]}}
		]}`,
		drive: func(t *testing.T, c client.Client, id string) {
			waitPending(t, c, id, "approve")
			if err := c.CancelWorkflow(context.Background(), id, ""); err != nil {
				t.Error(err)
			}
		}},
	{name: "continue_as_new", input: `{}`, canAfter: 60, def: `{"name": "long", "version": "1", "steps": [
			{"id": "first", "kind": "http", "service": "svc", "path": "/echo"},
			{"id": "each", "kind": "foreach", "items": "0..29", "concurrency": 3, "steps": [
				{"id": "call", "kind": "http", "service": "svc", "path": "/echo", "body": "${{ item }}"}]},
			{"id": "last", "kind": "http", "service": "svc", "path": "/echo"}
		], "output": {"n": "${{ len(steps.each.output) }}"}}`},
	{name: "run_limits", input: `{"items": [1, 2, 3, 4], "big": [1, 2, 3, 4, 5]}`, wantErr: true,
		limits: &definition.RunLimits{MaxForeachItems: 4, MaxConcurrency: 2},
		def: `{"name": "limits", "version": "1", "steps": [
			{"id": "first", "kind": "http", "service": "svc", "path": "/echo", "compensate": {"id": "undo_first", "kind": "http", "service": "svc", "path": "/echo"}},
			{"id": "each", "kind": "foreach", "items": "input.items", "concurrency": 4, "steps": [
				{"id": "call", "kind": "http", "service": "svc", "path": "/echo", "body": "${{ item }}"}]},
			{"id": "big", "kind": "foreach", "items": "input.big", "steps": [
				{"id": "call", "kind": "http", "service": "svc", "path": "/echo"}]}
		]}`},
	{name: "timeout_not_reached", input: `{}`, def: `{"name": "in_time", "version": "1", "timeout": "1h", "steps": [
			{"id": "a", "kind": "http", "service": "svc", "path": "/echo"},
			{"id": "w", "kind": "wait", "duration": "50ms"}
		], "output": {"status": "${{ steps.a.output.status }}"}}`},
	{name: "orchestration_timeout", input: `{}`, wantErr: true, def: `{"name": "timeout", "version": "1", "timeout": "300ms", "steps": [
			{"id": "a", "kind": "http", "service": "svc", "path": "/echo", "compensate": {"id": "undo_a", "kind": "http", "service": "svc", "path": "/echo"}},
			{"id": "w", "kind": "wait", "duration": "1h"}
		]}`},
	// Event steps: one event sent before its step waits (kept by the
	// mailbox), one sent while it waits; then a wait that times out.
	{name: "event_before_and_after", input: `{"order": "o-1"}`, def: `{"name": "events", "version": "1", "steps": [
			{"id": "nap", "kind": "wait", "duration": "300ms"},
			{"id": "packed", "kind": "event", "event": "shipping.packed", "match": "${{ input.order }}", "timeout": "1m"},
			{"id": "shipped", "kind": "event", "event": "shipping.shipped", "match": "${{ input.order }}"},
			{"id": "late", "kind": "event", "event": "shipping.delivered", "match": "${{ input.order }}", "timeout": "200ms", "on_timeout": "continue"}
		], "output": {"packed": "${{ steps.packed.output }}", "shipped": "${{ steps.shipped.output.tracking }}", "late": "${{ steps.late.output }}"}}`,
		drive: func(t *testing.T, c client.Client, id string) {
			send := events.NewSender(c, "histories")
			if _, err := send.Send(context.Background(), "acme", events.Event{Name: "shipping.packed", Key: "o-1", Payload: json.RawMessage(`{"box": 3}`)}); err != nil {
				t.Error(err)
			}
			waitFor(t, 20*time.Second, "the shipped step to wait", func() bool {
				for _, e := range queryStatus(t, c, id).Events {
					if e.StepID == "shipped" {
						return true
					}
				}
				return false
			})
			if _, err := send.Send(context.Background(), "acme", events.Event{Name: "shipping.shipped", Key: "o-1", Payload: json.RawMessage(`{"tracking": "T1"}`)}); err != nil {
				t.Error(err)
			}
		}},
	// An http step completed through its callback URL.
	{name: "http_callback", input: `{}`, tenantID: true, def: `{"name": "async", "version": "1", "steps": [
			{"id": "render", "kind": "http", "service": "svc", "method": "POST", "path": "/async", "body": {"job": 1},
			 "callback": {"timeout": "1m"}, "retry": {"max_attempts": 1}}
		], "output": "${{ steps.render.output.body }}"}`},
	// A run started by a schedule: input template and firing record.
	{name: "schedule_input", trigger: true, def: `{"name": "scheduled", "version": "1", "steps": [
			{"id": "a", "kind": "http", "service": "svc", "path": "/echo", "body": "${{ input }}"}
		], "output": {"by": "${{ input.by }}"}}`},
}

// TestRecordHistories runs an orchestration of every step kind and
// feature against a real server, replays each history, and with -update
// stores them for the replay test in the workflows package.
func TestRecordHistories(t *testing.T) {
	ts := newServer(t)
	c := ts.GetDefaultClient()
	var mu sync.Mutex
	seen := map[string]bool{}
	cbKey := []byte("histories-callback-key")
	cbSource := func() (callback.Settings, error) {
		return callback.Settings{BaseURL: "http://callbacks.invalid", Keys: [][]byte{cbKey}}, nil
	}
	completer := callback.NewCompleter(c, cbSource, nil)
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/async" {
			// Accept now, complete a little later through the callback.
			token := strings.TrimPrefix(r.Header.Get(activities.HeaderCallbackURL), "http://callbacks.invalid"+callback.PathPrefix)
			go func() {
				time.Sleep(200 * time.Millisecond)
				if _, err := completer.Complete(context.Background(), token, callback.Result{Output: map[string]any{"pdf": "done"}}); err != nil {
					t.Errorf("complete callback: %v", err)
				}
			}()
			w.WriteHeader(http.StatusAccepted)
			return
		}
		mu.Lock()
		first := !seen[r.URL.Path]
		seen[r.URL.Path] = true
		mu.Unlock()
		switch {
		case r.URL.Path == "/fail", len(r.URL.Path) > 7 && r.URL.Path[:7] == "/flaky/" && first:
			http.Error(w, "failing", http.StatusInternalServerError)
		default:
			fmt.Fprintf(w, `{"path": %q, "query": %q}`, r.URL.Path, r.URL.RawQuery)
		}
	}))
	defer svc.Close()
	startWorkerWith(t, c, worker.Options{TaskQueue: "histories", StopTimeout: time.Second,
		HTTP: activities.HTTPOptions{Callbacks: callback.NewIssuer(cbSource)}}, worker.Deps{
		Services: staticServices{"svc": svc.URL},
		Model: func(ctx context.Context, in activities.ModelCallInput) (activities.ModelCallOutput, error) {
			return activities.ModelCallOutput{Content: `{"label":"greeting"}`, JSON: map[string]any{"label": "greeting"}, Model: in.Request.Model, Attempt: activity.GetInfo(ctx).Attempt}, nil
		},
		MCP: func(ctx context.Context, in activities.MCPCallInput) (activities.MCPCallOutput, error) {
			return activities.MCPCallOutput{Content: "wrote " + string(in.Arguments), Attempt: activity.GetInfo(ctx).Attempt}, nil
		},
	})

	histories := map[string]*historypb.History{}
	var names []string
	for _, sc := range historyScenarios {
		in := orchestration(mustDef(t, sc.def), sc.input)
		in.ContinueAsNewAfter = sc.canAfter
		in.Limits = sc.limits
		id := "history-" + sc.name
		if sc.tenantID {
			id = "acme/" + id
		}
		if sc.trigger {
			in.Input = nil
			in.Trigger = &workflows.TriggerRef{Kind: "schedule", Name: "nightly", WorkflowIDBase: id}
			in.InputTemplate = map[string]any{"by": "${{ input.schedule }}", "at": "${{ input.scheduled_time }}"}
			id += "-2026-01-02T03:04:05Z"
		}
		run := start(t, c, "histories", id, in)
		firstRun := run.GetRunID() // Get follows continue-as-new and moves the run id
		if sc.drive != nil {
			sc.drive(t, c, id)
		}
		_, err := resultOf(t, run, 30*time.Second)
		if (err != nil) != sc.wantErr {
			t.Fatalf("%s: error %v, want error %v", sc.name, err, sc.wantErr)
		}
		runs := fetchRuns(t, c, id, firstRun)
		if sc.canAfter > 0 && len(runs) < 2 {
			t.Errorf("%s: %d runs, want continue-as-new", sc.name, len(runs))
		}
		for i, h := range runs {
			name := sc.name
			if len(runs) > 1 {
				name = fmt.Sprintf("%s.run%d", sc.name, i+1)
			}
			histories[name] = h
			names = append(names, name)
		}
	}

	replayer := sdkworker.NewWorkflowReplayer()
	replayer.RegisterWorkflowWithOptions(workflows.Orchestration, workflow.RegisterOptions{Name: workflows.OrchestrationWorkflow})
	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for _, name := range names {
		if err := replayer.ReplayWorkflowHistory(quiet, histories[name]); err != nil {
			t.Errorf("replay %s: %v", name, err)
		}
	}
	if !*update {
		return
	}
	old, _ := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	if err := os.MkdirAll(historiesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		b, err := temporalproto.CustomJSONMarshalOptions{Indent: " "}.Marshal(histories[name])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(historiesDir, name+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d histories to %s", len(names), historiesDir)
}

// fetchRuns returns the history of the run and of every run it continued
// as new into.
func fetchRuns(t *testing.T, c client.Client, id, runID string) []*historypb.History {
	t.Helper()
	var out []*historypb.History
	for runID != "" && len(out) < 100 {
		it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		h := &historypb.History{}
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatalf("history of %s/%s: %v", id, runID, err)
			}
			h.Events = append(h.Events, ev)
		}
		out = append(out, h)
		runID = ""
		if n := len(h.Events); n > 0 {
			if can := h.Events[n-1].GetWorkflowExecutionContinuedAsNewEventAttributes(); can != nil {
				runID = can.GetNewExecutionRunId()
			}
		}
	}
	return out
}

func waitPending(t *testing.T, c client.Client, id, step string) {
	t.Helper()
	waitFor(t, 20*time.Second, "approval "+step, func() bool {
		st := queryStatus(t, c, id)
		for _, p := range st.Pending {
			if p.StepID == step {
				return true
			}
		}
		return false
	})
}

func decideUpdate(t *testing.T, c client.Client, id string, d workflows.Decision) workflows.DecisionResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: workflows.DecideUpdate, Args: []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	var res workflows.DecisionResult
	if err := h.Get(ctx, &res); err != nil {
		t.Fatalf("update result: %v", err)
	}
	return res
}
