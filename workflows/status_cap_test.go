package workflows_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows"
)

// TestStatusRunOutputCap holds docs/WORKFLOWS.md's 64 KiB cap on the run's
// output in the status: an output of exactly StatusRunOutputCap bytes is
// kept as it is; one byte more and the status carries the first 64 KiB of
// it as a JSON string, while the workflow's result keeps the whole value.
func TestStatusRunOutputCap(t *testing.T) {
	if workflows.StatusRunOutputCap != 64<<10 {
		t.Fatalf("StatusRunOutputCap = %d, docs/WORKFLOWS.md says 64 KiB", workflows.StatusRunOutputCap)
	}
	for _, tc := range []struct {
		name      string
		size      int // bytes of the run's output as JSON
		truncated bool
	}{
		{"at the cap", workflows.StatusRunOutputCap, false},
		{"one byte over", workflows.StatusRunOutputCap + 1, true},
		{"far over", 4 * workflows.StatusRunOutputCap, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The output is a JSON string: two quotes around size-2 bytes.
			body := strings.Repeat("a", tc.size-2)
			f := &fakes{http: func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
				return activities.HTTPCallOutput{Status: 200, Body: body}, nil
			}}
			h := newHarness(t, f)
			h.run(input(def(t, `{"steps": [{"id": "big", "kind": "http", "service": "s"}], "output": "${{ steps.big.output.body }}"}`), `{}`))
			if err := h.env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			var result json.RawMessage
			if err := h.env.GetWorkflowResult(&result); err != nil {
				t.Fatal(err)
			}
			if len(result) != tc.size {
				t.Fatalf("the workflow result has %d bytes, want the whole %d", len(result), tc.size)
			}
			st := h.status()
			if st.State != workflows.RunSucceeded {
				t.Fatalf("state %s", st.State)
			}
			if !tc.truncated {
				if string(st.Output) != string(result) {
					t.Errorf("status output (%d bytes) differs from the result (%d bytes)", len(st.Output), len(result))
				}
				return
			}
			// Truncated: a JSON string holding the output's first 64 KiB.
			var head string
			if err := json.Unmarshal(st.Output, &head); err != nil {
				t.Fatalf("truncated output is not a JSON string: %v", err)
			}
			if head != string(result[:workflows.StatusRunOutputCap]) {
				t.Errorf("truncated output holds %d bytes, want the result's first %d", len(head), workflows.StatusRunOutputCap)
			}
		})
	}
}
