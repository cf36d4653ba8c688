package workflows_test

import (
	"slices"
	"testing"

	"github.com/gateflow/gateflow/workflows"
)

func TestIsApprover(t *testing.T) {
	admin := workflows.Identity{KeyID: "k-admin", User: "root", Roles: []string{"submitter", "approver", "analyst", "admin"}}
	cases := []struct {
		name string
		a    workflows.Approvers
		id   workflows.Identity
		want bool
	}{
		{"role", workflows.Approvers{Roles: []string{"manager"}}, ann, true},
		{"user", workflows.Approvers{Users: []string{"carol"}}, carol, true},
		{"neither", workflows.Approvers{Roles: []string{"manager"}, Users: []string{"dan"}}, carol, false},
		{"nobody named admits anyone", workflows.Approvers{}, bot, true},
		{"a key without a user is not a user", workflows.Approvers{Users: []string{""}}, bot, false},
		{"admin is not special", workflows.Approvers{Roles: []string{"manager"}}, admin, false},
		{"admin when named", workflows.Approvers{Roles: []string{"admin"}}, admin, true},
	}
	for _, tc := range cases {
		if got := workflows.IsApprover(tc.a, tc.id); got != tc.want {
			t.Errorf("%s: IsApprover = %v", tc.name, got)
		}
	}
}

func TestMayDecideAndHasVoted(t *testing.T) {
	p := workflows.PendingApproval{Approvers: workflows.Approvers{Roles: []string{"manager"}}, Quorum: 2,
		Votes: []workflows.Vote{{By: ann, Decision: workflows.Approve}}}
	// ann votes once whatever key she uses.
	annOtherKey := workflows.Identity{KeyID: "k-ann-2", User: "ann", Roles: []string{"manager"}}
	if workflows.MayDecide(p, annOtherKey, "") || !workflows.HasVoted(p.Votes, annOtherKey) {
		t.Error("ann may vote twice")
	}
	if !workflows.MayDecide(p, bob, "") || !workflows.MayDecide(p, bot, "") {
		t.Error("bob or bot may not vote")
	}
	if workflows.MayDecide(p, carol, "") {
		t.Error("carol is no manager")
	}
	// A key without a user is a voter of its own.
	p.Votes = append(p.Votes, workflows.Vote{By: bot})
	if workflows.MayDecide(p, bot, "") || !workflows.MayDecide(p, workflows.Identity{KeyID: "k-bot-2", Roles: []string{"manager"}}, "") {
		t.Error("keys without users")
	}
}

func TestAwaitingValues(t *testing.T) {
	got := workflows.AwaitingValues(workflows.Approvers{Roles: []string{"manager", "finance", "manager"}, Users: []string{"carol"}})
	if want := []string{"role:finance", "role:manager", "user:carol"}; !slices.Equal(got, want) {
		t.Errorf("AwaitingValues = %q, want %q", got, want)
	}
	if got := workflows.AwaitingValues(workflows.Approvers{}); !slices.Equal(got, []string{workflows.AwaitingAny}) {
		t.Errorf("no approvers: %q", got)
	}
	if got := workflows.IdentityAwaitingValues(ann); !slices.Equal(got, []string{"any", "role:approver", "role:manager", "user:ann"}) {
		t.Errorf("IdentityAwaitingValues = %q", got)
	}
}

// TestAwaitingValuesAgreeWithIsApprover checks, over every combination of
// a few roles and users, that an identity shares a search attribute value
// with a step exactly when IsApprover admits it: the list of pending
// approvals then finds every step the validator would accept.
func TestAwaitingValuesAgreeWithIsApprover(t *testing.T) {
	names := []string{"", "a", "b"}
	subsets := func() [][]string {
		var out [][]string
		for mask := range 1 << len(names) {
			var s []string
			for i, n := range names {
				if mask&(1<<i) != 0 {
					s = append(s, n)
				}
			}
			out = append(out, s)
		}
		return out
	}
	checked := 0
	for _, roles := range subsets() {
		for _, users := range subsets() {
			a := workflows.Approvers{Roles: roles, Users: users}
			stepVals := workflows.AwaitingValues(a)
			for _, idRoles := range subsets() {
				for _, user := range names {
					id := workflows.Identity{KeyID: "k", User: user, Roles: idRoles}
					shared := false
					for _, v := range workflows.IdentityAwaitingValues(id) {
						shared = shared || slices.Contains(stepVals, v)
					}
					if shared != workflows.IsApprover(a, id) {
						t.Fatalf("approvers %+v, identity %+v: shared value %v, IsApprover %v", a, id, shared, !shared)
					}
					checked++
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("nothing checked")
	}
}
