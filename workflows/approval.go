package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/events"
)

// Approval step outcomes (the output's decision).
const (
	OutcomeApproved = "approved"
	OutcomeRejected = "rejected"
)

// approvalWait is an approval step waiting for votes.
//
// Rules: Quorum approve votes (default 1) from distinct approvers approve
// the step; any reject vote rejects it at once. A voter is the user when
// the key has one, else the key. After escalation, the escalation
// approvers join the original ones.
type approvalWait struct {
	statusID  string
	step      *definition.Step
	approvers Approvers
	quorum    int
	votes     []Vote
	since     time.Time
	deadline  *time.Time
	escalated bool
	timedOut  bool
	outcome   string // "" while waiting
	// submittedBy names the orchestration's submitter, who may not vote
	// unless the step allows self-approval; "" on runs that predate the
	// rule (selfApprovalChange), which do not check it.
	submittedBy string
}

// ApprovalOutput is an approval step's output: steps.<id>.output.
type ApprovalOutput struct {
	Decision  string `json:"decision"` // "approved" or "rejected"
	Votes     []Vote `json:"votes"`
	Comment   string `json:"comment,omitempty"`
	TimedOut  bool   `json:"timed_out"`
	Escalated bool   `json:"escalated"`
}

// approvalRejectedError fails a rejected approval step, which fails the
// orchestration (and runs compensations), unless the step says
// on_reject: continue.
type approvalRejectedError struct {
	reason string
}

func (e *approvalRejectedError) Error() string { return "approval rejected: " + e.reason }

func (r *run) approval(ctx workflow.Context, sc *scope, st *definition.Step, id string) (stepOutcome, error) {
	w := &approvalWait{
		statusID: id,
		step:     st,
		quorum:   max(st.Quorum, 1),
		since:    workflow.Now(ctx),
	}
	if st.Approvers != nil {
		w.approvers = *st.Approvers
	}
	if r.checksSelfApproval(ctx) {
		w.submittedBy = r.submittedBy()
	}
	r.approvals[id] = w
	r.approvalOrder = append(r.approvalOrder, id)
	defer r.endApproval(ctx, id)
	r.status.setState(id, st.Kind, StepWaitingApproval)
	r.syncAwaiting(ctx)

	timeout := st.Timeout.Std()
	for w.outcome == "" {
		if timeout <= 0 {
			if err := workflow.Await(ctx, func() bool { return w.outcome != "" }); err != nil {
				return stepOutcome{output: w.output()}, err
			}
			break
		}
		deadline := workflow.Now(ctx).Add(timeout)
		w.deadline = &deadline
		r.status.touch()
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimerWithOptions(timerCtx, timeout, workflow.TimerOptions{Summary: "approval timeout " + id})
		r.events += timerEvents
		err := workflow.Await(ctx, func() bool { return w.outcome != "" || timer.IsReady() })
		// The decision won (or the run was cancelled): stop the timer.
		cancelTimer()
		if err != nil {
			return stepOutcome{output: w.output()}, err
		}
		if w.outcome != "" {
			break
		}
		// Timed out without a decision.
		r.recordApproval(ctx, w, Identity{}, activities.ApprovalTimeout, workflow.Now(ctx))
		switch {
		case st.OnTimeout == definition.OnTimeoutEscalate && !w.escalated && st.EscalateTo != nil:
			w.escalated = true
			w.approvers = unionApprovers(w.approvers, *st.EscalateTo)
			timeout = st.EscalationTimeout.Std()
			w.deadline = nil
			r.status.touch()
			r.syncAwaiting(ctx)
		case st.OnTimeout == definition.OnTimeoutApprove && !w.escalated:
			w.timedOut, w.outcome = true, OutcomeApproved
		default:
			w.timedOut, w.outcome = true, OutcomeRejected
		}
	}
	out := w.output()
	// on_reject: continue makes the rejection an answer, not a failure:
	// later steps branch on steps.<id>.output.decision.
	if w.outcome == OutcomeRejected && st.OnReject != definition.OnRejectContinue {
		reason := "timed out"
		if !w.timedOut {
			last := w.votes[len(w.votes)-1]
			reason = "by " + voterName(last.By)
			if last.Comment != "" {
				reason += ": " + last.Comment
			}
		}
		return stepOutcome{output: out}, &approvalRejectedError{reason: reason}
	}
	return stepOutcome{output: out}, nil
}

