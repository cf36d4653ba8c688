package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
)

// fakes are the activities of a test: HTTP calls answered by a handler,
// model and MCP calls answered by functions, approval records collected.
type fakes struct {
	mu        sync.Mutex
	calls     []activities.HTTPCallInput
	models    []activities.ModelCallInput
	mcps      []activities.MCPCallInput
	approvals []activities.ApprovalRecord
	// http answers an HTTP call; attempt is the activity attempt.
	http  func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error)
	model func(in activities.ModelCallInput) (activities.ModelCallOutput, error)
}

func (f *fakes) httpCall(ctx context.Context, in activities.HTTPCallInput) (activities.HTTPCallOutput, error) {
	attempt := activity.GetInfo(ctx).Attempt
	f.mu.Lock()
	f.calls = append(f.calls, in)
	h := f.http
	f.mu.Unlock()
	var out activities.HTTPCallOutput
	var err error
	if h != nil {
		out, err = h(in, attempt)
	} else {
		out = echo(in)
	}
	if err != nil {
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) && !ae.HasDetails() {
			err = temporal.NewApplicationErrorWithOptions(ae.Message(), ae.Type(), temporal.ApplicationErrorOptions{
				NonRetryable: ae.NonRetryable(),
				Details:      []any{activities.CallErrorDetails{Attempt: attempt}},
			})
		}
		return out, err
	}
	out.Attempt = attempt
	return out, nil
}

// echo answers 200 with the request's path and body.
func echo(in activities.HTTPCallInput) activities.HTTPCallOutput {
	var body any
	_ = json.Unmarshal(in.Body, &body)
	return activities.HTTPCallOutput{Status: 200, Body: map[string]any{"path": in.Path, "service": in.Service, "echo": body}}
}

func (f *fakes) modelCall(ctx context.Context, in activities.ModelCallInput) (activities.ModelCallOutput, error) {
	f.mu.Lock()
	f.models = append(f.models, in)
	m := f.model
	f.mu.Unlock()
	if m != nil {
		return m(in)
	}
	return activities.ModelCallOutput{Content: "ok", Model: in.Request.Model, Attempt: activity.GetInfo(ctx).Attempt}, nil
}

func (f *fakes) mcpCall(_ context.Context, in activities.MCPCallInput) (activities.MCPCallOutput, error) {
	f.mu.Lock()
	f.mcps = append(f.mcps, in)
	f.mu.Unlock()
	return activities.MCPCallOutput{Content: "tool " + in.Tool, Structured: map[string]any{"args": json.RawMessage(in.Arguments)}}, nil
}

func (f *fakes) recordApproval(_ context.Context, in activities.ApprovalRecord) error {
	f.mu.Lock()
	f.approvals = append(f.approvals, in)
	f.mu.Unlock()
	return nil
}

func (f *fakes) paths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Path)
	}
	return out
}

func (f *fakes) approvalRecords() []activities.ApprovalRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]activities.ApprovalRecord(nil), f.approvals...)
}

// harness runs one orchestration in the test environment.
type harness struct {
	t     *testing.T
	suite testsuite.WorkflowTestSuite
	env   *testsuite.TestWorkflowEnvironment
	f     *fakes
	// updates numbers update ids (the same id would be deduplicated).
	updates int
}

func newHarness(t *testing.T, f *fakes) *harness {
	t.Helper()
	if f == nil {
		f = &fakes{}
	}
	h := &harness{t: t, f: f}
	h.suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	h.env = h.newEnv()
	return h
}

func (h *harness) newEnv() *testsuite.TestWorkflowEnvironment {
	env := h.suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Orchestration, workflow.RegisterOptions{Name: workflows.OrchestrationWorkflow})
	env.RegisterActivityWithOptions(h.f.httpCall, activity.RegisterOptions{Name: activities.HTTPCallActivity})
	env.RegisterActivityWithOptions(h.f.modelCall, activity.RegisterOptions{Name: activities.ModelCallActivity})
	env.RegisterActivityWithOptions(h.f.mcpCall, activity.RegisterOptions{Name: activities.MCPCallActivity})
	env.RegisterActivityWithOptions(h.f.recordApproval, activity.RegisterOptions{Name: activities.RecordApprovalActivity})
	env.SetTestTimeout(30 * time.Second)
	return env
}

