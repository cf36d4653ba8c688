package workflows_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows"
)

// visibility records what a run upserts: each SearchAttrAwaiting value in
// order ("-" for a removal) and each memo.
type visibility struct {
	awaiting []string
	memos    []map[string]any
}

func watchVisibility(h *harness) *visibility {
	v := &visibility{}
	key := temporal.NewSearchAttributeKeyKeywordList(workflows.SearchAttrAwaiting)
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		switch vals, ok := sa.GetKeywordList(key); {
		case sa.Size() == 0: // an unset shows as no values
			v.awaiting = append(v.awaiting, "-")
		case ok && sa.Size() == 1:
			v.awaiting = append(v.awaiting, strings.Join(vals, ","))
		default:
			h.t.Errorf("upsert of other attributes: %v", sa.GetUntypedValues())
		}
	}).Return(nil)
	h.env.OnUpsertMemo(mock.Anything).Run(func(args mock.Arguments) {
		v.memos = append(v.memos, args.Get(0).(map[string]any))
	}).Return(nil)
	return v
}

func TestAwaitingFollowsEscalation(t *testing.T) {
	h := newHarness(t, nil)
	v := watchVisibility(h)
	// Nobody decides within the hour: dan joins, then approves.
	h.decideAt(90*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: dan}, nil)
	h.run(approvalInput(t, "1", "escalate"))
	h.result()
	want := []string{"role:manager,user:carol", "role:manager,user:carol,user:dan", "-"}
	if !slices.Equal(v.awaiting, want) {
		t.Errorf("awaiting upserts\n got %q\nwant %q", v.awaiting, want)
	}
	if len(v.memos) != 0 {
		t.Errorf("memo upserted on success: %v", v.memos)
	}
}

func TestAwaitingUnchangedByAVoteThatDoesNotDecide(t *testing.T) {
	h := newHarness(t, nil)
	v := watchVisibility(h)
	var during []string
	h.decideAt(10*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: ann}, nil)
	h.env.RegisterDelayedCallback(func() { during = slices.Clone(v.awaiting) }, 15*time.Minute)
	h.decideAt(20*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: bob}, nil)
	h.run(approvalInput(t, "2", "reject"))
	h.result()
	if !slices.Equal(during, []string{"role:manager,user:carol"}) {
		t.Errorf("after the first of two votes: %q", during)
	}
	if !slices.Equal(v.awaiting, []string{"role:manager,user:carol", "-"}) {
		t.Errorf("awaiting upserts %q", v.awaiting)
	}
}

func TestAwaitingUnionOfParallelApprovals(t *testing.T) {
	h := newHarness(t, nil)
	v := watchVisibility(h)
	d := def(t, `{"steps": [{"id": "both", "kind": "parallel", "branches": [
		{"name": "fin", "steps": [{"id": "finance", "kind": "approval", "approvers": {"roles": ["finance", "manager"]}}]},
		{"name": "legal", "steps": [{"id": "legal", "kind": "approval", "approvers": {"users": ["lee"], "roles": ["manager"]}}]},
		{"name": "open", "steps": [{"id": "open", "kind": "approval"}]}
	]}]}`)
	lee := workflows.Identity{KeyID: "k-lee", User: "lee"}
	fin := workflows.Identity{KeyID: "k-fin", Roles: []string{"finance"}}
	h.decideAt(time.Minute, workflows.Decision{StepID: "legal", Decision: workflows.Approve, By: lee}, nil)
	h.decideAt(2*time.Minute, workflows.Decision{StepID: "open", Decision: workflows.Approve, By: lee}, nil)
	h.decideAt(3*time.Minute, workflows.Decision{StepID: "finance", Decision: workflows.Approve, By: fin}, nil)
	h.run(input(d, `{}`))
	h.result()
	want := []string{
		"role:finance,role:manager",
		"role:finance,role:manager,user:lee",
		"any,role:finance,role:manager,user:lee",
		"any,role:finance,role:manager", // legal decided
		"role:finance,role:manager",     // open decided
		"-",
	}
	if !slices.Equal(v.awaiting, want) {
		t.Errorf("awaiting upserts\n got %q\nwant %q", v.awaiting, want)
	}
}

func TestAwaitingClearedOnCancel(t *testing.T) {
	h := newHarness(t, nil)
	v := watchVisibility(h)
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 10*time.Minute)
	h.run(approvalInput(t, "1", "reject"))
	if !slices.Equal(v.awaiting, []string{"role:manager,user:carol", "-"}) {
		t.Errorf("awaiting upserts %q", v.awaiting)
	}
	// The reserve step was compensated.
	if len(v.memos) != 1 || v.memos[0][workflows.MemoState] != string(workflows.RunCompensated) {
		t.Errorf("memos %v", v.memos)
	}
}

func TestFinalStateMemo(t *testing.T) {
	cases := []struct {
		name string
		def  string
		want workflows.RunState
	}{
		{"failed", `{"steps": [{"id": "a", "kind": "http", "service": "s", "path": "/fail", "retry": {"max_attempts": 1}}]}`, workflows.RunFailed},
		{"compensated", `{"steps": [
			{"id": "a", "kind": "http", "service": "s", "path": "/a", "compensate": {"id": "undo", "kind": "http", "service": "s", "path": "/undo"}},
			{"id": "b", "kind": "http", "service": "s", "path": "/fail", "retry": {"max_attempts": 1}}]}`, workflows.RunCompensated},
		{"timed out", `{"timeout": "10m", "steps": [{"id": "w", "kind": "wait", "duration": "1h"}]}`, workflows.RunTimedOut},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakes{http: failOn("/fail")}
			h := newHarness(t, f)
			v := watchVisibility(h)
			h.run(input(def(t, tc.def), `{}`))
			h.failure()
			if len(v.memos) != 1 || v.memos[0][workflows.MemoState] != string(tc.want) {
				t.Errorf("memos %v, want state %s", v.memos, tc.want)
			}
			if st := h.status(); st.State != tc.want {
				t.Errorf("status %s", st.State)
			}
		})
	}
}

// TestPreVisibilityVersionUpsertsNothing: a run that took the default
// version (started by an older worker) keeps emitting exactly the old
// commands, with neither the search attribute nor the memo.
func TestPreVisibilityVersionUpsertsNothing(t *testing.T) {
	h := newHarness(t, &fakes{http: failOn("/ship")})
	h.env.OnGetVersion(workflows.VisibilityChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	upserts := 0
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(mock.Arguments) { upserts++ }).Return(nil)
	h.env.OnUpsertMemo(mock.Anything).Run(func(mock.Arguments) { upserts++ }).Return(nil)
	h.decideAt(10*time.Minute, workflows.Decision{StepID: "approve", Decision: workflows.Approve, By: ann}, nil)
	h.run(approvalInput(t, "1", "reject"))
	h.failure() // /ship fails after the approval: compensated
	if upserts != 0 {
		t.Errorf("%d upserts on the default version", upserts)
	}
	if st := h.status(); st.State != workflows.RunCompensated {
		t.Errorf("state %s", st.State)
	}
}
