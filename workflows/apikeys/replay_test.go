package apikeys

import (
	"log/slog"
	"path/filepath"
	"testing"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayHistories replays the keys entity's recorded histories (they
// are recorded with the catalogue's:
// go test -tags integration -run TestRecordHistories ./workflows/catalog/ -update).
func TestReplayHistories(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	older, _ := filepath.Glob(filepath.Join("testdata", "histories", "*", "*.json"))
	if len(files) == 0 {
		t.Fatal("no histories; record them with: go test -tags integration -run TestRecordHistories ./workflows/catalog/ -update")
	}
	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for _, f := range append(files, older...) {
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflowWithOptions((&Entity{}).Run, workflow.RegisterOptions{Name: EntityWorkflow})
		if err := r.ReplayWorkflowHistoryFromJSONFile(quiet, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
