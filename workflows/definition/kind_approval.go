package definition

import (
	"fmt"
	"strings"
)

// What an approval step does when its timeout passes without a decision.
const (
	OnTimeoutReject   = "reject"
	OnTimeoutApprove  = "approve"
	OnTimeoutEscalate = "escalate"
)

// What a rejected approval step does: fail the orchestration (default,
// running compensations), or succeed with decision "rejected" in its output
// so that later steps can branch on it.
const (
	OnRejectFail     = "fail"
	OnRejectContinue = "continue"
)

// approvalKind waits for people to approve or reject.
var approvalKind = stepKind{
	name: KindApproval,
	fields: []field{
		{name: "approvers", typ: tObject, obj: approversSpec},
		quorumField,
		onTimeoutField,
		{name: "on_reject", typ: tString, enum: []string{OnRejectFail, OnRejectContinue},
			desc: "fail (default): a rejection fails the orchestration and runs compensations; continue: the step succeeds with decision \"rejected\" and later steps branch on steps.<id>.output.decision."},
		{name: "escalate_to", typ: tObject, obj: approversSpec},
		{name: "escalation_timeout", typ: tDuration},
		{name: "allow_self_approval", typ: tBool,
			desc: "Let the submitter of the orchestration (the same user, or the same key when it has no user) vote on this step; by default it may not (409 self_approval)."},
		timeoutField,
	},
	required: []string{"approvers"},
	check:    (*validator).approvalStep,
}

var quorumField = field{name: "quorum", typ: tInt, min: num(1), max: num(1000), desc: "Approvals needed; default 1."}

var approversSpec = &objectSpec{
	name: "approvers",
	desc: "Who may decide: any key holding one of roles, or whose user is one of users.",
	fields: []field{
		{name: "roles", typ: tList, elem: &field{typ: tString}},
		{name: "users", typ: tList, elem: &field{typ: tString}},
	},
}

func (v *validator) approvalStep(s *Step, path string, _ exprCtx) {
	possible := v.approvers(path+".approvers", s.Approvers, true)
	v.intField(path, &quorumField, s.Quorum)
	if possible > 0 && s.Quorum > possible {
		v.errorf(path+".quorum", "%d is more than the %d users who may approve", s.Quorum, possible)
	}
	switch s.OnTimeout {
	case "", OnTimeoutReject, OnTimeoutApprove, OnTimeoutEscalate:
	default:
		v.errorf(path+".on_timeout", "must be one of %s, %s, %s", OnTimeoutReject, OnTimeoutApprove, OnTimeoutEscalate)
	}
	switch s.OnReject {
	case "", OnRejectFail, OnRejectContinue:
	default:
		v.errorf(path+".on_reject", "must be %s or %s", OnRejectFail, OnRejectContinue)
	}
	if s.OnTimeout != "" && s.Timeout == "" {
		v.errorf(path+".timeout", "required when on_timeout is set")
	}
	if s.OnTimeout == OnTimeoutEscalate {
		if s.EscalateTo == nil {
			v.errorf(path+".escalate_to", "required when on_timeout is escalate")
		} else {
			v.approvers(path+".escalate_to", s.EscalateTo, true)
		}
	} else {
		if s.EscalateTo != nil {
			v.errorf(path+".escalate_to", "only with on_timeout: escalate")
		}
		if s.EscalationTimeout != "" {
			v.errorf(path+".escalation_timeout", "only with on_timeout: escalate")
		}
	}
	v.duration(path+".escalation_timeout", s.EscalationTimeout, maxStepTimeout)
}

// approvers checks an approvers block and returns the number of distinct
// users when only users are listed (0 when roles make it open-ended).
func (v *validator) approvers(path string, a *Approvers, required bool) int {
	if a == nil || (len(a.Roles) == 0 && len(a.Users) == 0) {
		if required {
			v.errorf(path, "at least one role or user is required")
		}
		return 0
	}
	for i, r := range a.Roles {
		if strings.TrimSpace(r) == "" {
			v.errorf(fmt.Sprintf("%s.roles[%d]", path, i), "must not be empty")
		}
	}
	users := map[string]bool{}
	for i, u := range a.Users {
		if strings.TrimSpace(u) == "" {
			v.errorf(fmt.Sprintf("%s.users[%d]", path, i), "must not be empty")
		}
		users[u] = true
	}
	if len(a.Roles) > 0 {
		return 0
	}
	return len(users)
}

// ApprovalQuorum is the number of approvals an approval step needs (1 by
// default).
func (s *Step) ApprovalQuorum() int {
	if s.Quorum <= 0 {
		return 1
	}
	return s.Quorum
}
