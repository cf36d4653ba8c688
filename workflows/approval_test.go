package workflows_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows"
)

var (
	ann   = workflows.Identity{KeyID: "k-ann", User: "ann", Roles: []string{"approver", "manager"}}
	bob   = workflows.Identity{KeyID: "k-bob", User: "bob", Roles: []string{"approver", "manager"}}
	carol = workflows.Identity{KeyID: "k-carol", User: "carol", Roles: []string{"approver"}}
	dan   = workflows.Identity{KeyID: "k-dan", User: "dan", Roles: []string{"director"}}
	bot   = workflows.Identity{KeyID: "k-bot", Roles: []string{"manager"}}
)

const approvalDef = `{"steps": [
	{"id": "reserve", "kind": "http", "service": "s", "path": "/reserve",
	 "compensate": {"id": "unreserve", "kind": "http", "service": "s", "path": "/unreserve/${{ steps.reserve.output.body.path }}"}},
	{"id": "approve", "kind": "approval", "approvers": {"roles": ["manager"], "users": ["carol"]}, "quorum": %QUORUM%, "timeout": "1h",
	 "on_timeout": "%ONTIMEOUT%", "escalate_to": {"users": ["dan"]}, "escalation_timeout": "2h"},
	{"id": "ship", "kind": "http", "service": "s", "path": "/ship", "body": {"decision": "${{ steps.approve.output.decision }}", "comment": "${{ steps.approve.output.comment }}"}},
	{"id": "cool", "kind": "wait", "duration": "1h"}
], "output": "${{ steps.approve.output }}"}`

func approvalInput(t *testing.T, quorum, onTimeout string) workflows.OrchestrationInput {
	src := strings.ReplaceAll(strings.ReplaceAll(approvalDef, "%QUORUM%", quorum), "%ONTIMEOUT%", onTimeout)
	return input(def(t, src), `{}`)
}

func TestApprovalApprovedByUpdate(t *testing.T) {
	h := newHarness(t, nil)
	var pending workflows.Status
	h.env.RegisterDelayedCallback(func() { pending = h.status() }, 10*time.Minute)
	var res updateOutcome
	h.decideAt(20*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, Comment: "fine", By: ann}, &res)
	h.run(approvalInput(t, "1", "reject"))
	out := h.result()
	if out["decision"] != workflows.OutcomeApproved || out["comment"] != "fine" || out["timed_out"] != false {
		t.Errorf("output %v", out)
	}
	if !res.accepted || res.err != nil || !res.result.Resolved || res.result.Outcome != workflows.OutcomeApproved || res.result.Votes != 1 {
		t.Errorf("update %+v", res)
	}
	if got := h.f.paths(); len(got) != 2 || got[1] != "/ship" {
		t.Errorf("calls %v", got)
	}
	if b := string(h.f.calls[1].Body); b != `{"comment":"fine","decision":"approved"}` {
		t.Errorf("ship body %s", b)
	}
	// While waiting, the status showed the pending approval and who may decide.
	if len(pending.Pending) != 1 {
		t.Fatalf("pending %+v", pending.Pending)
	}
	p := pending.Pending[0]
	if p.StepID != "approve" || p.Quorum != 1 || p.Deadline == nil || p.Deadline.Sub(p.Since) != time.Hour || p.Approvers.Users[0] != "carol" || p.Approvers.Roles[0] != "manager" {
		t.Errorf("pending approval %+v", p)
	}
	if s := step(t, pending, "approve"); s.State != workflows.StepWaitingApproval {
		t.Errorf("approve state %s", s.State)
	}
	recs := h.f.approvalRecords()
	if len(recs) != 1 || recs[0].Decision != activities.ApprovalApprove || recs[0].User != "ann" || recs[0].DecidedAt.Sub(recs[0].WaitingSince) != 20*time.Minute ||
		strings.Join(recs[0].Roles, ",") != "manager" || recs[0].StepID != "approve" || recs[0].WorkflowID == "" {
		t.Errorf("approval records %+v", recs)
	}
	if st := h.status(); len(st.Pending) != 0 || step(t, st, "approve").State != workflows.StepSucceeded {
		t.Errorf("after: %+v", st.Pending)
	}
}

