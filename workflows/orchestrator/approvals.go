package orchestrator

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Approval is an approval step waiting for the caller's decision.
type Approval = wire.Approval

// Approvals is the answer of PendingApprovals.
type Approvals = wire.Approvals

// MayDecide reports whether the caller is among the approvers of p (an
// approval without roles or users admits anyone), has not voted on it
// yet, and did not submit the orchestration (submittedBy, its
// MemoSubmittedBy) unless the step allows self-approval. It is the
// workflow's own rule (workflows.MayDecide, which the decide validator
// uses too), so the list only shows what the caller can actually decide.
// No role is special: an admin key decides only steps that name admin or
// its user.
func MayDecide(c Caller, p workflows.PendingApproval, submittedBy string) bool {
	return workflows.MayDecide(p, c.Identity(), submittedBy)
}

// awaitingValueRe is what a SearchAttrAwaiting value of a caller may look
// like in a visibility query: the roles and users API keys can hold
// ([a-z0-9_-] and [A-Za-z0-9._@+-]) behind their prefix. Anything else is
// left out of the query rather than escaped; no key can hold it anyway.
var awaitingValueRe = regexp.MustCompile(`^[A-Za-z0-9._@+:-]{1,256}$`)

// approvalQueries are the visibility queries that find the running
// workflows of the caller's tenant that may wait for the caller: those
// whose SearchAttrAwaiting names one of the caller's values, and those
// started by workers older than VisibilityChange, which do not keep it.
func (o *Orchestrator) approvalQueries(caller Caller) []string {
	running := o.visibilityQuery(caller.Tenant, ListFilter{State: workflows.RunRunning})
	var vals []string
	for _, v := range workflows.IdentityAwaitingValues(caller.Identity()) {
		if awaitingValueRe.MatchString(v) {
			vals = append(vals, quote(v))
		}
	}
	return []string{
		running + " AND " + workflows.SearchAttrAwaiting + " IN (" + strings.Join(vals, ", ") + ")",
		// TemporalChangeVersion is the SDK's record of GetVersion calls;
		// "IS NULL OR !=" because SQL stores compare NULL to nothing.
		running + " AND (TemporalChangeVersion IS NULL OR TemporalChangeVersion != " + quote(workflows.VisibilityChangeV1) + ")",
	}
}

// PendingApprovals lists the approval steps, across the running workflows of
// the caller's tenant, that the caller may decide, oldest first.
//
// Cost: orchestrations keep the SearchAttrAwaiting search attribute naming
// who may decide the approvals they wait on (workflows.AwaitingValues), so
// one visibility query (one call per 100 matches) finds the running
// workflows of the tenant waiting for one of the caller's roles, its user,
// or anyone, and only those are queried for their status
// (ApprovalConcurrency at once) to read the steps and votes. Workflows
// started by workers before that attribute existed (no VisibilityChangeV1
// in TemporalChangeVersion) are listed by a second query and all queried,
// as this function used to do for every running workflow; that set only
// shrinks as they finish, and the query is one cheap visibility call when
// it is empty.
//
// Bounds: at most ApprovalScanLimit workflows are queried per list, within
// ApprovalDeadline (Truncated says the list stopped short), and a caller's
// list is kept ApprovalCacheTTL: asking again within it, or while the same
// list is being made for the same caller, costs no Temporal call. The
// caller's own decisions drop its cached list.
func (o *Orchestrator) PendingApprovals(ctx context.Context, caller Caller) (Approvals, error) {
	if err := checkCaller(caller); err != nil {
		return Approvals{}, err
	}
	return o.approvals.get(ctx, approvalCacheKey(caller), func(ctx context.Context) (Approvals, error) {
		return o.scanApprovals(ctx, caller)
	})
}

