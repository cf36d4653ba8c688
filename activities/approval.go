package activities

import (
	"context"
	"fmt"
	"strings"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
)

// Approval decisions as recorded (ApprovalRecord.Decision).
const (
	ApprovalApprove = "approve"
	ApprovalReject  = "reject"
	ApprovalTimeout = "timeout"
)

// ApprovalActivity turns approval decisions into call records of kind
// approval, so that analytics can compute approval turnaround. Register
// its Record method under RecordApprovalActivity (the workflow runs it as
// a local activity).
type ApprovalActivity struct {
	rec Recorder
}

// NewApprovalActivity returns the approval activity emitting to rec.
func NewApprovalActivity(rec Recorder) *ApprovalActivity {
	if rec == nil {
		rec = NopRecorder{}
	}
	return &ApprovalActivity{rec: rec}
}

// Record emits one record: latency is the turnaround (DecidedAt minus
// WaitingSince), the outcome ok (approve), rejected (reject) or timeout,
// and the labels carry the decision, the approver's roles and user. The
// record id is derived from the vote, so a retried local activity (or a
// re-run workflow task) emits the same id and the sink drops the
// duplicate.
func (a *ApprovalActivity) Record(ctx context.Context, in ApprovalRecord) error {
	var outcome record.Outcome
	switch in.Decision {
	case ApprovalApprove:
		outcome = record.OutcomeOK
	case ApprovalReject:
		outcome = record.OutcomeRejected
	case ApprovalTimeout:
		outcome = record.OutcomeTimeout
	default:
		return fmt.Errorf("approval record: unknown decision %q", in.Decision)
	}
	r := record.New(calls.KindApproval, in.WaitingSince)
	r.SetTrace(ctx)
	r.ID = approvalRecordID(in)
	r.Tenant = in.Meta.Tenant
	r.KeyID = in.KeyID
	r.Target = in.StepID
	r.WorkflowID = in.WorkflowID
	r.RunID = in.RunID
	r.Definition = in.Meta.Definition
	r.Version = in.Meta.Version
	r.StepID = in.StepID
	r.Attempt = 1
	r.Outcome = outcome
	r.LatencyMS = latencyMS(in.WaitingSince, in.DecidedAt)
	r.Labels = copyLabels(in.Meta.Labels)
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	r.Labels["decision"] = in.Decision
	if len(in.Roles) > 0 {
		r.Labels["roles"] = strings.Join(in.Roles, ",")
	}
	if in.User != "" {
		r.Labels["user"] = in.User
	}
	a.rec.Emit(r)
	return nil
}

// approvalRecordID is a UUIDv7 whose time is when the step started
// waiting and whose other bits hash the vote, so that the same vote always
// gets the same id. DecidedAt is left out on purpose: it is the workflow
// task's time, and a task that ran the record's local activity but did not
// complete (its worker killed) runs again later with a later time: the
// re-run must emit the same id, or the vote is counted twice (found by the
// fault run). StepID is the step's status id, which tells foreach
// iterations apart, and KeyID and User tell the voters of a quorum apart.
func approvalRecordID(in ApprovalRecord) string {
	return DerivedRecordID(in.WaitingSince, in.WorkflowID, in.RunID, in.StepID, in.Decision, in.KeyID, in.User)
}