func TestApprovalRejectedCompensates(t *testing.T) {
	h := newHarness(t, nil)
	var res updateOutcome
	h.decideAt(time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Reject, Comment: "too expensive", By: carol}, &res)
	h.run(approvalInput(t, "2", "reject"))
	ae := h.failure()
	if ae.Type() != workflows.ErrTypeApprovalRejected || !strings.Contains(ae.Error(), "approval rejected: by user carol: too expensive") {
		t.Errorf("failure %s: %v", ae.Type(), ae)
	}
	if res.result.Outcome != workflows.OutcomeRejected || !res.result.Resolved {
		t.Errorf("update %+v", res)
	}
	// The interpolated value "/reserve" is one escaped segment (issue 10).
	if got := h.f.paths(); len(got) != 2 || got[1] != "/unreserve/%2Freserve" {
		t.Errorf("calls %v, want the compensation after the reject", got)
	}
	st := h.status()
	if st.State != workflows.RunCompensated || !strings.Contains(st.Error, "too expensive") {
		t.Errorf("run %s %q", st.State, st.Error)
	}
	if s := step(t, st, "reserve"); s.State != workflows.StepCompensated {
		t.Errorf("reserve %s", s.State)
	}
	if s := step(t, st, "reserve.compensate"); s.State != workflows.StepSucceeded {
		t.Errorf("compensation %s", s.State)
	}
	a := step(t, st, "approve")
	if a.State != workflows.StepFailed || outputOf(t, a)["decision"] != workflows.OutcomeRejected {
		t.Errorf("approve %+v", a)
	}
}

// TestApprovalRejectedContinues: with on_reject: continue a rejection is
// an answer: the step succeeds with decision "rejected", later steps branch
// on it, nothing is compensated.
func TestApprovalRejectedContinues(t *testing.T) {
	h := newHarness(t, nil)
	var res updateOutcome
	h.decideAt(time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Reject, Comment: "too expensive", By: carol}, &res)
	h.run(input(def(t, `{"steps": [
		{"id": "reserve", "kind": "http", "service": "s", "path": "/reserve",
		 "compensate": {"id": "unreserve", "kind": "http", "service": "s", "path": "/unreserve"}},
		{"id": "approve", "kind": "approval", "approvers": {"users": ["carol"]}, "on_reject": "continue"},
		{"id": "ship", "kind": "http", "service": "s", "path": "/ship", "when": "steps.approve.output.decision == 'approved'"},
		{"id": "apologise", "kind": "http", "service": "s", "path": "/apologise", "when": "steps.approve.output.decision == 'rejected'",
		 "body": {"reason": "${{ steps.approve.output.comment }}"}}
	], "output": "${{ steps.approve.output }}"}`), `{}`))
	out := h.result()
	if out["decision"] != workflows.OutcomeRejected || out["comment"] != "too expensive" {
		t.Errorf("output %v", out)
	}
	if res.result.Outcome != workflows.OutcomeRejected || !res.result.Resolved {
		t.Errorf("update %+v", res)
	}
	if got := strings.Join(h.f.paths(), " "); got != "/reserve /apologise" {
		t.Errorf("calls %s, want /reserve /apologise", got)
	}
	if b := string(h.f.calls[1].Body); b != `{"reason":"too expensive"}` {
		t.Errorf("apologise body %s", b)
	}
	st := h.status()
	if st.State != workflows.RunSucceeded {
		t.Errorf("run %s %q", st.State, st.Error)
	}
	if s := step(t, st, "approve"); s.State != workflows.StepSucceeded {
		t.Errorf("approve %s", s.State)
	}
	if s := step(t, st, "ship"); s.State != workflows.StepSkipped {
		t.Errorf("ship %s", s.State)
	}
	if s := step(t, st, "reserve"); s.State != workflows.StepSucceeded {
		t.Errorf("reserve %s", s.State)
	}
}

