package workflows

import (
	"slices"
)

// Who may decide an approval step. The workflow's decide validator, the
// API's decide call and its list of pending approvals (orchestrator.MayDecide)
// all call these functions, so that the list never shows a step the
// validator would refuse, nor hides one it would accept. AwaitingValues and
// IdentityAwaitingValues are the same rule expressed as search attribute
// values: an identity may decide a step exactly when the two share a value
// (a test holds them to it).

// IsApprover reports whether id may decide a step with approvers a: a key
// holding one of a's roles, or whose user is one of a's users; a step that
// names nobody admits anyone. No role is special: a key with the admin
// role may decide only steps that name admin (or its user).
func IsApprover(a Approvers, id Identity) bool {
	if len(a.Roles) == 0 && len(a.Users) == 0 {
		return true
	}
	if id.User != "" && slices.Contains(a.Users, id.User) {
		return true
	}
	for _, role := range id.Roles {
		if slices.Contains(a.Roles, role) {
			return true
		}
	}
	return false
}

// HasVoted reports whether id already voted among votes. A voter is its
// user when the key has one, else its key: a user votes once whatever key
// they use.
func HasVoted(votes []Vote, id Identity) bool {
	me := voterKey(id)
	for _, v := range votes {
		if voterKey(v.By) == me {
			return true
		}
	}
	return false
}

// SubmitterName is how an identity is named as the submitter of an
// orchestration (RunMeta.SubmittedBy, the MemoSubmittedBy memo): its user
// when the key has one, else its key id.
func SubmitterName(id Identity) string {
	if id.User != "" {
		return id.User
	}
	return id.KeyID
}

// IsSubmitter reports whether id is the identity that submitted the
// orchestration, named submittedBy (SubmitterName at start): the same user
// whatever key it uses, or the same key when that key has no user. An
// empty submittedBy (unknown) matches nobody.
func IsSubmitter(id Identity, submittedBy string) bool {
	return submittedBy != "" && SubmitterName(id) == submittedBy
}

// IsSelfApproval reports whether a vote by id on p would be the submitter
// approving its own orchestration on a step that does not allow it
// (separation of duties: the step's allow_self_approval opts in).
func IsSelfApproval(p PendingApproval, id Identity, submittedBy string) bool {
	return !p.AllowSelfApproval && IsSubmitter(id, submittedBy)
}

// MayDecide reports whether id may vote on p now, in an orchestration
// submitted by submittedBy: it is an approver, has not voted yet, and is
// not the submitter unless the step allows self-approval.
func MayDecide(p PendingApproval, id Identity, submittedBy string) bool {
	return IsApprover(p.Approvers, id) && !HasVoted(p.Votes, id) && !IsSelfApproval(p, id, submittedBy)
}

// AwaitingValues are the SearchAttrAwaiting values of a step with
// approvers a, sorted and without duplicates.
func AwaitingValues(a Approvers) []string {
	if len(a.Roles) == 0 && len(a.Users) == 0 {
		return []string{AwaitingAny}
	}
	out := make([]string, 0, len(a.Roles)+len(a.Users))
	for _, r := range a.Roles {
		out = append(out, AwaitingRole+r)
	}
	for _, u := range a.Users {
		out = append(out, AwaitingUser+u)
	}
	return sortedUnique(out)
}

// IdentityAwaitingValues are the SearchAttrAwaiting values that name id:
// AwaitingAny, one per role, and its user. A workflow waits for id when
// its attribute holds one of them.
func IdentityAwaitingValues(id Identity) []string {
	out := make([]string, 0, len(id.Roles)+2)
	out = append(out, AwaitingAny)
	for _, r := range id.Roles {
		out = append(out, AwaitingRole+r)
	}
	if id.User != "" {
		out = append(out, AwaitingUser+id.User)
	}
	return sortedUnique(out)
}

// sortedUnique sorts s in place and drops repeated values.
func sortedUnique(s []string) []string {
	sortStrings(s)
	return slices.Compact(s)
}
