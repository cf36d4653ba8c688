package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows/definition"
)

// Orchestration is the generic interpreter registered as
// OrchestrationWorkflow: it runs the definition copied into its input and
// returns the definition's evaluated output as JSON.
//
// Steps run in order; data flows through expressions (see the definition
// package). On failure, cancellation or the definition's timeout, the
// compensations of completed steps run in reverse completion order on a
// disconnected context. The status query, the decide update and the
// decision signal are served for the whole run. Long orchestrations
// continue as new at safe points (between top-level steps, and between
// items of a top-level foreach), carrying their state.
//
// The code is deterministic: workflow.Now for time, workflow.Go for
// concurrency, no map iteration for decisions. Changes that alter the
// commands emitted for an existing history must be guarded with
// workflow.GetVersion (the replay test in this package fails otherwise).
func Orchestration(ctx workflow.Context, in OrchestrationInput) (json.RawMessage, error) {
	// A run started by a schedule (first run only) evaluates its input
	// template and records its firing.
	fired := in.Trigger != nil && in.Carry == nil && workflow.GetVersion(ctx, EventsChange, workflow.DefaultVersion, eventsV1) >= eventsV1
	var firing triggerStart
	if fired {
		in, firing = startTrigger(ctx, in)
	}
	r, err := newRun(ctx, in)
	if fired {
		if err == nil {
			err = firing.err
		}
		r.events += versionEvents
		r.recordFiring(ctx, firing, err)
	}
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidOrchestration, err)
	}
	if err := r.registerHandlers(ctx); err != nil {
		return nil, err
	}
	// Version 1 keeps SearchAttrAwaiting and MemoState current. Histories
	// of runs started before it have no marker here and replay as
	// DefaultVersion, which upserts nothing.
	r.visibility = workflow.GetVersion(ctx, VisibilityChange, workflow.DefaultVersion, visibilityV1)
	if r.visibility >= visibilityV1 {
		r.events += versionEvents
	}
	return r.execute(ctx)
}

// Defaults of the interpreter.
const (
	// DefaultForeachConcurrency is used when a foreach sets no concurrency:
	// items run one after the other.
	DefaultForeachConcurrency = 1
	// approvalRecordTimeout bounds the local activity recording a vote.
	approvalRecordTimeout = 30 * time.Second
	// visibilityV1 is the version of VisibilityChange that upserts
	// SearchAttrAwaiting and MemoState.
	visibilityV1 workflow.Version = 1
)

// run is the state of one orchestration run.
type run struct {
	in     OrchestrationInput
	def    *definition.Definition
	log    log.Logger
	status *statusTracker
	input  any
	vars   map[string]any
	root   *scope
	// next is the index of the next top-level step.
	next int
	// firstThisRun is the top-level step this run started at.
	firstThisRun int
	// comps is the compensation stack, pushed as steps succeed.
	comps []compensation
	// resume is a top-level foreach interrupted by continue-as-new.
	resume *foreachResume
	// approvals waiting for decisions, by step status id; approvalOrder
	// keeps them in the order they started for the status.
	approvals     map[string]*approvalWait
	approvalOrder []string
	// recording counts approval records in flight, awaited before the
	// workflow closes or continues as new.
	recording int
	// events estimates the history events this run added; used with the
	// real history length to decide on continue-as-new.
	events   int
	canAfter int
	runs     int
	started  bool
	// visibility is the VisibilityChange version of this run; awaiting is
	// the SearchAttrAwaiting value it last upserted.
	visibility workflow.Version
	awaiting   []string
	// pathEscape is the pathEscapeChange version of this run, asked the
	// first time an http step renders a path template (pathEscapeKnown).
	pathEscape      workflow.Version
	pathEscapeKnown bool
	// eventWaits are the event steps waiting, by subscription token;
	// eventOrder keeps their tokens in start order; eventSeq numbers the
	// waits of this run (tokens are unique per run).
	eventWaits map[string]*eventWait
	eventOrder []string
	eventSeq   int
	// selfApproval is the selfApprovalChange version of this run, asked at
	// its first approval step (selfApprovalKnown).
	selfApproval      workflow.Version
	selfApprovalKnown bool
	// limitsVersion is the runLimitsChange version of this run, asked at
	// its first foreach or parallel step (limitsKnown); executions counts
	// the steps executed by this orchestration (over its runs), inflight
	// its calls running now.
	limitsVersion workflow.Version
	limitsKnown   bool
	executions    int
	inflight      int
}