func TestApprovalQuorumAndValidator(t *testing.T) {
	h := newHarness(t, nil)
	outcomes := map[string]*updateOutcome{}
	send := func(name string, at time.Duration, d workflows.Decision) {
		o := &updateOutcome{}
		outcomes[name] = o
		h.decideAt(at, d, o)
	}
	send("unknown", time.Minute, workflows.Decision{StepID: "nope", Decision: workflows.Approve, By: ann})
	send("not approval", time.Minute+time.Second, workflows.Decision{StepID: "reserve", Decision: workflows.Approve, By: ann})
	send("invalid", 2*time.Minute, workflows.Decision{StepID: "approve", Decision: "maybe", By: ann})
	send("no identity", 2*time.Minute+time.Second, workflows.Decision{StepID: "approve", Decision: workflows.Approve})
	send("outsider", 3*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: dan})
	send("first", 4*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: ann})
	send("duplicate", 5*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Reject, By: workflows.Identity{KeyID: "other-key", User: "ann", Roles: []string{"manager"}}})
	send("by role", 6*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: bot})
	send("late", 7*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: bob})
	h.run(approvalInput(t, "2", "reject"))
	out := h.result()
	votes, _ := out["votes"].([]any)
	if out["decision"] != workflows.OutcomeApproved || len(votes) != 2 {
		t.Errorf("output %v", out)
	}
	wantErr := map[string]string{
		"unknown":      workflows.ErrTypeUnknownStep,
		"not approval": workflows.ErrTypeUnknownStep,
		"invalid":      workflows.ErrTypeInvalidDecision,
		"no identity":  workflows.ErrTypeInvalidDecision,
		"outsider":     workflows.ErrTypeNotApprover,
		"duplicate":    workflows.ErrTypeDuplicateVote,
		"late":         workflows.ErrTypeStepNotWaiting,
	}
	for name, o := range outcomes {
		want, bad := wantErr[name]
		switch {
		case bad && (o.err == nil || errType(o.err) != want):
			t.Errorf("%s: error %v (%s), want %s", name, o.err, errType(o.err), want)
		case bad && o.accepted:
			t.Errorf("%s: accepted", name)
		case !bad && (o.err != nil || !o.accepted):
			t.Errorf("%s: %+v", name, o)
		}
	}
	if r := outcomes["first"].result; r.Resolved || r.Votes != 1 || r.Quorum != 2 {
		t.Errorf("first vote result %+v", r)
	}
	if r := outcomes["by role"].result; !r.Resolved || r.Outcome != workflows.OutcomeApproved || r.Votes != 2 {
		t.Errorf("second vote result %+v", r)
	}
	if n := len(h.f.approvalRecords()); n != 2 {
		t.Errorf("%d approval records, want 2 (only accepted votes)", n)
	}
}

func TestApprovalBySignal(t *testing.T) {
	h := newHarness(t, nil)
	// An invalid signal is logged and ignored; the valid one decides.
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.DecisionSignal, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: dan})
		h.env.SignalWorkflow(workflows.DecisionSignal, "not a decision")
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(workflows.DecisionSignal, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: carol, Comment: "ok"})
	}, 2*time.Minute)
	h.run(approvalInput(t, "1", "reject"))
	out := h.result()
	if out["decision"] != workflows.OutcomeApproved || out["comment"] != "ok" {
		t.Errorf("output %v", out)
	}
	if recs := h.f.approvalRecords(); len(recs) != 1 || recs[0].User != "carol" {
		t.Errorf("records %+v", recs)
	}
}

