package catalog

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows"
)

// newReplayer registers the catalogue's workflows as the worker does.
func newReplayer() worker.WorkflowReplayer {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions((&Entity{}).Run, workflow.RegisterOptions{Name: EntityWorkflow})
	r.RegisterWorkflowWithOptions((&Names{}).Run, workflow.RegisterOptions{Name: NamesWorkflow})
	r.RegisterWorkflowWithOptions(SubscriptionFlow, workflow.RegisterOptions{Name: SubscriptionWorkflow})
	r.RegisterWorkflowWithOptions(workflows.Orchestration, workflow.RegisterOptions{Name: workflows.OrchestrationWorkflow})
	return r
}

// TestReplayHistories replays histories recorded against a real server
// (an owner's entity across continue-as-new with a subscription approved
// in the interpreter, a cancelled one and a revocation; the approval
// workflows; the name claims) with the current code: a change that would
// break running catalogue workflows fails here. After a deliberate change
// guarded by workflow.GetVersion, move these files into a subdirectory
// named after the change (they must still replay) and record the current
// ones with:
//
//	go test -tags integration -run TestRecordHistories ./workflows/catalog/ -update
func TestReplayHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	older, _ := filepath.Glob(filepath.Join("testdata", "histories", "*", "*.json"))
	if len(files) == 0 {
		t.Fatal("no histories; record them with: go test -tags integration -run TestRecordHistories ./workflows/catalog/ -update")
	}
	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for _, f := range append(files, older...) {
		name, _ := filepath.Rel(filepath.Join("testdata", "histories"), f)
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			if err := newReplayer().ReplayWorkflowHistoryFromJSONFile(quiet, f); err != nil {
				t.Fatalf("replay: %v", err)
			}
		})
	}
}
