package replicated

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
)

// Bounds shared by the entity workflows built on this package.
const (
	// ContinueAsNewAfter is the number of changes after which an entity
	// run continues as new even when the server does not suggest it yet.
	ContinueAsNewAfter = 500
	// PublishWait is how long an Update waits for its keys to reach the
	// topic before it answers (they are published later if Kafka is slow).
	PublishWait = 5 * time.Second
)

// Entity names one entity workflow instance.
type Entity struct {
	// ID is the workflow id, e.g. "gateflow-catalog/acme".
	ID string
	// Type is the workflow type.
	Type string
	// TaskQueue is where it runs.
	TaskQueue string
	// Input starts it when it does not run yet.
	Input any
}

// Update sends a validated Update to the entity, starting the entity on
// first use, waits for its result and decodes it into out (when not nil).
// A refused Update (its validator's error) is returned as the application
// error the workflow raised; callers map its type.
func Update(ctx context.Context, c client.Client, e Entity, update string, arg any, out any) error {
	start := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       e.ID,
		TaskQueue:                e.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, e.Type, e.Input)
	h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   e.ID,
			UpdateName:   update,
			Args:         []any{arg},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", update, e.ID, err)
	}
	// A refused update shows its error here, not from UpdateWithStartWorkflow.
	if out == nil {
		var ignore any
		return h.Get(ctx, &ignore)
	}
	return h.Get(ctx, out)
}

// ShouldContinueAsNew is the condition an entity's main loop waits for:
// enough changes handled by this run, or the server suggests it.
func ShouldContinueAsNew(ctx workflow.Context, handled int) bool {
	return handled >= ContinueAsNewAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

// DrainForContinueAsNew waits until accepted Updates have finished and no
// publication is in flight, the point where an entity may continue as new
// carrying its state and outbox.
func DrainForContinueAsNew(ctx workflow.Context, o *Outbox) error {
	o.Stop()
	return workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) && o.Idle() })
}
