package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"unicode/utf8"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/workflows"
)

// MaxComment is the longest accepted decision comment, in bytes.
const MaxComment = 4096

// DecideRequest is an approver's vote on a waiting approval step.
type DecideRequest struct {
	StepID   string
	Decision string // workflows.Approve or workflows.Reject
	Comment  string
}

// CheckDecideRequest validates a decision before it is sent; the ingress
// calls it while decoding and Decide calls it again.
func CheckDecideRequest(r DecideRequest) error {
	var p problems
	if !ValidStepID(r.StepID) {
		p.add("step", "must be a step id")
	}
	if r.Decision != workflows.Approve && r.Decision != workflows.Reject {
		p.add("decision", `must be "approve" or "reject"`)
	}
	if len(r.Comment) > MaxComment {
		p.add("comment", fmt.Sprintf("must be at most %d bytes", MaxComment))
	} else if !utf8.ValidString(r.Comment) {
		p.add("comment", "must be valid UTF-8")
	}
	return p.err("decision")
}

// Cancel requests cancellation of a running workflow of the caller's
// tenant; the workflow then runs its compensations. Cancelling a closed
// workflow is ErrConflict.
func (o *Orchestrator) Cancel(ctx context.Context, caller Caller, id string) error {
	if err := checkCaller(caller); err != nil {
		return err
	}
	desc, err := o.describe(ctx, caller, id)
	if err != nil {
		return err
	}
	if desc.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return newError(ErrConflict, "workflow_closed", "workflow %s is already %s", id, runState(desc.Status))
	}
	if err := o.c.CancelWorkflow(ctx, WorkflowID(caller.Tenant, id), ""); err != nil {
		return temporalError(err, "cancel workflow "+id)
	}
	return nil
}

// Decide sends the caller's vote as the workflow's decide Update and waits
// for its result. The workflow's validator refusals map to ErrNotFound
// (unknown step), ErrConflict (step not waiting, duplicate vote),
// ErrForbidden (not an approver) and ErrInvalid. The request id is part of
// the update id, so a retried request is not counted twice.
func (o *Orchestrator) Decide(ctx context.Context, caller Caller, id string, req DecideRequest) (workflows.DecisionResult, error) {
	if err := checkCaller(caller); err != nil {
		return workflows.DecisionResult{}, err
	}
	if err := CheckDecideRequest(req); err != nil {
		return workflows.DecisionResult{}, err
	}
	desc, err := o.describe(ctx, caller, id)
	if err != nil {
		return workflows.DecisionResult{}, err
	}
	if desc.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return workflows.DecisionResult{}, newError(ErrConflict, "workflow_closed", "workflow %s is already %s", id, runState(desc.Status))
	}
	d := workflows.Decision{
		StepID:    req.StepID,
		Decision:  req.Decision,
		Comment:   req.Comment,
		By:        caller.Identity(),
		RequestID: caller.RequestID,
	}
	opts := client.UpdateWorkflowOptions{
		WorkflowID:   WorkflowID(caller.Tenant, id),
		UpdateName:   workflows.DecideUpdate,
		Args:         []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	}
	if caller.RequestID != "" {
		// A retried request (same request id, step and decision) is
		// deduplicated by Temporal; a reused request id for another vote
		// is not mistaken for it.
		opts.UpdateID = "decide/" + req.StepID + "/" + req.Decision + "/" + caller.RequestID
	}
	h, err := o.c.UpdateWorkflow(ctx, opts)
	var res workflows.DecisionResult
	if err == nil {
		err = h.Get(ctx, &res)
	}
	if err != nil {
		return workflows.DecisionResult{}, decideError(err, id, req.StepID)
	}
	return res, nil
}

// decideError maps the validator's application error types (see
// workflows.ErrType*) to the sentinel kinds.
func decideError(err error, id, step string) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		msg := app.Message()
		switch app.Type() {
		case workflows.ErrTypeUnknownStep:
			return &Error{Kind: ErrNotFound, Code: "step_not_found", Message: orDefault(msg, fmt.Sprintf("workflow %s has no approval step %q", id, step))}
		case workflows.ErrTypeStepNotWaiting:
			return &Error{Kind: ErrConflict, Code: "step_not_waiting", Message: orDefault(msg, fmt.Sprintf("step %q is not waiting for a decision", step))}
		case workflows.ErrTypeDuplicateVote:
			return &Error{Kind: ErrConflict, Code: "duplicate_vote", Message: orDefault(msg, fmt.Sprintf("you already decided step %q", step))}
		case workflows.ErrTypeNotApprover:
			return &Error{Kind: ErrForbidden, Code: "not_approver", Message: orDefault(msg, fmt.Sprintf("you may not decide step %q", step))}
		case workflows.ErrTypeInvalidDecision:
			return &Error{Kind: ErrInvalid, Code: "invalid_decision", Message: orDefault(msg, "invalid decision")}
		}
	}
	// The workflow passed describe, so "not found" now means it closed.
	var wee *temporal.WorkflowExecutionError
	var nf *serviceerror.NotFound
	if errors.As(err, &wee) || errors.As(err, &nf) {
		return newError(ErrConflict, "workflow_closed", "workflow %s closed before the decision was taken", id)
	}
	return temporalError(err, "decide step "+step+" of "+id)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Approval is an approval step waiting for the caller's decision.
