package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/replicated"
	"github.com/gateflow/gateflow/workflows/wire"
)

// SubscriptionInput starts a subscription's approval.
type SubscriptionInput struct {
	Subscription Subscription              `json:"subscription"`
	Approval     wire.SubscriptionApproval `json:"approval"`
	// Title is the API's title, shown to approvers.
	Title string `json:"title,omitempty"`
}

// ApprovalOutcome is the output of the built-in approval definition.
type ApprovalOutcome struct {
	Decision string      `json:"decision"`
	Comment  string      `json:"comment,omitempty"`
	Votes    []wire.Vote `json:"votes,omitempty"`
	TimedOut bool        `json:"timed_out,omitempty"`
}

// ApprovalDefinition is the built-in definition a subscription's approval
// runs in the generic interpreter: one approval step with the API's
// approvers, quorum, timeout and escalation, whose rejection is an answer
// (on_reject: continue) rather than a failure.
func ApprovalDefinition(a wire.SubscriptionApproval) definition.Definition {
	timeout := a.Timeout
	if timeout == "" {
		timeout = definition.Duration(DefaultWait.String())
	}
	approvers := a.Approvers
	step := definition.Step{
		ID: ApprovalStep, Kind: definition.KindApproval, Name: "Grant the subscription",
		Approvers: &approvers, Quorum: a.Quorum, Timeout: timeout, OnTimeout: a.OnTimeout,
		EscalateTo: a.EscalateTo, EscalationTimeout: a.EscalationTimeout, OnReject: definition.OnRejectContinue,
	}
	return definition.Definition{
		Name: approvalDefinition, Version: approvalVersion,
		Description: "Built in: approve a consumer's subscription to an API of the catalogue (input: api, consumer, app, plan).",
		Steps:       []definition.Step{step},
		Output: map[string]any{
			"decision":  "${{ steps.approve.output.decision }}",
			"comment":   "${{ steps.approve.output.comment }}",
			"votes":     "${{ steps.approve.output.votes }}",
			"timed_out": "${{ steps.approve.output.timed_out }}",
		},
	}
}

// SubscriptionFlow is the SubscriptionWorkflow: it runs the approval
// orchestration in the owner's tenant (its id is ApprovalRunID, so the
// owner's approvers find it through /v1/approvals and decide step
// "approve"), then applies the outcome to the owner's entity through
// ApplyDecisionActivity. A consumer who cancels, or an owner who revokes,
// while it waits cancels it; a worker that dies meanwhile loses nothing
// (everything is in Temporal's history).
//
// Changes that alter the commands of an existing history must be guarded
// with workflow.GetVersion (recorded histories are replayed by the tests).
func SubscriptionFlow(ctx workflow.Context, in SubscriptionInput) error {
	s := in.Subscription
	def := ApprovalDefinition(in.Approval)
	input, err := jsonMarshal(map[string]string{"api": s.API, "title": in.Title, "consumer": s.Consumer, "app": s.App, "plan": s.Plan, "subscription": s.ID})
	if err != nil {
		return err
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:               s.Owner + "/" + ApprovalRunID(s.ID),
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		ParentClosePolicy:        enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WorkflowExecutionTimeout: workflows.ExecutionTimeout(&def),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrTenant).ValueSet(s.Owner),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrDefinition).ValueSet(def.Name),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrVersion).ValueSet(def.Version),
		),
		Memo: map[string]any{workflows.MemoSubmittedBy: s.RequestedBy, workflows.MemoRequestID: s.ID},
	})
	run := workflows.OrchestrationInput{
		Definition: def,
		Input:      input,
		Meta: activities.RunMeta{
			Tenant: s.Owner, SubmittedBy: s.RequestedBy, Definition: def.Name, Version: def.Version,
			Labels: map[string]string{"api": s.API, "consumer": s.Consumer, "consumer_app": s.App, "plan": s.Plan, "subscription": s.ID},
		},
	}
	var out ApprovalOutcome
	err = workflow.ExecuteChildWorkflow(cctx, workflows.OrchestrationWorkflow, run).Get(ctx, &out)
	if ctx.Err() != nil {
		// Cancelled by the entity: the subscription was cancelled or
		// revoked while pending; there is nothing to apply.
		return temporal.NewCanceledError("subscription ended while waiting for approval")
	}
	decision := DecideInput{ID: s.ID}
	switch {
	case err != nil:
		var ce *temporal.CanceledError
		decision.Reason = "the approval run failed: " + err.Error()
		if errors.As(err, &ce) {
			decision.Reason = "the approval run was cancelled"
		}
		decision.By = "gateflow"
	case out.Decision == workflows.OutcomeApproved:
		decision.Approved = true
	}
	if err == nil {
		decision.By, decision.Reason = outcomeBy(out)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
		Summary:             "apply the decision on subscription " + s.ID,
	})
	return workflow.ExecuteActivity(actx, ApplyDecisionActivity, ApplyDecisionInput{Owner: s.Owner, Decision: decision}).Get(ctx, nil)
}

