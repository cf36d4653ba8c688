package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Status is an orchestration's state as the API shows it (wire.RunStatus).
type Status = wire.RunStatus

// Status returns the state of a workflow of the caller's tenant: from the
// status query while it runs, and from Temporal's record of the closed
// execution (result or failure) once it has closed.
func (o *Orchestrator) Status(ctx context.Context, caller Caller, id string) (Status, error) {
	if err := checkCaller(caller); err != nil {
		return Status{}, err
	}
	desc, err := o.describe(ctx, caller, id)
	if err != nil {
		return Status{}, err
	}
	return o.statusOf(ctx, id, desc)
}

func (o *Orchestrator) statusOf(ctx context.Context, id string, desc *client.WorkflowExecutionDescription) (Status, error) {
	if desc.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return o.query(ctx, id, desc)
	}
	return o.closed(ctx, id, desc)
}

// describe returns the latest run of a workflow of the caller's tenant, or
// ErrNotFound when it does not exist, is not an orchestration or belongs to
// another tenant.
func (o *Orchestrator) describe(ctx context.Context, caller Caller, id string) (*client.WorkflowExecutionDescription, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	desc, err := o.c.DescribeWorkflow(ctx, WorkflowID(caller.Tenant, id), "")
	if err != nil {
		return nil, temporalError(err, "describe workflow "+id)
	}
	tenant, _ := desc.TypedSearchAttributes.GetKeyword(o.saTenant)
	if tenant != caller.Tenant || desc.WorkflowType.Name != workflows.OrchestrationWorkflow {
		return nil, newError(ErrNotFound, "workflow_not_found", "workflow %q not found", id)
	}
	return desc, nil
}

// query asks a running workflow for its status.
func (o *Orchestrator) query(ctx context.Context, id string, desc *client.WorkflowExecutionDescription) (Status, error) {
	qctx, cancel := context.WithTimeout(ctx, o.opts.QueryTimeout)
	defer cancel()
	v, err := o.c.QueryWorkflow(qctx, WorkflowID(o.tenantOf(desc), id), desc.WorkflowExecution.RunID, workflows.StatusQuery)
	if err != nil {
		// The run may have closed (or continued as new) since describe.
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) && ctx.Err() == nil {
			return Status{}, newError(ErrUnavailable, "status_changed", "workflow %s changed while it was read; retry", id)
		}
		if qctx.Err() != nil && ctx.Err() == nil {
			return Status{}, newError(ErrUnavailable, "query_timeout", "workflow %s did not answer its status query within %s (is a worker running?)", id, o.opts.QueryTimeout)
		}
		return Status{}, temporalError(err, "query workflow "+id)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		return Status{}, fmt.Errorf("decode status of %s: %w", id, err)
	}
	return o.fill(Status{ID: id, RunID: desc.WorkflowExecution.RunID, Status: st}, desc), nil
}

// closed builds the status of a closed run. The status query still
// answers after the close (a worker replays the history), with every step;
// when no worker answers within ClosedQueryTimeout, the status is built
// from Temporal's record of the run: state, times, result or failure.
func (o *Orchestrator) closed(ctx context.Context, id string, desc *client.WorkflowExecutionDescription) (Status, error) {
	wid := WorkflowID(o.tenantOf(desc), id)
	runID := desc.WorkflowExecution.RunID
	qctx, cancel := context.WithTimeout(ctx, o.opts.ClosedQueryTimeout)
	v, err := o.c.QueryWorkflow(qctx, wid, runID, workflows.StatusQuery)
	cancel()
	if err == nil {
		var st workflows.Status
		if err := v.Get(&st); err == nil && st.State != "" && st.State != workflows.RunRunning {
			return o.fill(Status{ID: id, RunID: runID, Status: st}, desc), nil
		}
	} else if ctx.Err() != nil {
		return Status{}, temporalError(ctx.Err(), "query workflow "+id)
	} else {
		o.log.Debug("status of closed workflow from its record", "workflow", id, "err", err)
	}

	st := Status{ID: id, RunID: runID}
	st.State = o.closedState(desc.Status, desc.Memo)
	var raw json.RawMessage
	err = o.c.GetWorkflow(ctx, wid, runID).Get(ctx, &raw)
	switch {
	case err == nil:
		if len(raw) > 0 && string(raw) != "null" {
			st.Output = raw
		}
	case ctx.Err() != nil:
		return Status{}, temporalError(ctx.Err(), "read result of "+id)
	default:
		var se serviceerror.ServiceError
		if errors.As(err, &se) {
			return Status{}, temporalError(err, "read result of "+id)
		}
		st.Error = failureMessage(err)
	}
	return o.fill(st, desc), nil
}

