package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/workflows"
)

// MaxComment is the longest accepted decision comment, in bytes.
const MaxComment = 4096

// DecideRequest is an approver's vote on a waiting approval step.
type DecideRequest struct {
	StepID   string
	Decision string // workflows.Approve or workflows.Reject
	Comment  string
}

// CheckDecideRequest validates a decision before it is sent; the ingress
// calls it while decoding and Decide calls it again.
func CheckDecideRequest(r DecideRequest) error {
	var p problems
	if !ValidStepID(r.StepID) {
		p.add("step", "must be a step id")
	}
	if r.Decision != workflows.Approve && r.Decision != workflows.Reject {
		p.add("decision", `must be "approve" or "reject"`)
	}
	if len(r.Comment) > MaxComment {
		p.add("comment", fmt.Sprintf("must be at most %d bytes", MaxComment))
	} else if !utf8.ValidString(r.Comment) {
		p.add("comment", "must be valid UTF-8")
	}
	return p.err("decision")
}

// Cancel requests cancellation of a running workflow of the caller's
// tenant; the workflow then runs its compensations. Only its submitter
// (the same user, or the same key) or an admin may cancel it
// (ErrForbidden, code not_submitter). Cancelling a closed workflow is
// ErrConflict.
func (o *Orchestrator) Cancel(ctx context.Context, caller Caller, id string) error {
	if err := checkCaller(caller); err != nil {
		return err
	}
	desc, err := o.describe(ctx, caller, id)
	if err != nil {
		return err
	}
	if err := o.mayCancel(caller, id, desc); err != nil {
		return err
	}
	if desc.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return newError(ErrConflict, "workflow_closed", "workflow %s is already %s", id, o.closedState(desc.Status, desc.Memo))
	}
	if err := o.c.CancelWorkflow(ctx, WorkflowID(caller.Tenant, id), ""); err != nil {
		return temporalError(err, "cancel workflow "+id)
	}
	return nil
}

// Decide sends the caller's vote as the workflow's decide Update and waits
// for its result. The workflow's validator refusals map to ErrNotFound
// (unknown step), ErrConflict (step not waiting, duplicate vote, self
// approval), ErrForbidden (not an approver) and ErrInvalid; the submitter's
// own vote is refused here too (checkSelfApproval). The request id and the
// voter are part of the update id, so a retried request is not counted
// twice, and two approvers that happen to send the same request id are
// two votes.
func (o *Orchestrator) Decide(ctx context.Context, caller Caller, id string, req DecideRequest) (workflows.DecisionResult, error) {
	if err := checkCaller(caller); err != nil {
		return workflows.DecisionResult{}, err
	}
	if err := CheckDecideRequest(req); err != nil {
		return workflows.DecisionResult{}, err
	}
	desc, err := o.describe(ctx, caller, id)
	if err != nil {
		return workflows.DecisionResult{}, err
	}
	if desc.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return workflows.DecisionResult{}, newError(ErrConflict, "workflow_closed", "workflow %s is already %s", id, o.closedState(desc.Status, desc.Memo))
	}
	if err := o.checkSelfApproval(ctx, caller, id, req.StepID, desc); err != nil {
		return workflows.DecisionResult{}, err
	}
	d := workflows.Decision{
		StepID:    req.StepID,
		Decision:  req.Decision,
		Comment:   req.Comment,
		By:        caller.Identity(),
		RequestID: caller.RequestID,
	}
	opts := client.UpdateWorkflowOptions{
		WorkflowID:   WorkflowID(caller.Tenant, id),
		UpdateName:   workflows.DecideUpdate,
		Args:         []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	}
	if caller.RequestID != "" {
		// A retried request (same voter, request id, step and decision) is
		// deduplicated by Temporal; a reused request id for another vote,
		// or another voter's, is not mistaken for it.
		opts.UpdateID = decideUpdateID(caller, req)
	}
	// The caller's cached list of pending approvals would still show the
	// step it votes on now.
	defer o.approvals.forget(approvalCacheKey(caller))
	h, err := o.c.UpdateWorkflow(ctx, opts)
	var res workflows.DecisionResult
	if err == nil {
		err = h.Get(ctx, &res)
	}
	if err != nil {
		return workflows.DecisionResult{}, decideError(err, id, req.StepID)
	}
	return res, nil
}

// decideUpdateID is the decide Update's id: Temporal deduplicates updates
// by id, so it names everything that makes a vote distinct, the voter
// included (its user, else its key: a user votes once whatever key it
// uses).
func decideUpdateID(caller Caller, req DecideRequest) string {
	voter := "key:" + caller.KeyID
	if caller.User != "" {
		voter = "user:" + caller.User
	}
	return "decide/" + req.StepID + "/" + req.Decision + "/" + voter + "/" + caller.RequestID
}

// decideError maps the validator's application error types (see
// workflows.ErrType*) to the sentinel kinds.
func decideError(err error, id, step string) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		msg := app.Message()
		switch app.Type() {
		case workflows.ErrTypeUnknownStep:
			return &Error{Kind: ErrNotFound, Code: "step_not_found", Message: orDefault(msg, fmt.Sprintf("workflow %s has no approval step %q", id, step))}
		case workflows.ErrTypeStepNotWaiting:
			return &Error{Kind: ErrConflict, Code: "step_not_waiting", Message: orDefault(msg, fmt.Sprintf("step %q is not waiting for a decision", step))}
		case workflows.ErrTypeSelfApproval:
			return &Error{Kind: ErrConflict, Code: "self_approval", Message: orDefault(msg, fmt.Sprintf("you submitted this workflow and may not decide step %q", step))}
		case workflows.ErrTypeDuplicateVote:
			return &Error{Kind: ErrConflict, Code: "duplicate_vote", Message: orDefault(msg, fmt.Sprintf("you already decided step %q", step))}
		case workflows.ErrTypeNotApprover:
			return &Error{Kind: ErrForbidden, Code: "not_approver", Message: orDefault(msg, fmt.Sprintf("you may not decide step %q", step))}
		case workflows.ErrTypeInvalidDecision:
			return &Error{Kind: ErrInvalid, Code: "invalid_decision", Message: orDefault(msg, "invalid decision")}
		}
	}
	// The workflow passed describe, so "not found" now means it closed.
	var wee *temporal.WorkflowExecutionError
	var nf *serviceerror.NotFound
	if errors.As(err, &wee) || errors.As(err, &nf) {
		return newError(ErrConflict, "workflow_closed", "workflow %s closed before the decision was taken", id)
	}
	return temporalError(err, "decide step "+step+" of "+id)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