func newRun(ctx workflow.Context, in OrchestrationInput) (*run, error) {
	r := &run{
		in:         in,
		def:        &in.Definition,
		log:        workflow.GetLogger(ctx),
		root:       newScope(nil, ""),
		approvals:  map[string]*approvalWait{},
		eventWaits: map[string]*eventWait{},
		canAfter:   in.ContinueAsNewAfter,
		vars:       map[string]any{},
		runs:       1,
	}
	if r.canAfter <= 0 {
		r.canAfter = DefaultContinueAsNewAfter
	}
	r.status = newStatusTracker(r.def, in.Meta.Tenant, workflow.Now(ctx))
	if len(in.Input) > 0 {
		if err := jsonUnmarshal(in.Input, &r.input); err != nil {
			return r, fmt.Errorf("input is not valid JSON: %w", err)
		}
	}
	if in.Carry != nil {
		if err := r.restore(in.Carry); err != nil {
			return r, err
		}
	}
	r.firstThisRun = r.next
	return r, nil
}

// ref names a step for an activity input.
func (r *run) ref(statusID string) activities.StepRef {
	meta := r.in.Meta
	if meta.Definition == "" {
		meta.Definition = r.def.Name
	}
	if meta.Version == "" {
		meta.Version = r.def.Version
	}
	return activities.StepRef{Meta: meta, StepID: statusID}
}

// execute runs the steps, then either returns the output, continues as
// new, or compensates and fails.
func (r *run) execute(ctx workflow.Context) (json.RawMessage, error) {
	bodyCtx, cancelBody := workflow.WithCancel(ctx)
	defer cancelBody()
	timedOut := false
	if d := r.def.Timeout.Std(); d > 0 {
		remaining := r.status.st.StartedAt.Add(d).Sub(workflow.Now(ctx))
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		defer cancelTimer()
		if remaining <= 0 {
			remaining = time.Millisecond
		}
		timer := workflow.NewTimerWithOptions(timerCtx, remaining, workflow.TimerOptions{Summary: "orchestration timeout"})
		workflow.Go(timerCtx, func(gctx workflow.Context) {
			if err := timer.Get(gctx, nil); err == nil {
				timedOut = true
				cancelBody()
			}
		})
	}

	err := r.runBody(bodyCtx)
	var out json.RawMessage
	if err == nil {
		out, err = r.evalOutput()
	}
	var can *continueAsNewError
	switch {
	case err == nil:
		r.status.closeRun(RunSucceeded, out, "", workflow.Now(ctx))
		r.awaitHandlers(ctx)
		return out, nil
	case errors.As(err, &can) && ctx.Err() == nil && !timedOut:
		return r.continueAsNew(ctx, can.foreach)
	}

	// Failure, cancellation or timeout: undo what was done.
	cancelled := ctx.Err() != nil
	cause := describeError(err)
	switch {
	case timedOut:
		cause = fmt.Sprintf("orchestration timed out after %s", r.def.Timeout)
	case cancelled:
		cause = "orchestration cancelled"
	}
	ran, compErrs := r.compensate(ctx)
	state := RunFailed
	switch {
	case ran > 0 && len(compErrs) == 0:
		state = RunCompensated
	case timedOut:
		state = RunTimedOut
	case cancelled:
		state = RunCancelled
	}
	msg := cause
	if len(compErrs) > 0 {
		msg = fmt.Sprintf("%s; compensation failed: %s", cause, joinMessages(compErrs))
	}
	r.status.closeRun(state, nil, msg, workflow.Now(ctx))
	r.recordFinalState(ctx, state)
	r.awaitHandlers(ctx)
	if cancelled && !timedOut {
		return nil, temporal.NewCanceledError(msg)
	}
	errType := ErrTypeStepFailed
	var (
		rej *approvalRejectedError
		lim *limitError
	)
	switch {
	case timedOut:
		errType = ErrTypeOrchestrationTimedOut
	case errors.As(err, &rej):
		errType = ErrTypeApprovalRejected
	case errors.As(err, &lim):
		errType = ErrTypeLimitExceeded
	}
	return nil, temporal.NewNonRetryableApplicationError(msg, errType, nil)
}

