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
// running orchestrations fails here. testdata/histories holds the
// histories of the current code; each subdirectory freezes those of an
// older version that workflows may still be running with
// (before-visibility: recorded before the VisibilityChange GetVersion,
// replayed on its default-version path; before-path-escape: recorded before
// the gateflow.path-escape GetVersion, likewise; before-events: recorded before the
// event step, callbacks and schedule inputs of EventsChange;
// before-self-approval-and-limits: recorded before the gateflow.self-approval
// and gateflow.run-limits GetVersions, likewise). After a deliberate and versioned
// (workflow.GetVersion) change, move the top-level files into a new
// subdirectory named after the change, then record the current ones with:
//
//	go test -tags integration -run TestRecordHistories ./worker/ -update
func TestReplayHistories(t *testing.T) {
	current, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	older, err := filepath.Glob(filepath.Join("testdata", "histories", "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(current) == 0 {
		t.Fatal("no histories in testdata/histories; record them with: go test -tags integration -run TestRecordHistories ./worker/ -update")
	}
	files := append(current, older...)
	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for _, f := range files {
		name, _ := filepath.Rel(filepath.Join("testdata", "histories"), f)
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Orchestration, workflow.RegisterOptions{Name: workflows.OrchestrationWorkflow})
			if err := r.ReplayWorkflowHistoryFromJSONFile(quiet, f); err != nil {
				t.Fatalf("replay: %v", err)
			}
		})
	}
}