// selfApprovalChange is the workflow.GetVersion change id under which the
// decide validator and the decision signal refuse a vote by the
// orchestration's submitter on a step without allow_self_approval. It is
// asked at the first approval step of a run, so histories without one gain
// no marker, and runs already waiting when the rule came keep accepting
// such votes on replay (the API refuses them at the edge all the same).
const (
	selfApprovalChange                  = "gateflow.self-approval"
	selfApprovalV1     workflow.Version = 1
)

// checksSelfApproval reports whether this run refuses self-approval,
// asking the version the first time.
func (r *run) checksSelfApproval(ctx workflow.Context) bool {
	if !r.selfApprovalKnown {
		r.selfApproval = workflow.GetVersion(ctx, selfApprovalChange, workflow.DefaultVersion, selfApprovalV1)
		r.selfApprovalKnown = true
		if r.selfApproval >= selfApprovalV1 {
			r.events += versionEvents
		}
	}
	return r.selfApproval >= selfApprovalV1
}

// submittedBy names the identity that submitted the orchestration
// (SubmitterName): RunMeta.SubmittedBy, or its key id when a caller set
// only that.
func (r *run) submittedBy() string {
	if r.in.Meta.SubmittedBy != "" {
		return r.in.Meta.SubmittedBy
	}
	return r.in.Meta.KeyID
}

// endApproval forgets a finished approval (decided, timed out, or
// abandoned by a cancellation) and takes it out of SearchAttrAwaiting.
func (r *run) endApproval(ctx workflow.Context, id string) {
	delete(r.approvals, id)
	r.approvalOrder = slices.DeleteFunc(r.approvalOrder, func(s string) bool { return s == id })
	r.status.touch()
	r.syncAwaiting(ctx)
}

// syncAwaiting keeps SearchAttrAwaiting equal to who may decide the
// approvals waiting now (the union of their AwaitingValues), removing it
// when none waits. It upserts only when the set changed, so a vote that
// does not decide a step costs no event. Runs on the pre-visibility
// version (started by an older worker) never upsert: that would change
// their commands on replay.
func (r *run) syncAwaiting(ctx workflow.Context) {
	if r.visibility < visibilityV1 {
		return
	}
	var vals []string
	for _, id := range r.approvalOrder {
		if w := r.approvals[id]; w != nil && w.outcome == "" {
			vals = append(vals, AwaitingValues(w.approvers)...)
		}
	}
	vals = sortedUnique(vals)
	if slices.Equal(vals, r.awaiting) {
		return
	}
	r.awaiting = vals
	key := temporal.NewSearchAttributeKeyKeywordList(SearchAttrAwaiting)
	upd := key.ValueSet(vals)
	if len(vals) == 0 {
		upd = key.ValueUnset()
	}
	r.events += upsertEvents
	if err := workflow.UpsertTypedSearchAttributes(ctx, upd); err != nil {
		// Only an invalid value gets here (the SDK validates locally); the
		// approval still works, the list just cannot find it.
		r.log.Warn("awaiting search attribute not updated", "error", err.Error())
	}
}

func (w *approvalWait) output() any {
	out := ApprovalOutput{Decision: w.outcome, Votes: w.votes, TimedOut: w.timedOut, Escalated: w.escalated}
	if out.Votes == nil {
		out.Votes = []Vote{}
	}
	if n := len(w.votes); n > 0 {
		out.Comment = w.votes[n-1].Comment
	}
	v, _ := normalize(out)
	return v
}