func TestApprovalTimeouts(t *testing.T) {
	cases := []struct {
		name       string
		onTimeout  string
		decide     *workflows.Decision
		decideAt   time.Duration
		wantOK     bool
		wantEsc    bool
		wantTimed  bool
		wantWait   time.Duration
		wantRecord []string
	}{
		{name: "reject", onTimeout: "reject", wantTimed: true, wantWait: time.Hour, wantRecord: []string{"timeout"}},
		{name: "approve", onTimeout: "approve", wantOK: true, wantTimed: true, wantWait: time.Hour, wantRecord: []string{"timeout"}},
		{name: "escalate then reject", onTimeout: "escalate", wantEsc: true, wantTimed: true, wantWait: 3 * time.Hour, wantRecord: []string{"timeout", "timeout"}},
		{name: "escalate then approve", onTimeout: "escalate", decide: &workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: dan},
			decideAt: 90 * time.Minute, wantOK: true, wantEsc: true, wantWait: 90 * time.Minute, wantRecord: []string{"timeout", "approve"}},
		{name: "decided before timeout", onTimeout: "reject", decide: &workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: ann},
			decideAt: 30 * time.Minute, wantOK: true, wantWait: 30 * time.Minute, wantRecord: []string{"approve"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			var res updateOutcome
			if tc.decide != nil {
				h.decideAt(tc.decideAt, *tc.decide, &res)
			}
			var waitedUntil time.Time
			h.f.http = func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
				if in.Path == "/ship" || strings.HasPrefix(in.Path, "/unreserve") {
					waitedUntil = h.env.Now()
				}
				return echo(in), nil
			}
			start := h.env.Now()
			h.run(approvalInput(t, "1", tc.onTimeout))
			st := h.status()
			a := outputOf(t, step(t, st, "approve"))
			if a["escalated"] != tc.wantEsc || a["timed_out"] != tc.wantTimed {
				t.Errorf("approve output %v", a)
			}
			if tc.wantOK {
				h.result()
			} else if ae := h.failure(); ae.Type() != workflows.ErrTypeApprovalRejected || !strings.Contains(ae.Error(), "timed out") {
				t.Errorf("failure %v", ae)
			}
			if tc.decide != nil && (res.err != nil || !res.result.Resolved) {
				t.Errorf("update %+v", res)
			}
			if w := waitedUntil.Sub(start); w < tc.wantWait-time.Second || w > tc.wantWait+time.Minute {
				t.Errorf("waited %s, want %s", w, tc.wantWait)
			}
			var got []string
			for _, r := range h.f.approvalRecords() {
				got = append(got, r.Decision)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantRecord, ",") {
				t.Errorf("records %v, want %v", got, tc.wantRecord)
			}
		})
	}
}

func TestApprovalEscalationWidensApprovers(t *testing.T) {
	h := newHarness(t, nil)
	var early, late updateOutcome
	h.decideAt(30*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: dan}, &early)
	var pending workflows.Status
	h.env.RegisterDelayedCallback(func() { pending = h.status() }, 80*time.Minute)
	h.decideAt(100*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: dan}, &late)
	h.run(approvalInput(t, "1", "escalate"))
	h.result()
	if errType(early.err) != workflows.ErrTypeNotApprover {
		t.Errorf("before escalation dan must be refused: %v", early.err)
	}
	if late.err != nil || !late.result.Resolved {
		t.Errorf("after escalation: %+v", late)
	}
	if len(pending.Pending) != 1 || !pending.Pending[0].Escalated || pending.Pending[0].Approvers.Users[1] != "dan" || pending.Pending[0].Deadline == nil {
		t.Errorf("pending after escalation %+v", pending.Pending)
	}
}

func TestApprovalsInForeach(t *testing.T) {
	h := newHarness(t, nil)
	for i, id := range []string{"each[0].ok", "each[1].ok", "each[2].ok"} {
		h.decideAt(time.Duration(i+1)*time.Minute, workflows.Decision{StepID: id, Decision: workflows.Approve, By: ann}, nil)
	}
	var pending workflows.Status
	h.env.RegisterDelayedCallback(func() { pending = h.status() }, 30*time.Second)
	d := def(t, `{"steps": [{"id": "each", "kind": "foreach", "items": "[1,2,3]", "concurrency": 3, "steps": [
		{"id": "ok", "kind": "approval", "approvers": {"roles": ["manager"]}}]}]}`)
	h.run(input(d, `{}`))
	h.result()
	if len(pending.Pending) != 3 || pending.Pending[2].StepID != "each[2].ok" {
		t.Errorf("pending %+v", pending.Pending)
	}
}