// recordFinalState writes the run's final state into the memo (MemoState)
// so that lists show "compensated" or "timed-out" rather than Temporal's
// close status. A success needs no memo: Temporal's "completed" says it.
func (r *run) recordFinalState(ctx workflow.Context, state RunState) {
	if r.visibility < visibilityV1 || state == RunSucceeded {
		return
	}
	r.events += upsertEvents
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoState: string(state)}); err != nil {
		r.log.Warn("final state not recorded in the memo", "state", string(state), "error", err.Error())
	}
}

// runBody evaluates the vars (first run only) and runs the top-level
// steps from r.next.
func (r *run) runBody(ctx workflow.Context) error {
	if !r.started {
		if err := r.evalVars(); err != nil {
			return err
		}
		r.started = true
	}
	steps := r.def.Steps
	for r.next < len(steps) {
		if r.next > r.firstThisRun && r.shouldContinueAsNew(ctx) {
			return &continueAsNewError{}
		}
		if err := r.execStep(ctx, r.root, &steps[r.next]); err != nil {
			return err
		}
		r.next++
	}
	return nil
}

// evalVars evaluates the definition's vars in key order, each seeing the
// ones before it.
func (r *run) evalVars() error {
	for _, k := range sortedKeys(r.def.Vars) {
		v, err := evalTemplate(r.def.Vars[k], r.root.env(r))
		if err != nil {
			return fmt.Errorf("vars.%s: %w", k, err)
		}
		if v, err = normalize(v); err != nil {
			return fmt.Errorf("vars.%s: %w", k, err)
		}
		r.vars[k] = v
	}
	return nil
}

// evalOutput evaluates the definition's output template.
func (r *run) evalOutput() (json.RawMessage, error) {
	if r.def.Output == nil {
		return nil, nil
	}
	v, err := evalTemplate(r.def.Output, r.root.env(r))
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	b, err := jsonMarshal(v)
	if err != nil {
		return nil, fmt.Errorf("output: not representable as JSON: %w", err)
	}
	return b, nil
}

// awaitHandlers lets running update handlers and approval records finish
// before the run closes, even when the run was cancelled.
func (r *run) awaitHandlers(ctx workflow.Context) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	// Events delivered to steps that no longer wait go back to their
	// mailbox before the run closes.
	r.drainDeliveries(dctx)
	_ = workflow.Await(dctx, func() bool {
		return r.recording == 0 && workflow.AllHandlersFinished(dctx)
	})
}

// stepOutcome is what a step kind returns: its output (JSON-like) and, for
// calls, the attempt that produced it.
type stepOutcome struct {
	output   any
	attempts int32
}

// execStep runs one step of a scope: condition, status, dispatch by kind,
// result, compensation push.
func (r *run) execStep(ctx workflow.Context, sc *scope, st *definition.Step) error {
	statusID := sc.prefix + st.ID
	// A foreach resumed after continue-as-new was counted by its run.
	resumed := r.resume != nil && r.resume.StatusID == statusID
	if err := r.countExecution(resumed); err != nil {
		r.status.finish(statusID, st.Kind, StepFailed, nil, 0, err.Error(), workflow.Now(ctx))
		sc.set(st.ID, StepFailed, nil)
		return &stepError{id: statusID, err: err}
	}
	return r.runStep(ctx, sc, st, statusID, st.ID, true)
}