// fill completes a status with what Temporal knows regardless of the query.
func (o *Orchestrator) fill(st Status, desc *client.WorkflowExecutionDescription) Status {
	if st.Definition == "" {
		st.Definition, _ = desc.TypedSearchAttributes.GetKeyword(o.saDefinition)
	}
	if st.Version == "" {
		st.Version, _ = desc.TypedSearchAttributes.GetKeyword(o.saVersion)
	}
	st.Tenant = o.tenantOf(desc)
	if st.StartedAt.IsZero() {
		st.StartedAt = desc.WorkflowStartTime
	}
	if desc.WorkflowCloseTime != nil && st.ClosedAt == nil {
		t := *desc.WorkflowCloseTime
		st.ClosedAt = &t
	}
	if st.Steps == nil {
		st.Steps = []workflows.StepStatus{}
	}
	return st
}

func (o *Orchestrator) tenantOf(desc *client.WorkflowExecutionDescription) string {
	t, _ := desc.TypedSearchAttributes.GetKeyword(o.saTenant)
	return t
}

// failureMessage returns the innermost useful message of a workflow failure.
func failureMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return "cancelled"
	}
	var term *temporal.TerminatedError
	if errors.As(err, &term) {
		return "terminated"
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out: " + timeout.Message()
	}
	// Anything else is Temporal's or the SDK's text, which may name
	// addresses: shown without them (issue 10 item 9).
	var wee *temporal.WorkflowExecutionError
	if errors.As(err, &wee) {
		if u := errors.Unwrap(wee); u != nil {
			return calls.RedactAddresses(u.Error())
		}
	}
	return calls.RedactAddresses(err.Error())
}

// closedState is the API state of a run: the final state the
// orchestration recorded in its memo (workflows.MemoState) once it has
// closed, else the mapping of Temporal's status (runs of older workers,
// successes, terminations, and Temporal's own execution timeout).
func (o *Orchestrator) closedState(s enumspb.WorkflowExecutionStatus, memo *commonpb.Memo) workflows.RunState {
	if s == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || s == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
		return runState(s)
	}
	if p := memo.GetFields()[workflows.MemoState]; p != nil {
		var state workflows.RunState
		if o.opts.DataConverter.FromPayload(p, &state) == nil && recordedStates[state] {
			return state
		}
	}
	return runState(s)
}

// recordedStates are the states a closed orchestration may record in its
// memo; anything else there is ignored.
var recordedStates = map[workflows.RunState]bool{
	workflows.RunSucceeded: true, workflows.RunFailed: true, workflows.RunCancelled: true,
	workflows.RunTimedOut: true, workflows.RunCompensated: true,
}

// runState maps a Temporal execution status to the API's state.
func runState(s enumspb.WorkflowExecutionStatus) workflows.RunState {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return workflows.RunSucceeded
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return workflows.RunFailed
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return workflows.RunCancelled
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return workflows.RunTerminated
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return workflows.RunTimedOut
	default:
		// Running, and ContinuedAsNew (the next run is running).
		return workflows.RunRunning
	}
}

// temporalError maps Temporal client errors to the sentinel kinds.
func temporalError(err error, what string) error {
	var (
		nf  *serviceerror.NotFound
		ra  *serviceerror.ResourceExhausted
		un  *serviceerror.Unavailable
		de  *serviceerror.DeadlineExceeded
		nnf *serviceerror.NamespaceNotFound
	)
	switch {
	case errors.As(err, &nf):
		return &Error{Kind: ErrNotFound, Code: "workflow_not_found", Message: "workflow not found"}
	case errors.As(err, &ra), errors.As(err, &un), errors.As(err, &nnf):
		// The client learns the class; Temporal's address and the gRPC
		// detail stay in Cause, for the access log (issue 10 item 9).
		return &Error{Kind: ErrUnavailable, Code: "temporal_unavailable", Message: what + ": Temporal is unavailable; retry later", Cause: err}
	case errors.As(err, &de), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", what, context.DeadlineExceeded)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", what, context.Canceled)
	}
	return fmt.Errorf("%s: %w", what, err)
}
