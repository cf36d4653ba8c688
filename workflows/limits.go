package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows/definition"
)

// Run limits at run time. Validation refuses what can be known before a
// run (definition.LimitProblems); the interpreter checks the rest: the
// items of each foreach as evaluated, and the steps executed over all the
// orchestration's runs. Past a limit the orchestration fails with
// ErrTypeLimitExceeded (compensations run as for any failure). It also
// never has more calls in flight than MaxConcurrency: validation refuses
// definitions that could, so this only holds as a backstop.
//
// Only a foreach can make a run execute more steps, or hold more calls,
// than its definition has, so the version is asked at a run's first
// foreach or parallel step: runs without one gain no marker, and histories
// recorded before the limits replay without them (runLimitsChange).
const (
	runLimitsChange                  = "gateflow.run-limits"
	runLimitsV1     workflow.Version = 1
)

// limitError is an orchestration going past one of its limits.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// enforcesLimits reports whether this run enforces its limits, asking the
// version the first time.
func (r *run) enforcesLimits(ctx workflow.Context) bool {
	if !r.limitsKnown {
		r.limitsVersion = workflow.GetVersion(ctx, runLimitsChange, workflow.DefaultVersion, runLimitsV1)
		r.limitsKnown = true
		if r.limitsVersion >= runLimitsV1 {
			r.events += versionEvents
		}
	}
	return r.limitsVersion >= runLimitsV1
}

// limited reports whether the limits are enforced, without asking.
func (r *run) limited() bool { return r.limitsKnown && r.limitsVersion >= runLimitsV1 }

// runLimits are the run's limits, the defaults filling what is unset.
func (r *run) runLimits() definition.RunLimits {
	var l definition.RunLimits
	if r.in.Limits != nil {
		l = *r.in.Limits
	}
	return l.Or(definition.DefaultRunLimits())
}

// countExecution counts one more step execution, unless it is a resumed
// one, and refuses it past MaxStepExecutions.
func (r *run) countExecution(resumed bool) error {
	if resumed {
		return nil
	}
	r.executions++
	if max := r.runLimits().MaxStepExecutions; r.limited() && r.executions > max {
		return &limitError{fmt.Sprintf("orchestration limit reached: more than %d step executions (max_step_executions)", max)}
	}
	return nil
}

// checkItems refuses a foreach list longer than MaxForeachItems.
func (r *run) checkItems(ctx workflow.Context, n int) error {
	if max := r.runLimits().MaxForeachItems; r.enforcesLimits(ctx) && n > max {
		return &limitError{fmt.Sprintf("items: %d items, more than the limit of %d (max_foreach_items)", n, max)}
	}
	return nil
}

// acquireCall waits until the run has fewer calls in flight than
// MaxConcurrency, then counts one more; release uncounts it.
func (r *run) acquireCall(ctx workflow.Context) (release func(), err error) {
	if !r.limited() {
		return func() {}, nil
	}
	limit := r.runLimits().MaxConcurrency
	if r.inflight >= limit {
		if err := workflow.Await(ctx, func() bool { return r.inflight < limit }); err != nil {
			return func() {}, err
		}
	}
	r.inflight++
	return func() { r.inflight-- }, nil
}