// pending lists the approvals waiting for decisions, in start order.
func (r *run) pending() []PendingApproval {
	if len(r.approvalOrder) == 0 {
		return nil
	}
	out := make([]PendingApproval, 0, len(r.approvalOrder))
	for _, id := range r.approvalOrder {
		w := r.approvals[id]
		if w == nil || w.outcome != "" {
			continue
		}
		out = append(out, PendingApproval{
			StepID:    id,
			Approvers: w.approvers,
			Quorum:    w.quorum,
			Votes:     append([]Vote(nil), w.votes...),
			Since:     w.since,
			Deadline:  w.deadline,
			Escalated: w.escalated,
			// The submitter is not named here: the API reads it from the
			// memo, for runs of every version.
			AllowSelfApproval: w.step.AllowSelfApproval,
		})
	}
	return out
}

// checkDecision is the decide update's validator (and the signal's
// check): it rejects, with an application error of a known type, anything
// that cannot be counted as a vote. It does not change state.
func (r *run) checkDecision(d Decision) error {
	if d.Decision != Approve && d.Decision != Reject {
		return temporal.NewApplicationError(fmt.Sprintf("decision %q: want %q or %q", d.Decision, Approve, Reject), ErrTypeInvalidDecision)
	}
	if d.By.User == "" && d.By.KeyID == "" {
		return temporal.NewApplicationError("decision without an identity (key id or user)", ErrTypeInvalidDecision)
	}
	st, ok := r.status.lookup(d.StepID)
	if !ok || st.Kind != definition.KindApproval {
		return temporal.NewApplicationError(fmt.Sprintf("no approval step %q in this orchestration", d.StepID), ErrTypeUnknownStep)
	}
	w := r.approvals[d.StepID]
	if w == nil || w.outcome != "" {
		return temporal.NewApplicationError(fmt.Sprintf("step %q is not waiting for a decision (state %s)", d.StepID, st.State), ErrTypeStepNotWaiting)
	}
	if !IsApprover(w.approvers, d.By) {
		return temporal.NewApplicationError(fmt.Sprintf("%s may not decide step %q", voterName(d.By), d.StepID), ErrTypeNotApprover)
	}
	if !w.step.AllowSelfApproval && IsSubmitter(d.By, w.submittedBy) {
		return temporal.NewApplicationError(fmt.Sprintf("%s submitted this orchestration and may not decide step %q (separation of duties; the step may set allow_self_approval)", voterName(d.By), d.StepID), ErrTypeSelfApproval)
	}
	if HasVoted(w.votes, d.By) {
		return temporal.NewApplicationError(fmt.Sprintf("%s already voted on step %q", voterName(d.By), d.StepID), ErrTypeDuplicateVote)
	}
	return nil
}

// decide is the decide update's handler.
func (r *run) decide(ctx workflow.Context, d Decision) (DecisionResult, error) {
	// The validator ran, but state may have moved since (another vote in
	// the same workflow task): check again before counting.
	if err := r.checkDecision(d); err != nil {
		return DecisionResult{}, err
	}
	return r.vote(ctx, d), nil
}

// onSignal applies a decision sent as a signal; invalid ones are logged
// and dropped.
func (r *run) onSignal(ctx workflow.Context, d Decision) {
	if err := r.checkDecision(d); err != nil {
		r.log.Warn("decision signal ignored", "step", d.StepID, "by", voterName(d.By), "error", err.Error())
		return
	}
	res := r.vote(ctx, d)
	r.log.Info("decision signal accepted", "step", d.StepID, "by", voterName(d.By), "resolved", res.Resolved)
}

// vote counts a valid decision, resolves the step when it decides it, and
// records it.
func (r *run) vote(ctx workflow.Context, d Decision) DecisionResult {
	w := r.approvals[d.StepID]
	now := workflow.Now(ctx)
	w.votes = append(w.votes, Vote{By: d.By, Decision: d.Decision, Comment: d.Comment, At: now})
	approvals := 0
	for _, v := range w.votes {
		if v.Decision == Approve {
			approvals++
		}
	}
	switch {
	case d.Decision == Reject:
		w.outcome = OutcomeRejected
	case approvals >= w.quorum:
		w.outcome = OutcomeApproved
	}
	r.status.touch()
	res := DecisionResult{StepID: d.StepID, Accepted: true, Resolved: w.outcome != "", Outcome: w.outcome, Votes: len(w.votes), Quorum: w.quorum}
	decision := activities.ApprovalApprove
	if d.Decision == Reject {
		decision = activities.ApprovalReject
	}
	r.recordApproval(ctx, w, d.By, decision, now)
	return res
}