type Approval struct {
	WorkflowID string `json:"workflow_id"`
	Definition string `json:"definition"`
	Version    string `json:"version"`
	workflows.PendingApproval
}

// Approvals is the answer of PendingApprovals.
type Approvals struct {
	Items []Approval `json:"items"`
	// Truncated is true when more running workflows exist than were
	// inspected (Options.ApprovalScanLimit); the list may be incomplete.
	Truncated bool `json:"truncated,omitempty"`
	// Scanned is how many running workflows were queried.
	Scanned int `json:"scanned"`
}

// MayDecide reports whether the caller is among the approvers of p (an
// approval without roles or users admits anyone) and has not voted on it
// yet. It mirrors the workflow's validator (a voter is its user when the
// key has one, else its key) so that the list only shows what the caller
// can actually decide.
func MayDecide(c Caller, p workflows.PendingApproval) bool {
	allowed := len(p.Approvers.Roles) == 0 && len(p.Approvers.Users) == 0
	if c.User != "" && slices.Contains(p.Approvers.Users, c.User) {
		allowed = true
	}
	for _, r := range c.Roles {
		if slices.Contains(p.Approvers.Roles, r) {
			allowed = true
		}
	}
	if !allowed {
		return false
	}
	me := voter(c.User, c.KeyID)
	for _, v := range p.Votes {
		if voter(v.By.User, v.By.KeyID) == me {
			return false
		}
	}
	return true
}

func voter(user, keyID string) string {
	if user != "" {
		return "user:" + user
	}
	return "key:" + keyID
}

// PendingApprovals lists the approval steps, across the running workflows of
// the caller's tenant, that the caller may decide, oldest first.
//
// Cost: one visibility list call per 100 running workflows of the tenant
// and one status query per running workflow (ApprovalConcurrency at once,
// at most ApprovalScanLimit in all). With a few hundred running
// orchestrations this is tens of milliseconds on a local Temporal; a tenant
// with many thousands should instead have the interpreter upsert a search
// attribute naming pending approvers, which turns this into one visibility
// query.
func (o *Orchestrator) PendingApprovals(ctx context.Context, caller Caller) (Approvals, error) {
	if err := checkCaller(caller); err != nil {
		return Approvals{}, err
	}
	query := o.visibilityQuery(caller.Tenant, ListFilter{State: workflows.RunRunning})
	type target struct{ id, runID, def, ver string }
	var targets []target
	var token []byte
	truncated := false
	for {
		resp, err := o.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			PageSize: 100, NextPageToken: token, Query: query,
		})
		if err != nil {
			return Approvals{}, temporalError(err, "list running workflows")
		}
		for _, ex := range resp.Executions {
			s, ok := o.summary(caller.Tenant, ex)
			if !ok {
				continue
			}
			if len(targets) == o.opts.ApprovalScanLimit {
				truncated = true
				break
			}
			targets = append(targets, target{s.ID, s.RunID, s.Definition, s.Version})
		}
		token = resp.NextPageToken
		if len(token) == 0 || truncated {
			break
		}
	}

	var (
		mu    sync.Mutex
		items []Approval
		wg    sync.WaitGroup
		sem   = make(chan struct{}, o.opts.ApprovalConcurrency)
	)
	for _, t := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return Approvals{}, temporalError(ctx.Err(), "list approvals")
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			qctx, cancel := context.WithTimeout(ctx, o.opts.QueryTimeout)
			defer cancel()
			v, err := o.c.QueryWorkflow(qctx, WorkflowID(caller.Tenant, t.id), t.runID, workflows.StatusQuery)
			var st workflows.Status
			if err == nil {
				err = v.Get(&st)
			}
			if err != nil {
				// Closed since the list, or no worker: skip it, the list is
				// a best-effort view of what can be decided now.
				o.log.Debug("approvals: skip workflow", "workflow", t.id, "err", err)
				return
			}
			var mine []Approval
			for _, p := range st.Pending {
				if MayDecide(caller, p) {
					mine = append(mine, Approval{WorkflowID: t.id, Definition: t.def, Version: t.ver, PendingApproval: p})
				}
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
	return Approvals{Items: items, Truncated: truncated, Scanned: len(targets)}, nil
}
