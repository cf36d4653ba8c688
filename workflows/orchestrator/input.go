package orchestrator

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/wire"
)

// RunInput is what an orchestration was started with (wire.RunInput).
type RunInput = wire.RunInput

// Input returns what a workflow of the caller's tenant was started with,
// so that an approver can see what they decide on and a run's page can lay
// out its steps as the definition nests them. It reads the first event of
// the latest run's history: a run continued as new starts with the same
// input and definition.
func (o *Orchestrator) Input(ctx context.Context, caller Caller, id string) (RunInput, error) {
	if err := checkCaller(caller); err != nil {
		return RunInput{}, err
	}
	desc, err := o.describe(ctx, caller, id)
	if err != nil {
		return RunInput{}, err
	}
	runID := desc.WorkflowExecution.RunID
	it := o.c.GetWorkflowHistory(ctx, WorkflowID(caller.Tenant, id), runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return RunInput{}, newError(ErrUnavailable, "history_unavailable", "workflow %s has no history yet; retry", id)
	}
	ev, err := it.Next()
	if err != nil {
		return RunInput{}, temporalError(err, "read history of "+id)
	}
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return RunInput{}, fmt.Errorf("workflow %s: first history event is %s, not its start", id, ev.GetEventType())
	}
	var in workflows.OrchestrationInput
	if err := converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &in); err != nil {
		return RunInput{}, fmt.Errorf("decode the start input of %s: %w", id, err)
	}
	out := RunInput{ID: id, RunID: runID, Definition: in.Definition, SubmittedBy: in.Meta.SubmittedBy, Labels: in.Meta.Labels}
	if len(in.Input) > 0 && string(in.Input) != "null" {
		out.Input = in.Input
	}
	return out, nil
}
