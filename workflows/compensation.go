package workflows

import (
	"encoding/json"
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows/definition"
)

// compensation is a pushed compensate step: what to run, for which
// completed step, in the scope that step ran in.
type compensation struct {
	// StepID is the status id of the step being compensated.
	StepID string          `json:"step_id"`
	Kind   string          `json:"kind"`
	Step   definition.Step `json:"step"`
	Scope  scopeSnapshot   `json:"scope"`
}

// compensate runs the compensations of completed steps in reverse
// completion order, on a disconnected context so that a cancellation of
// the orchestration does not stop them. Each one runs as a step with the
// status id "<step>.compensate" (its own retry policy applies); when it
// succeeds, the compensated step's state becomes "compensated". A failed
// compensation does not stop the others. It returns how many ran and the
// failures.
func (r *run) compensate(ctx workflow.Context) (ran int, failures []string) {
	if len(r.comps) == 0 {
		return 0, nil
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	for i := len(r.comps) - 1; i >= 0; i-- {
		c := r.comps[i]
		r.comps = r.comps[:i]
		sc := fromSnapshot(r.root, c.Scope)
		step := c.Step
		statusID := c.StepID + ".compensate"
		resultID := step.ID
		if resultID == "" {
			resultID = statusID
		}
		err := r.runStep(dctx, sc, &step, statusID, resultID, false)
		if s, ok := r.status.lookup(statusID); ok && s.State == StepSkipped {
			continue
		}
		ran++
		if err != nil {
			failures = append(failures, describeError(err))
			continue
		}
		r.status.setState(c.StepID, c.Kind, StepCompensated)
	}
	return ran, failures
}

// continueAsNewError unwinds the steps up to the top-level loop when the
// run should continue as new; foreach is set when a top-level foreach was
// interrupted between items.
type continueAsNewError struct {
	foreach *foreachResume
}

func (e *continueAsNewError) Error() string { return "continue as new" }

// carryState is the interpreter's state passed to the next run in
// OrchestrationInput.Carry.
type carryState struct {
	Runs      int            `json:"runs"`
	Vars      map[string]any `json:"vars,omitempty"`
	Next      int            `json:"next"`
	Results   []stepResult   `json:"results,omitempty"`
	Status    Status         `json:"status"`
	Comps     []compensation `json:"compensations,omitempty"`
	Foreach   *foreachResume `json:"foreach,omitempty"`
	StartedOK bool           `json:"started"`
	// Executions counts the steps executed so far (RunLimits).
	Executions int `json:"executions,omitempty"`
}

// shouldContinueAsNew reports whether the history is long enough to move
// to a new run: the server suggests it, or the history (real length, or
// this run's estimate where no history is visible) passed the limit.
func (r *run) shouldContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	if info.GetContinueAsNewSuggested() {
		return true
	}
	return max(info.GetCurrentHistoryLength(), r.events) >= r.canAfter
}

// continueAsNew waits for handlers, then continues as new with the state.
func (r *run) continueAsNew(ctx workflow.Context, fr *foreachResume) (json.RawMessage, error) {
	r.awaitHandlers(ctx)
	r.drainSignals(ctx)
	r.awaitHandlers(ctx)
	state := carryState{
		Runs:      r.runs + 1,
		Vars:      r.vars,
		Next:      r.next,
		Results:   r.root.results,
		Status:    carriedStatus(r.status.st),
		Comps:     r.comps,
		Foreach:   fr,
		StartedOK: r.started,
		// Executions carries the count over (RunLimits).
		Executions: r.executions,
	}
	b, err := jsonMarshal(state)
	if err != nil {
		return nil, fmt.Errorf("encode continue-as-new state: %w", err)
	}
	next := r.in
	next.Carry = &Carry{State: b}
	r.log.Info("continuing as new", "run", state.Runs, "next_step", r.next, "history", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	return nil, workflow.NewContinueAsNewError(ctx, OrchestrationWorkflow, next)
}

// carriedStatus is the status passed to the next run. The outputs of
// foreach item steps are dropped (the foreach's results carry them), so
// that the state of a long loop stays far below Temporal's payload limit.
func carriedStatus(st Status) Status {
	st.Steps = append([]StepStatus(nil), st.Steps...)
	for i := range st.Steps {
		if strings.Contains(st.Steps[i].ID, "[") {
			st.Steps[i].Output = nil
			st.Steps[i].OutputTruncated = false
		}
	}
	return st
}

// restore loads the state of the previous run.
func (r *run) restore(c *Carry) error {
	var state carryState
	if err := jsonUnmarshal(c.State, &state); err != nil {
		return fmt.Errorf("continue-as-new state is corrupt: %w", err)
	}
	r.runs = state.Runs
	if state.Vars != nil {
		r.vars = state.Vars
	}
	r.next = state.Next
	for _, res := range state.Results {
		r.root.set(res.ID, res.State, res.Output)
	}
	r.status.restore(state.Status)
	r.comps = state.Comps
	r.resume = state.Foreach
	r.started = state.StartedOK
	r.executions = state.Executions
	return nil
}
