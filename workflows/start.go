package workflows

import (
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
)

// Helpers for whoever starts orchestrations (the ingress). They run before
// the start, outside workflow code.

// CompensationGrace is added to a definition's timeout for the Temporal
// execution timeout: the interpreter enforces the definition's timeout
// itself (so that compensations run and the state is timed-out), and the
// execution timeout is only the backstop after the compensations had this
// long to finish.
const CompensationGrace = time.Hour

// ExecutionTimeout is the WorkflowExecutionTimeout to start an
// orchestration of d with: zero (none) when d sets no timeout, else d's
// timeout plus CompensationGrace. Starting with exactly d's timeout would
// let Temporal terminate the run before its compensations.
func ExecutionTimeout(d *definition.Definition) time.Duration {
	t := d.Timeout.Std()
	if t <= 0 {
		return 0
	}
	return t + CompensationGrace
}

// ServiceDefaults returns a registered service's default attempt timeout
// and retry policy; ok is false for an unknown service.
type ServiceDefaults func(service string) (timeout definition.Duration, retry *definition.RetryPolicy, ok bool)

// WithServiceDefaults returns a copy of d in which every http step that
// calls a registered service gets the service's defaults for what it does
// not set itself: its timeout, and each retry field (the step's fields
// win, field by field). Call it when starting an orchestration: the
// definition is copied into the workflow input, so the defaults of that
// moment stay with the run, and the workflow (which cannot read the
// registry) sees them. d itself is not modified.
func WithServiceDefaults(d definition.Definition, defaults ServiceDefaults) definition.Definition {
	if defaults == nil {
		return d
	}
	d.Steps = stepsWithDefaults(d.Steps, defaults)
	return d
}

func stepsWithDefaults(steps []definition.Step, defaults ServiceDefaults) []definition.Step {
	if steps == nil {
		return nil
	}
	out := make([]definition.Step, len(steps))
	for i := range steps {
		out[i] = stepWithDefaults(steps[i], defaults)
	}
	return out
}

func stepWithDefaults(st definition.Step, defaults ServiceDefaults) definition.Step {
	if st.Kind == definition.KindHTTP && st.Service != "" {
		if timeout, retry, ok := defaults(st.Service); ok {
			if st.Timeout == "" {
				st.Timeout = timeout
			}
			st.Retry = mergeRetry(st.Retry, retry)
		}
	}
	if st.Compensate != nil {
		c := stepWithDefaults(*st.Compensate, defaults)
		st.Compensate = &c
	}
	if st.Branches != nil {
		branches := make([]definition.Branch, len(st.Branches))
		for i, b := range st.Branches {
			b.Steps = stepsWithDefaults(b.Steps, defaults)
			branches[i] = b
		}
		st.Branches = branches
	}
	if st.Cases != nil {
		cases := make([]definition.Case, len(st.Cases))
		for i, c := range st.Cases {
			c.Steps = stepsWithDefaults(c.Steps, defaults)
			cases[i] = c
		}
		st.Cases = cases
	}
	st.Steps = stepsWithDefaults(st.Steps, defaults)
	st.Default = stepsWithDefaults(st.Default, defaults)
	return st
}

// mergeRetry fills the fields step leaves unset from service.
func mergeRetry(step, service *definition.RetryPolicy) *definition.RetryPolicy {
	if service == nil {
		return step
	}
	if step == nil {
		c := *service
		return &c
	}
	m := *step
	if m.MaxAttempts == 0 {
		m.MaxAttempts = service.MaxAttempts
	}
	if m.InitialInterval == "" {
		m.InitialInterval = service.InitialInterval
	}
	if m.BackoffCoefficient == 0 {
		m.BackoffCoefficient = service.BackoffCoefficient
	}
	if m.MaxInterval == "" {
		m.MaxInterval = service.MaxInterval
	}
	if m.NonRetryableStatuses == nil {
		m.NonRetryableStatuses = service.NonRetryableStatuses
	}
	if m.NonRetryableErrors == nil {
		m.NonRetryableErrors = service.NonRetryableErrors
	}
	return &m
}
