package orchestrator

import (
	"slices"

	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/workflows"
)

// RoleAdmin is the role that may act on every workflow of its tenant (the
// ingress's auth.RoleAdmin; workflows/ does not import ingress/).
const RoleAdmin = "admin"

// mayCancel lets the submitter of a workflow, or an admin of its tenant,
// cancel it (issue 10 item 9): within a tenant, another submitter may not.
// The submitter is the memo's submitted_by: the user of the submitting key
// when it had one, else the key id; a caller matches by user or by key.
func (o *Orchestrator) mayCancel(caller Caller, id string, desc *client.WorkflowExecutionDescription) error {
	if slices.Contains(caller.Roles, RoleAdmin) {
		return nil
	}
	var owner string
	if p := desc.Memo.GetFields()[workflows.MemoSubmittedBy]; p != nil {
		if err := o.opts.DataConverter.FromPayload(p, &owner); err != nil {
			o.log.Warn("memo submitted_by unreadable; only admins may cancel", "workflow", id, "err", err)
			owner = ""
		}
	}
	if owner != "" && (owner == caller.SubmittedBy() || owner == caller.KeyID) {
		return nil
	}
	return newError(ErrForbidden, "not_submitter", "only the submitter of workflow %s or an admin of the tenant may cancel it", id)
}
