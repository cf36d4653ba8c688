package workflows_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
)

// TestRunLimits: the interpreter fails an orchestration past its limits
// with LimitExceeded, after compensating what it did: a foreach over more
// items than max_foreach_items (before any item runs), and more step
// executions than max_step_executions, skipped steps (which add no history
// event) included.
func TestRunLimits(t *testing.T) {
	const undo = `"compensate": {"id": "undo", "kind": "http", "service": "s", "path": "/undo"}`
	cases := []struct {
		name     string
		def      string
		input    string
		limits   definition.RunLimits
		wantMsg  string
		wantCall int // calls before the compensation
	}{
		{name: "items", limits: definition.RunLimits{MaxForeachItems: 3}, input: `{"list": [1, 2, 3, 4]}`,
			def: `{"steps": [{"id": "first", "kind": "http", "service": "s", "path": "/first", ` + undo + `},
				{"id": "each", "kind": "foreach", "items": "input.list", "steps": [{"id": "c", "kind": "http", "service": "s", "path": "/c"}]}]}`,
			wantMsg: "step each: items: 4 items, more than the limit of 3 (max_foreach_items)", wantCall: 1},
		{name: "skipped steps count", limits: definition.RunLimits{MaxStepExecutions: 50}, input: `{"n": 1000}`,
			def: `{"steps": [{"id": "first", "kind": "http", "service": "s", "path": "/first", ` + undo + `},
				{"id": "each", "kind": "foreach", "items": "0..(input.n - 1)", "steps": [
					{"id": "never", "kind": "http", "service": "s", "path": "/never", "when": "item < 0"},
					{"id": "pick", "kind": "switch", "cases": [{"when": "item < 0", "steps": [{"id": "no", "kind": "http", "service": "s", "path": "/no"}]}]}]}]}`,
			wantMsg: "step each[24].never: orchestration limit reached: more than 50 step executions (max_step_executions)", wantCall: 1},
		{name: "default items bound", input: fmt.Sprintf(`{"n": %d}`, definition.DefaultMaxForeachItems+1),
			def:     `{"steps": [{"id": "each", "kind": "foreach", "items": "1..input.n", "steps": [{"id": "c", "kind": "http", "service": "s", "path": "/c"}]}]}`,
			wantMsg: fmt.Sprintf("step each: items: %d items, more than the limit of %d (max_foreach_items)", definition.DefaultMaxForeachItems+1, definition.DefaultMaxForeachItems)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			in := input(def(t, tc.def), tc.input)
			if tc.limits != (definition.RunLimits{}) {
				in.Limits = &tc.limits
			}
			h.run(in)
			ae := h.failure()
			if ae.Type() != workflows.ErrTypeLimitExceeded || !strings.Contains(ae.Error(), tc.wantMsg) {
				t.Errorf("failure %s: %v, want %s: %s", ae.Type(), ae, workflows.ErrTypeLimitExceeded, tc.wantMsg)
			}
			paths := h.f.paths()
			if len(paths) != tc.wantCall+min(tc.wantCall, 1) || (tc.wantCall > 0 && paths[len(paths)-1] != "/undo") {
				t.Errorf("calls %v", paths)
			}
		})
	}
}

// TestStepExecutionsCarriedAcrossRuns: the count goes on through
// continue-as-new, so a long loop cannot reset it.
func TestStepExecutionsCarriedAcrossRuns(t *testing.T) {
	d := def(t, `{"steps": [{"id": "each", "kind": "foreach", "items": "0..39", "concurrency": 2, "steps": [
		{"id": "c", "kind": "http", "service": "s", "path": "/c/${{ item }}"}]}]}`)
	in := input(d, `{}`)
	in.ContinueAsNewAfter = 60
	in.Limits = &definition.RunLimits{MaxStepExecutions: 30}
	f := &fakes{}
	runs, h := runToEnd(t, f, in)
	if runs < 2 {
		t.Errorf("%d runs, want continue-as-new before the limit", runs)
	}
	if ae := h.failure(); ae.Type() != workflows.ErrTypeLimitExceeded || !strings.Contains(ae.Error(), "more than 30 step executions") {
		t.Errorf("failure %v", ae)
	}
	// 30 executions: the foreach and 29 items; the 31st is refused, and the
	// item running beside it may be cancelled before its call (and its
	// activity may still be finishing: read under the fakes' lock).
	f.mu.Lock()
	n := len(f.calls)
	f.mu.Unlock()
	if n < 28 || n > 29 {
		t.Errorf("%d calls, want 29 (or 28)", n)
	}
}

// TestCallsAtOnceBounded: however wide a foreach is, the run never has
// more calls in flight than max_concurrency (validation refuses such
// definitions; the interpreter holds the line anyway).
func TestCallsAtOnceBounded(t *testing.T) {
	var mu sync.Mutex
	running, most := 0, 0
	f := &fakes{http: func(in activities.HTTPCallInput, _ int32) (activities.HTTPCallOutput, error) {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		return echo(in), nil
	}}
	h := newHarness(t, f)
	d := def(t, `{"steps": [{"id": "each", "kind": "foreach", "items": "0..19", "concurrency": 10, "steps": [
		{"id": "c", "kind": "http", "service": "s", "path": "/c"}]}]}`)
	in := input(d, `{}`)
	in.Limits = &definition.RunLimits{MaxConcurrency: 2}
	h.run(in)
	h.result()
	if len(f.calls) != 20 || most > 2 {
		t.Errorf("%d calls, at most %d at once, want 20 and at most 2", len(f.calls), most)
	}
}
