package workflows

import (
	"testing"

	"github.com/gateflow/gateflow/workflows/definition"
)

// TestEveryStepKindHasARunner fails when a step kind of the definition
// format has no interpreter: such a definition would validate and then
// fail at run time.
func TestEveryStepKindHasARunner(t *testing.T) {
	for _, k := range definition.Kinds {
		if stepRunner(k) == nil {
			t.Errorf("step kind %s has no runner in stepRunner (workflows/orchestration.go)", k)
		}
	}
}