func (r *run) runStep(ctx workflow.Context, sc *scope, st *definition.Step, statusID, resultID string, compensable bool) error {
	resumed := r.resume != nil && r.resume.StatusID == statusID
	if st.When != "" && !resumed {
		ok, err := evalCondition(st.When, sc.env(r))
		if err != nil {
			err = fmt.Errorf("when: %w", err)
			r.status.finish(statusID, st.Kind, StepFailed, nil, 0, describeError(err), workflow.Now(ctx))
			sc.set(resultID, StepFailed, nil)
			return &stepError{id: statusID, err: err}
		}
		if !ok {
			now := workflow.Now(ctx)
			r.status.skip(statusID, st.Kind, now)
			r.skipNested(sc.prefix, st, now)
			sc.set(resultID, StepSkipped, nil)
			return nil
		}
	}
	if err := ctx.Err(); err != nil {
		return &stepError{id: statusID, err: temporal.NewCanceledError("cancelled before start")}
	}
	r.status.start(statusID, st.Kind, workflow.Now(ctx))
	res, err := r.dispatch(ctx, sc, st, statusID)
	end := workflow.Now(ctx)
	if err != nil {
		var can *continueAsNewError
		if errors.As(err, &can) {
			return err
		}
		out, _ := jsonMarshal(res.output)
		r.status.finish(statusID, st.Kind, StepFailed, out, res.attempts, describeError(err), end)
		sc.set(resultID, StepFailed, res.output)
		var se *stepError
		if errors.As(err, &se) {
			return err
		}
		return &stepError{id: statusID, err: err}
	}
	out, err := jsonMarshal(res.output)
	if err != nil {
		r.status.finish(statusID, st.Kind, StepFailed, nil, res.attempts, describeError(err), end)
		return &stepError{id: statusID, err: err}
	}
	r.status.finish(statusID, st.Kind, StepSucceeded, out, res.attempts, "", end)
	sc.set(resultID, StepSucceeded, res.output)
	if compensable && st.Compensate != nil {
		r.comps = append(r.comps, compensation{StepID: statusID, Kind: st.Kind, Step: *st.Compensate, Scope: sc.snapshot()})
	}
	return nil
}

func (r *run) dispatch(ctx workflow.Context, sc *scope, st *definition.Step, id string) (stepOutcome, error) {
	runStep := stepRunner(st.Kind)
	if runStep == nil {
		return stepOutcome{}, fmt.Errorf("unknown step kind %q", st.Kind)
	}
	return runStep(r, ctx, sc, st, id)
}

// stepRunner returns the interpreter of a step kind, nil for a kind it does
// not know (TestEveryStepKindHasARunner checks every definition.Kinds).
func stepRunner(kind string) func(*run, workflow.Context, *scope, *definition.Step, string) (stepOutcome, error) {
	switch kind {
	case definition.KindHTTP:
		return (*run).callHTTP
	case definition.KindModel:
		return (*run).callModel
	case definition.KindMCP:
		return (*run).callMCP
	case definition.KindApproval:
		return (*run).approval
	case definition.KindParallel:
		return (*run).parallel
	case definition.KindForeach:
		return (*run).foreach
	case definition.KindSwitch:
		return (*run).switchStep
	case definition.KindWait:
		return (*run).wait
	case definition.KindEvent:
		return (*run).eventStep
	}
	return nil
}

// skipNested marks the statically known steps inside a skipped step (or an
// arm not taken) as skipped.
func (r *run) skipNested(prefix string, st *definition.Step, now time.Time) {
	mark := func(steps []definition.Step) {
		for i := range steps {
			r.status.skip(prefix+steps[i].ID, steps[i].Kind, now)
			r.skipNested(prefix, &steps[i], now)
		}
	}
	for _, b := range st.Branches {
		mark(b.Steps)
	}
	for _, c := range st.Cases {
		mark(c.Steps)
	}
	mark(st.Default)
}

// stepError is the failure of one step, named by its status id. Container
// steps pass their inner step's error up unchanged.
type stepError struct {
	id  string
	err error
}

func (e *stepError) Error() string { return "step " + e.id + ": " + describeError(e.err) }
func (e *stepError) Unwrap() error { return e.err }

// describeError returns a readable message: the application error's own
// message for activity failures, without the SDK's wrapping.
func describeError(err error) string {
	var (
		se  *stepError
		ae  *temporal.ApplicationError
		te  *temporal.TimeoutError
		ce  *temporal.CanceledError
		rej *approvalRejectedError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return se.Error()
	case errors.As(err, &rej):
		return rej.Error()
	case errors.As(err, &ae):
		return ae.Message()
	case errors.As(err, &te):
		return fmt.Sprintf("timed out (%s)", timeoutName(te))
	case errors.As(err, &ce):
		return "cancelled"
	default:
		return err.Error()
	}
}

func timeoutName(te *temporal.TimeoutError) string {
	switch te.TimeoutType().String() {
	case "StartToClose":
		return "attempt timeout"
	case "Heartbeat":
		return "no heartbeat"
	case "ScheduleToClose":
		return "step timeout"
	case "ScheduleToStart":
		return "no worker picked the call up"
	default:
		return te.TimeoutType().String()
	}
}

func joinMessages(msgs []string) string {
	out := ""
	for i, m := range msgs {
		if i > 0 {
			out += "; "
		}
		out += m
	}
	return out
}
