package workflows_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows"
)

// BenchmarkOneHTTPStep measures the worker-side cost of interpreting a
// one-http-step definition (template evaluation, status, output) against a
// hand-written workflow calling the same activity, both in the SDK's test
// environment (no server), so that only the workflow code differs.
//
//	go test -run '^$' -bench OneHTTPStep -benchmem ./workflows/
func BenchmarkOneHTTPStep(b *testing.B) {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	call := func(_ context.Context, in activities.HTTPCallInput) (activities.HTTPCallOutput, error) {
		return activities.HTTPCallOutput{Status: 200, Headers: map[string]string{"content-type": "application/json"}, Body: map[string]any{"ok": true}, Attempt: 1}, nil
	}
	d := def(&testing.T{}, `{"name": "bench", "version": "1", "steps": [
		{"id": "work", "kind": "http", "service": "svc", "method": "POST", "path": "/work", "body": {"id": "${{ input.id }}"}}
	], "output": "${{ steps.work.output.body }}"}`)
	in := input(d, `{"id": "o-1"}`)
	handWritten := func(ctx workflow.Context, id string) (map[string]any, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
		var out activities.HTTPCallOutput
		err := workflow.ExecuteActivity(ctx, activities.HTTPCallActivity, activities.HTTPCallInput{Service: "svc", Method: "POST", Path: "/work"}).Get(ctx, &out)
		body, _ := out.Body.(map[string]any)
		return body, err
	}
	for _, mode := range []string{"handwritten", "interpreter"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				env := suite.NewTestWorkflowEnvironment()
				env.RegisterActivityWithOptions(call, activity.RegisterOptions{Name: activities.HTTPCallActivity})
				if mode == "interpreter" {
					env.RegisterWorkflowWithOptions(workflows.Orchestration, workflow.RegisterOptions{Name: workflows.OrchestrationWorkflow})
					env.ExecuteWorkflow(workflows.OrchestrationWorkflow, in)
				} else {
					env.RegisterWorkflowWithOptions(handWritten, workflow.RegisterOptions{Name: "hand"})
					env.ExecuteWorkflow("hand", "o-1")
				}
				if err := env.GetWorkflowError(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