// outcomeBy names who decided and why, from the approval's votes.
func outcomeBy(out ApprovalOutcome) (by, reason string) {
	if out.TimedOut {
		by, reason = "gateflow", "no decision before the approval timed out"
		if out.Decision == workflows.OutcomeApproved {
			reason = "approved when the approval timed out (on_timeout: approve)"
		}
		return by, reason
	}
	if n := len(out.Votes); n > 0 {
		v := out.Votes[n-1].By
		by = v.User
		if by == "" {
			by = v.KeyID
		}
	}
	return by, out.Comment
}

// ApplyDecisionInput is the argument of ApplyDecisionActivity.
type ApplyDecisionInput struct {
	Owner    string      `json:"owner"`
	Decision DecideInput `json:"decision"`
}

// Applier is ApplyDecisionActivity: it sends the decision to the owner's
// entity. A decision the entity refuses because the subscription is no
// longer pending (cancelled or revoked meanwhile) is done, not failed.
type Applier struct {
	c         client.Client
	taskQueue string
	topic     string
}

// NewApplier returns the activity, sending Updates through c to entities
// on taskQueue (started, if need be, publishing to topic).
func NewApplier(c client.Client, taskQueue, topic string) *Applier {
	return &Applier{c: c, taskQueue: taskQueue, topic: topic}
}

// Apply is the activity function.
func (a *Applier) Apply(ctx context.Context, in ApplyDecisionInput) error {
	var res Result
	err := replicated.Update(ctx, a.c, entityRef(in.Owner, a.taskQueue, a.topic), UpdateDecide, in.Decision, &res)
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(FromUpdateError(err), &ce) && (ce.Kind == ErrConflict || ce.Kind == ErrNotFound) {
		activity.GetLogger(ctx).Info("subscription decision not applied", "subscription", in.Decision.ID, "reason", ce.Message)
		return nil
	}
	return fmt.Errorf("apply decision on subscription %s: %w", in.Decision.ID, err)
}

func entityRef(owner, taskQueue, topic string) replicated.Entity {
	return replicated.Entity{ID: EntityID(owner), Type: EntityWorkflow, TaskQueue: taskQueue, Input: EntityInput{Owner: owner, Topic: topic}}
}

// RegisterOptions configure what a worker registers for the catalogue.
type RegisterOptions struct {
	// Client sends the decisions of approvals to the entities.
	Client    client.Client
	TaskQueue string
	// Topic is the catalogue's topic (DefaultTopic when empty).
	Topic string
}

// Register registers the catalogue's workflows and activities (not the
// replicated Publisher, which the worker registers once for every
// replicated entity).
func Register(r worker.Registry, opts RegisterOptions) {
	if opts.Topic == "" {
		opts.Topic = DefaultTopic
	}
	r.RegisterWorkflowWithOptions((&Entity{}).Run, workflow.RegisterOptions{Name: EntityWorkflow})
	r.RegisterWorkflowWithOptions((&Names{}).Run, workflow.RegisterOptions{Name: NamesWorkflow})
	r.RegisterWorkflowWithOptions(SubscriptionFlow, workflow.RegisterOptions{Name: SubscriptionWorkflow})
	ap := NewApplier(opts.Client, opts.TaskQueue, opts.Topic)
	r.RegisterActivityWithOptions(ap.Apply, activity.RegisterOptions{Name: ApplyDecisionActivity})
}