// scanApprovals makes the caller's list (see PendingApprovals).
func (o *Orchestrator) scanApprovals(ctx context.Context, caller Caller) (Approvals, error) {
	bctx, cancel := context.WithTimeout(ctx, o.opts.ApprovalDeadline)
	defer cancel()
	targets, truncated, err := o.approvalTargets(bctx, caller.Tenant, o.approvalQueries(caller))
	if err != nil {
		return Approvals{}, err
	}
	var (
		mu      sync.Mutex
		items   []Approval
		wg      sync.WaitGroup
		sem     = make(chan struct{}, o.opts.ApprovalConcurrency)
		scanned int
		cut     atomic.Bool
	)
launch:
	for _, t := range targets {
		select {
		case sem <- struct{}{}:
		case <-bctx.Done():
			// Past the deadline: what was not queried is left out.
			cut.Store(true)
			break launch
		}
		scanned++
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			mine, answered := o.approvalsOf(bctx, caller, t)
			if !answered && bctx.Err() != nil {
				cut.Store(true)
			}
			mu.Lock()
			items = append(items, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return Approvals{}, temporalError(ctx.Err(), "list approvals")
	}
	sort.Slice(items, func(i, j int) bool {
		if !items[i].Since.Equal(items[j].Since) {
			return items[i].Since.Before(items[j].Since)
		}
		if items[i].WorkflowID != items[j].WorkflowID {
			return items[i].WorkflowID < items[j].WorkflowID
		}
		return items[i].StepID < items[j].StepID
	})
	if items == nil {
		items = []Approval{}
	}
	return Approvals{Items: items, Truncated: truncated || cut.Load(), Scanned: scanned}, nil
}

// approvalTarget is a running workflow to query for its approvals, with
// who submitted it (its MemoSubmittedBy).
type approvalTarget struct{ id, runID, def, ver, submittedBy string }

// approvalTargets runs the queries in order and collects the workflows
// they match (each once), at most ApprovalScanLimit; truncated says that
// more matched.
func (o *Orchestrator) approvalTargets(ctx context.Context, tenant string, queries []string) (targets []approvalTarget, truncated bool, err error) {
	seen := map[string]bool{}
	for _, query := range queries {
		var token []byte
		for {
			resp, err := o.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				PageSize: 100, NextPageToken: token, Query: query,
			})
			if err != nil {
				return nil, false, temporalError(err, "list running workflows")
			}
			for _, ex := range resp.Executions {
				s, ok := o.summary(tenant, ex)
				if !ok || seen[s.ID] {
					continue
				}
				if len(targets) == o.opts.ApprovalScanLimit {
					return targets, true, nil
				}
				seen[s.ID] = true
				targets = append(targets, approvalTarget{s.ID, s.RunID, s.Definition, s.Version, o.submittedBy(ex.GetMemo())})
			}
			token = resp.NextPageToken
			if len(token) == 0 {
				break
			}
		}
	}
	return targets, false, nil
}

// approvalsOf queries one workflow and keeps the steps the caller may
// decide; answered is false when it did not answer. A workflow that does
// not answer (closed since the list, no worker) is skipped: the list is a
// best-effort view of what can be decided now.
func (o *Orchestrator) approvalsOf(ctx context.Context, caller Caller, t approvalTarget) (mine []Approval, answered bool) {
	qctx, cancel := context.WithTimeout(ctx, o.opts.QueryTimeout)
	defer cancel()
	v, err := o.c.QueryWorkflow(qctx, WorkflowID(caller.Tenant, t.id), t.runID, workflows.StatusQuery)
	var st workflows.Status
	if err == nil {
		err = v.Get(&st)
	}
	if err != nil {
		o.log.Debug("approvals: skip workflow", "workflow", t.id, "err", err)
		return nil, false
	}
	for _, p := range st.Pending {
		if MayDecide(caller, p, t.submittedBy) {
			mine = append(mine, Approval{WorkflowID: t.id, Definition: t.def, Version: t.ver, PendingApproval: p})
		}
	}
	return mine, true
}
