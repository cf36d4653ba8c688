package orchestrator

import (
	"context"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/workflows"
)

// Separation of duties at the edge: the identity that submitted an
// orchestration may not vote on its approval steps unless a step sets
// allow_self_approval. The workflow's decide validator enforces the same
// rule (workflows.IsSelfApproval) on runs started since it exists; the
// checks here cover every run, including those that were already waiting
// when it came, since they read who submitted the run from its memo.

// submittedBy reads MemoSubmittedBy ("" when absent or unreadable, which
// matches nobody).
func (o *Orchestrator) submittedBy(memo *commonpb.Memo) string {
	p := memo.GetFields()[workflows.MemoSubmittedBy]
	if p == nil {
		return ""
	}
	var by string
	if err := o.opts.DataConverter.FromPayload(p, &by); err != nil {
		return ""
	}
	return by
}

// checkSelfApproval refuses the caller's vote on step with ErrConflict
// (self_approval) when the caller submitted the orchestration, is one of
// the step's approvers (a caller who is not is refused as not_approver by
// the decision itself, as the workflow orders its checks) and the step
// does not allow self-approval. Only the submitter costs a status query;
// when the step is not waiting, the decision itself reports why.
func (o *Orchestrator) checkSelfApproval(ctx context.Context, caller Caller, id, step string, desc *client.WorkflowExecutionDescription) error {
	by := o.submittedBy(desc.Memo)
	if !workflows.IsSubmitter(caller.Identity(), by) {
		return nil
	}
	st, err := o.query(ctx, id, desc)
	if err != nil {
		return err
	}
	for _, p := range st.Pending {
		if p.StepID == step && workflows.IsApprover(p.Approvers, caller.Identity()) && workflows.IsSelfApproval(p, caller.Identity(), by) {
			return newError(ErrConflict, "self_approval",
				"you submitted workflow %s and may not decide its step %q (separation of duties; the step may set allow_self_approval)", id, step)
		}
	}
	return nil
}