// def decodes a definition written as JSON.
func def(t *testing.T, src string) definition.Definition {
	t.Helper()
	var d definition.Definition
	dec := json.NewDecoder(strings.NewReader(src))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("test definition: %v", err)
	}
	if d.Name == "" {
		d.Name = "test"
	}
	if d.Version == "" {
		d.Version = "1"
	}
	return d
}

func input(d definition.Definition, in string) workflows.OrchestrationInput {
	return workflows.OrchestrationInput{
		Definition: d,
		Input:      json.RawMessage(in),
		Meta:       activities.RunMeta{Tenant: "acme", KeyID: "k1", RequestID: "req-1"},
	}
}

// run executes the orchestration to its end.
func (h *harness) run(in workflows.OrchestrationInput) {
	h.t.Helper()
	h.env.ExecuteWorkflow(workflows.OrchestrationWorkflow, in)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
}

// result decodes the workflow's output, failing the test on error.
func (h *harness) result() map[string]any {
	h.t.Helper()
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("workflow failed: %v", err)
	}
	var raw json.RawMessage
	if err := h.env.GetWorkflowResult(&raw); err != nil {
		h.t.Fatal(err)
	}
	var out map[string]any
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &out); err != nil {
			h.t.Fatalf("output %s: %v", raw, err)
		}
	}
	return out
}

// failure returns the workflow's application error.
func (h *harness) failure() *temporal.ApplicationError {
	h.t.Helper()
	err := h.env.GetWorkflowError()
	if err == nil {
		h.t.Fatal("workflow succeeded, want a failure")
	}
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		h.t.Fatalf("workflow error %v is not an application error", err)
	}
	return ae
}

func (h *harness) status() workflows.Status {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(workflows.StatusQuery)
	if err != nil {
		h.t.Fatalf("status query: %v", err)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

// step finds a step's status.
func step(t *testing.T, st workflows.Status, id string) workflows.StepStatus {
	t.Helper()
	for _, s := range st.Steps {
		if s.ID == id {
			return s
		}
	}
	ids := make([]string, 0, len(st.Steps))
	for _, s := range st.Steps {
		ids = append(ids, s.ID)
	}
	t.Fatalf("no step %q in status (have %v)", id, ids)
	return workflows.StepStatus{}
}

// outputOf decodes a step's status output.
func outputOf(t *testing.T, s workflows.StepStatus) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(s.Output, &m); err != nil {
		t.Fatalf("step %s output %s: %v", s.ID, s.Output, err)
	}
	return m
}

// decide sends a decide update after delay and stores what happened.
type updateOutcome struct {
	accepted bool
	err      error
	result   workflows.DecisionResult
}

func (h *harness) decideAt(delay time.Duration, d workflows.Decision, out *updateOutcome) {
	h.env.RegisterDelayedCallback(func() {
		h.updates++
		h.env.UpdateWorkflow(workflows.DecideUpdate, fmt.Sprintf("u%d", h.updates), &testsuite.TestUpdateCallback{
			OnAccept: func() {
				if out != nil {
					out.accepted = true
				}
			},
			OnReject: func(err error) {
				if out != nil {
					out.err = err
				}
			},
			OnComplete: func(v any, err error) {
				if out == nil {
					return
				}
				if err != nil {
					out.err = err
					return
				}
				if r, ok := v.(workflows.DecisionResult); ok {
					out.result = r
				}
			},
		}, d)
	}, delay)
}

func errType(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type()
	}
	return fmt.Sprintf("%T", err)
}

// runToEnd executes an orchestration and every continue-as-new run after
// it, each in a fresh environment, and returns the number of runs and the
// last environment.
func runToEnd(t *testing.T, f *fakes, in workflows.OrchestrationInput) (int, *harness) {
	t.Helper()
	runs := 0
	for {
		runs++
		h := newHarness(t, f)
		h.run(in)
		var can *workflow.ContinueAsNewError
		if err := h.env.GetWorkflowError(); errors.As(err, &can) {
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
				t.Fatal(err)
			}
			if runs > 100 {
				t.Fatal("too many runs")
			}
			continue
		}
		return runs, h
	}
}