// TestSelfApproval: the identity that submitted an orchestration may not
// vote on its approval steps (same user whatever key, or the same key when
// it has no user), by update or by signal, unless the step sets
// allow_self_approval.
func TestSelfApproval(t *testing.T) {
	const steps = `{"steps": [{"id": "ok", "kind": "approval", "approvers": {"roles": ["manager"]}, "quorum": 2%s}],
		"output": "${{ steps.ok.output }}"}`
	annOtherKey := workflows.Identity{KeyID: "k-ann-2", User: "ann", Roles: []string{"manager"}}
	cases := []struct {
		name        string
		extra       string
		meta        activities.RunMeta
		votes       []workflows.Identity
		signal      *workflows.Identity
		wantRefused []int // indexes of votes refused as self-approval
		wantVoters  []string
	}{
		{name: "user", meta: activities.RunMeta{Tenant: "acme", KeyID: "k-ann", SubmittedBy: "ann"},
			votes: []workflows.Identity{ann, annOtherKey, bob, bot}, wantRefused: []int{0, 1}, wantVoters: []string{"bob", "k-bot"}},
		{name: "key without user", meta: activities.RunMeta{Tenant: "acme", KeyID: "k-bot", SubmittedBy: "k-bot"},
			votes: []workflows.Identity{bot, ann, bob}, wantRefused: []int{0}, wantVoters: []string{"ann", "bob"}},
		{name: "signal", meta: activities.RunMeta{Tenant: "acme", KeyID: "k-ann", SubmittedBy: "ann"},
			signal: &ann, votes: []workflows.Identity{bob, bot}, wantVoters: []string{"bob", "k-bot"}},
		{name: "allowed", extra: `, "allow_self_approval": true`, meta: activities.RunMeta{Tenant: "acme", KeyID: "k-ann", SubmittedBy: "ann"},
			votes: []workflows.Identity{ann, bob}, wantVoters: []string{"ann", "bob"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if tc.signal != nil {
				by := *tc.signal
				h.env.RegisterDelayedCallback(func() {
					h.env.SignalWorkflow(workflows.DecisionSignal, workflows.Decision{StepID: "ok", Decision: workflows.Approve, By: by})
				}, 30*time.Second)
			}
			var pending workflows.Status
			h.env.RegisterDelayedCallback(func() { pending = h.status() }, 45*time.Second)
			outcomes := make([]*updateOutcome, len(tc.votes))
			for i, by := range tc.votes {
				outcomes[i] = &updateOutcome{}
				h.decideAt(time.Duration(i+1)*time.Minute, workflows.Decision{StepID: "ok", Decision: workflows.Approve, By: by}, outcomes[i])
			}
			in := input(def(t, fmt.Sprintf(steps, tc.extra)), `{}`)
			in.Meta = tc.meta
			h.run(in)
			out := h.result()
			for i, o := range outcomes {
				refused := slices.Contains(tc.wantRefused, i)
				switch {
				case refused && (o.accepted || errType(o.err) != workflows.ErrTypeSelfApproval):
					t.Errorf("vote %d by %+v: %+v, want refused as %s", i, tc.votes[i], o, workflows.ErrTypeSelfApproval)
				case !refused && (!o.accepted || o.err != nil):
					t.Errorf("vote %d by %+v: %+v, want accepted", i, tc.votes[i], o)
				}
			}
			var voters []string
			votes, _ := out["votes"].([]any)
			for _, v := range votes {
				by, _ := v.(map[string]any)["by"].(map[string]any)
				name, _ := by["user"].(string)
				if name == "" {
					name, _ = by["key_id"].(string)
				}
				voters = append(voters, name)
			}
			if out["decision"] != workflows.OutcomeApproved || !slices.Equal(voters, tc.wantVoters) {
				t.Errorf("output %v, voters %v, want %v", out, voters, tc.wantVoters)
			}
			if len(pending.Pending) != 1 || pending.Pending[0].AllowSelfApproval != (tc.extra != "") {
				t.Errorf("pending %+v", pending.Pending)
			}
		})
	}
}
