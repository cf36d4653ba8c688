package workflows_test

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

// TestReplayHistories replays histories recorded against a real server
// (every step kind, approvals, compensation, cancellation, timeouts,
// continue-as-new) with the current code: a change that would break
// running orchestrations fails here. Regenerate them, after a deliberate
// and versioned (workflow.GetVersion) change, with:
//
//	go test -tags integration -run TestRecordHistories ./worker/ -update
func TestReplayHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no histories in testdata/histories; record them with: go test -tags integration -run TestRecordHistories ./worker/ -update")
	}
	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Orchestration, workflow.RegisterOptions{Name: workflows.OrchestrationWorkflow})
			if err := r.ReplayWorkflowHistoryFromJSONFile(quiet, f); err != nil {
				t.Fatalf("replay: %v", err)
			}
		})
	}
}