// recordApproval emits the approval record through a local activity. It
// runs on a disconnected context so that a cancellation does not lose it;
// a failure is logged, never fails the step.
func (r *run) recordApproval(ctx workflow.Context, w *approvalWait, by Identity, decision string, at time.Time) {
	r.recording++
	defer func() { r.recording-- }()
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	lctx := workflow.WithLocalActivityOptions(dctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: approvalRecordTimeout,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 5, InitialInterval: time.Second},
	})
	info := workflow.GetInfo(ctx)
	roles := matchedRoles(w.approvers, by)
	if decision == activities.ApprovalTimeout {
		roles = w.approvers.Roles
	}
	rec := activities.ApprovalRecord{
		StepRef:      r.ref(w.statusID),
		WorkflowID:   info.WorkflowExecution.ID,
		RunID:        info.WorkflowExecution.RunID,
		Decision:     decision,
		KeyID:        by.KeyID,
		User:         by.User,
		Roles:        roles,
		WaitingSince: w.since,
		DecidedAt:    at,
	}
	r.events += localActivityEvents
	if err := workflow.ExecuteLocalActivity(lctx, activities.RecordApprovalActivity, rec).Get(lctx, nil); err != nil {
		r.log.Warn("approval record lost", "step", w.statusID, "error", err.Error())
	}
}

// matchedRoles are the voter's roles that made them an approver, or all
// their roles when they were named as a user.
func matchedRoles(a Approvers, id Identity) []string {
	var out []string
	for _, role := range id.Roles {
		if slices.Contains(a.Roles, role) {
			out = append(out, role)
		}
	}
	if len(out) == 0 {
		return id.Roles
	}
	return out
}

func unionApprovers(a, b Approvers) Approvers {
	out := Approvers{Roles: slices.Clone(a.Roles), Users: slices.Clone(a.Users)}
	for _, r := range b.Roles {
		if !slices.Contains(out.Roles, r) {
			out.Roles = append(out.Roles, r)
		}
	}
	for _, u := range b.Users {
		if !slices.Contains(out.Users, u) {
			out.Users = append(out.Users, u)
		}
	}
	return out
}

func voterKey(id Identity) string {
	if id.User != "" {
		return "user:" + id.User
	}
	return "key:" + id.KeyID
}

func voterName(id Identity) string {
	if id.User != "" {
		return "user " + id.User
	}
	return "key " + id.KeyID
}

// registerHandlers installs the status query, the decide update (with its
// validator) and the decision signal reader.
func (r *run) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, StatusQuery, func() (Status, error) {
		st := r.status.snapshot(r.pending())
		st.Events = r.pendingEvents()
		return st, nil
	}); err != nil {
		return fmt.Errorf("register status query: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, DecideUpdate, r.decide, workflow.UpdateHandlerOptions{
		Validator: func(d Decision) error { return r.checkDecision(d) },
	}); err != nil {
		return fmt.Errorf("register decide update: %w", err)
	}
	ch := workflow.GetSignalChannel(ctx, DecisionSignal)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var d Decision
			if !ch.Receive(gctx, &d) {
				return
			}
			r.onSignal(gctx, d)
		}
	})
	// Events delivered by mailboxes to event steps (no commands unless
	// one arrives, so older histories replay unchanged).
	evCh := workflow.GetSignalChannel(ctx, events.DeliveredSignal)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var d events.Delivery
			if !evCh.Receive(gctx, &d) {
				return
			}
			r.onDelivered(gctx, d)
		}
	})
	return nil
}

// drainSignals applies the decisions already delivered but not yet read,
// before the run continues as new (a signal must not be lost).
func (r *run) drainSignals(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, DecisionSignal)
	for {
		var d Decision
		if !ch.ReceiveAsync(&d) {
			return
		}
		r.onSignal(ctx, d)
	}
}
