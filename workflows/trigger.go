package workflows

import (
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/workflows/definition"
)

// triggerRecordTimeout bounds the local activity recording a firing.
const triggerRecordTimeout = 30 * time.Second

// searchAttrScheduledStart is the search attribute Temporal sets on runs
// started by a schedule: the time the run was due.
const searchAttrScheduledStart = "TemporalScheduledStartTime"

// triggerStart is what a run started by a trigger learned at its start.
type triggerStart struct {
	scheduled time.Time
	err       error
}

// startTrigger evaluates the input template of a run started by a
// schedule: input is then {schedule, scheduled_time, scheduled_unix_ms}.
// The result replaces in.Input; a failure is returned in triggerStart and
// fails the run.
func startTrigger(ctx workflow.Context, in OrchestrationInput) (OrchestrationInput, triggerStart) {
	ts := triggerStart{scheduled: scheduledTime(ctx, in.Trigger)}
	if in.InputTemplate == nil {
		return in, ts
	}
	env := definition.Env{definition.EnvInput: map[string]any{
		TriggerEnvSchedule:        in.Trigger.Name,
		TriggerEnvScheduledTime:   ts.scheduled.UTC().Format(time.RFC3339),
		TriggerEnvScheduledUnixMS: float64(ts.scheduled.UnixMilli()),
	}}
	v, err := evalTemplate(in.InputTemplate, env)
	if err == nil {
		in.Input, err = jsonMarshal(v)
	}
	if err != nil {
		ts.err = err
		return in, ts
	}
	in.InputTemplate = nil
	return in, ts
}

// scheduledTime is when a schedule's run was due: Temporal's search
// attribute, else the time in the workflow id (Temporal appends it to the
// schedule's workflow id), else the run's start.
func scheduledTime(ctx workflow.Context, t *TriggerRef) time.Time {
	sa := workflow.GetTypedSearchAttributes(ctx)
	if v, ok := sa.GetTime(temporal.NewSearchAttributeKeyTime(searchAttrScheduledStart)); ok && !v.IsZero() {
		return v.UTC()
	}
	info := workflow.GetInfo(ctx)
	if t.WorkflowIDBase != "" {
		if rest, ok := strings.CutPrefix(info.WorkflowExecution.ID, t.WorkflowIDBase+"-"); ok {
			if v, err := time.Parse(time.RFC3339, rest); err == nil {
				return v.UTC()
			}
		}
	}
	return info.WorkflowStartTime.UTC()
}

// recordFiring emits the firing's call record (kind schedule) through a
// local activity; its id is derived from the run, so a retry collapses.
func (r *run) recordFiring(ctx workflow.Context, ts triggerStart, runErr error) {
	info := workflow.GetInfo(ctx)
	f := activities.Firing{
		Kind:       calls.Kind(r.in.Trigger.Kind),
		Tenant:     r.in.Meta.Tenant,
		Trigger:    r.in.Trigger.Name,
		WorkflowID: info.WorkflowExecution.ID,
		RunID:      info.WorkflowExecution.RunID,
		Definition: r.def.Name,
		Version:    r.def.Version,
		At:         ts.scheduled,
		Latency:    max(info.WorkflowStartTime.Sub(ts.scheduled), 0),
		Outcome:    activities.FiringOK,
		Labels:     map[string]string{"scheduled_time": ts.scheduled.Format(time.RFC3339)},
		IDParts:    []string{info.WorkflowExecution.ID, info.WorkflowExecution.RunID},
	}
	if runErr != nil {
		f.Outcome, f.ErrorClass, f.Error = activities.FiringError, "bad_input", runErr.Error()
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: triggerRecordTimeout,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 5, InitialInterval: time.Second},
	})
	r.events += localActivityEvents
	if err := workflow.ExecuteLocalActivity(lctx, activities.RecordTriggerActivity, f).Get(lctx, nil); err != nil {
		r.log.Warn("trigger record lost", "trigger", f.Trigger, "error", err.Error())
	}
}
