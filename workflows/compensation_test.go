package workflows_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/workflows"
)

const sagaDef = `{"steps": [
	{"id": "a", "kind": "http", "service": "s", "path": "/a", "compensate": {"id": "undo_a", "kind": "http", "service": "s", "path": "/undo/a"}},
	{"id": "fan", "kind": "parallel", "branches": [
		{"name": "x", "steps": [{"id": "b", "kind": "http", "service": "s", "path": "/b", "compensate": {"id": "undo_b", "kind": "http", "service": "s", "path": "/undo/b"}}]},
		{"name": "y", "steps": [{"id": "w", "kind": "wait", "duration": "1m"}, {"id": "c", "kind": "http", "service": "s", "path": "/c", "compensate": {"id": "undo_c", "kind": "http", "service": "s", "path": "/undo/c"}}]}
	]},
	{"id": "each", "kind": "foreach", "items": "['p', 'q']", "steps": [
		{"id": "d", "kind": "http", "service": "s", "path": "/d/${{ item }}", "compensate": {"id": "undo_d", "kind": "http", "service": "s", "path": "/undo/d/${{ item }}/${{ index }}"}}]},
	{"id": "skipped", "kind": "http", "service": "s", "path": "/s", "when": "false", "compensate": {"id": "undo_s", "kind": "http", "service": "s", "path": "/undo/s"}},
	{"id": "hold", "kind": "wait", "duration": "1h"},
	{"id": "last", "kind": "http", "service": "s", "path": "/last"}
]}`

func failOn(path string, undoFails ...string) func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
	return func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
		if in.Path == path || slices.Contains(undoFails, in.Path) {
			return activities.HTTPCallOutput{}, temporal.NewNonRetryableApplicationError("failed "+in.Path, calls.ClassStatus, nil)
		}
		return echo(in), nil
	}
}

func TestCompensationReverseOrder(t *testing.T) {
	f := &fakes{http: failOn("/last")}
	h := newHarness(t, f)
	h.run(input(def(t, sagaDef), `{}`))
	ae := h.failure()
	if ae.Type() != workflows.ErrTypeStepFailed || !strings.Contains(ae.Error(), "step last: failed /last") {
		t.Errorf("failure %v", ae)
	}
	want := []string{"/a", "/b", "/c", "/d/p", "/d/q", "/last", "/undo/d/q/1", "/undo/d/p/0", "/undo/c", "/undo/b", "/undo/a"}
	if got := f.paths(); !slices.Equal(got, want) {
		t.Errorf("calls\n got %v\nwant %v", got, want)
	}
	st := h.status()
	if st.State != workflows.RunCompensated {
		t.Errorf("run state %s", st.State)
	}
	for _, id := range []string{"a", "b", "c", "each[0].d", "each[1].d"} {
		if s := step(t, st, id); s.State != workflows.StepCompensated {
			t.Errorf("%s: %s", id, s.State)
		}
		if s := step(t, st, id+".compensate"); s.State != workflows.StepSucceeded {
			t.Errorf("%s.compensate: %s", id, s.State)
		}
	}
	if s := step(t, st, "skipped"); s.State != workflows.StepSkipped {
		t.Errorf("skipped: %s", s.State)
	}
}

func TestCompensationFailureKeepsGoing(t *testing.T) {
	f := &fakes{http: failOn("/last", "/undo/b")}
	h := newHarness(t, f)
	h.run(input(def(t, sagaDef), `{}`))
	ae := h.failure()
	if !strings.Contains(ae.Error(), "compensation failed: step b.compensate: failed /undo/b") {
		t.Errorf("failure %v", ae)
	}
	if got := f.paths(); got[len(got)-1] != "/undo/a" {
		t.Errorf("compensation stopped early: %v", got)
	}
	st := h.status()
	if st.State != workflows.RunFailed {
		t.Errorf("run state %s", st.State)
	}
	if s := step(t, st, "b"); s.State != workflows.StepSucceeded {
		t.Errorf("b: %s (its compensation failed)", s.State)
	}
	if s := step(t, st, "b.compensate"); s.State != workflows.StepFailed {
		t.Errorf("b.compensate: %s", s.State)
	}
}

func TestCancellationRunsCompensations(t *testing.T) {
	f := &fakes{}
	h := newHarness(t, f)
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 30*time.Minute)
	h.run(input(def(t, sagaDef), `{}`))
	err := h.env.GetWorkflowError()
	var ce *temporal.CanceledError
	if !errors.As(err, &ce) {
		t.Fatalf("workflow error %v, want cancelled", err)
	}
	want := []string{"/a", "/b", "/c", "/d/p", "/d/q", "/undo/d/q/1", "/undo/d/p/0", "/undo/c", "/undo/b", "/undo/a"}
	if got := f.paths(); !slices.Equal(got, want) {
		t.Errorf("calls\n got %v\nwant %v", got, want)
	}
	st := h.status()
	if st.State != workflows.RunCompensated || st.Error != "orchestration cancelled" {
		t.Errorf("run %s %q", st.State, st.Error)
	}
	if s := step(t, st, "hold"); s.State != workflows.StepFailed {
		t.Errorf("hold: %s", s.State)
	}
}

func TestCancellationWithoutCompensations(t *testing.T) {
	h := newHarness(t, nil)
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, time.Minute)
	h.run(approvalInput(t, "1", "reject"))
	// approvalInput's reserve step has a compensation; use a plain wait.
	h2 := newHarness(t, nil)
	h2.env.RegisterDelayedCallback(h2.env.CancelWorkflow, time.Minute)
	h2.run(input(def(t, `{"steps": [{"id": "w", "kind": "wait", "duration": "1h"}]}`), `{}`))
	if st := h2.status(); st.State != workflows.RunCancelled {
		t.Errorf("run %s", st.State)
	}
	if st := h.status(); st.State != workflows.RunCompensated || len(st.Pending) != 0 {
		t.Errorf("cancel while waiting for approval: %s pending %v", st.State, st.Pending)
	}
}

func TestDefinitionTimeout(t *testing.T) {
	f := &fakes{}
	h := newHarness(t, f)
	d := def(t, `{"timeout": "10m", "steps": [
		{"id": "a", "kind": "http", "service": "s", "path": "/a", "compensate": {"id": "undo", "kind": "http", "service": "s", "path": "/undo"}},
		{"id": "w", "kind": "wait", "duration": "1h"}]}`)
	start := h.env.Now()
	h.run(input(d, `{}`))
	ae := h.failure()
	if ae.Type() != workflows.ErrTypeOrchestrationTimedOut && !strings.Contains(ae.Error(), "timed out after 10m") {
		t.Errorf("failure %s %v", ae.Type(), ae)
	}
	if el := h.env.Now().Sub(start); el > 11*time.Minute {
		t.Errorf("ran %s", el)
	}
	if got := f.paths(); !slices.Equal(got, []string{"/a", "/undo"}) {
		t.Errorf("calls %v", got)
	}
	if st := h.status(); st.State != workflows.RunCompensated || !strings.Contains(st.Error, "timed out") {
		t.Errorf("run %s %q", st.State, st.Error)
	}
}

func TestContinueAsNewForeach(t *testing.T) {
	const n = 300
	f := &fakes{http: func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
		if in.Path == "/last" {
			return activities.HTTPCallOutput{}, temporal.NewNonRetryableApplicationError("stop", calls.ClassStatus, nil)
		}
		return echo(in), nil
	}}
	d := def(t, fmt.Sprintf(`{"vars": {"tag": "${{ input.tag }}"}, "steps": [
		{"id": "first", "kind": "http", "service": "s", "path": "/first", "compensate": {"id": "undo_first", "kind": "http", "service": "s", "path": "/undo/first"}},
		{"id": "each", "kind": "foreach", "items": "0..%d", "concurrency": 4, "steps": [
			{"id": "call", "kind": "http", "service": "s", "path": "/item/${{ item }}", "body": "${{ vars.tag }}",
			 "compensate": {"id": "undo_call", "kind": "http", "service": "s", "path": "/undo/item/${{ item }}"}}]},
		{"id": "sum", "kind": "http", "service": "s", "path": "/sum", "body": {"n": "${{ len(steps.each.output) }}", "first": "${{ steps.first.output.body.path }}", "i7": "${{ steps.each.output[7].call.body.path }}"}},
		{"id": "last", "kind": "http", "service": "s", "path": "/last"}
	]}`, n-1))
	in := input(d, `{"tag": "T"}`)
	in.ContinueAsNewAfter = 200
	runs, h := runToEnd(t, f, in)
	if runs < 5 {
		t.Errorf("%d runs, want several continue-as-new", runs)
	}
	ae := h.failure()
	if !strings.Contains(ae.Error(), "step last: stop") {
		t.Errorf("failure %v", ae)
	}
	paths := f.paths()
	var items, undos int
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[p] {
			t.Errorf("call %s made twice", p)
		}
		seen[p] = true
		switch {
		case strings.HasPrefix(p, "/item/"):
			items++
		case strings.HasPrefix(p, "/undo/item/"):
			undos++
		}
	}
	// Items complete in any order (4 at once); their undos all come before
	// the undo of the step before the loop.
	if items != n || undos != n || paths[len(paths)-1] != "/undo/first" || !strings.HasPrefix(paths[len(paths)-2], "/undo/item/") {
		t.Errorf("%d items, %d undos, calls end with %v", items, undos, paths[len(paths)-3:])
	}
	for _, c := range f.calls {
		if c.Path == "/sum" && string(c.Body) != fmt.Sprintf(`{"first":"/first","i7":"/item/7","n":%d}`, n) {
			t.Errorf("sum body %s", c.Body)
		}
		if strings.HasPrefix(c.Path, "/item/") && string(c.Body) != `"T"` {
			t.Errorf("vars lost across runs: %s", c.Body)
		}
	}
	st := h.status()
	if st.State != workflows.RunCompensated {
		t.Errorf("state %s", st.State)
	}
	if s := step(t, st, fmt.Sprintf("each[%d].call", n-1)); s.State != workflows.StepCompensated {
		t.Errorf("last item %+v", s)
	}
	if s := step(t, st, "each"); s.State != workflows.StepSucceeded {
		t.Errorf("each %+v", s)
	}
}

func TestContinueAsNewBetweenSteps(t *testing.T) {
	var steps []string
	for i := range 60 {
		steps = append(steps, fmt.Sprintf(`{"id": "s%d", "kind": "http", "service": "s", "path": "/%d"}`, i, i))
	}
	d := def(t, `{"steps": [`+strings.Join(steps, ",")+`], "output": {"last": "${{ steps.s59.output.body.path }}", "first": "${{ steps.s0.output.status }}"}}`)
	in := input(d, `{}`)
	in.ContinueAsNewAfter = 100
	f := &fakes{}
	runs, h := runToEnd(t, f, in)
	if runs < 3 {
		t.Errorf("%d runs", runs)
	}
	if out := h.result(); out["last"] != "/59" || out["first"] != 200.0 {
		t.Errorf("output %v", out)
	}
	if len(f.calls) != 60 {
		t.Errorf("%d calls", len(f.calls))
	}
	st := h.status()
	if len(st.Steps) != 60 || st.State != workflows.RunSucceeded {
		t.Errorf("%d steps, %s", len(st.Steps), st.State)
	}
}

func TestDefinitionTimeoutNotReached(t *testing.T) {
	h := newHarness(t, nil)
	d := def(t, `{"timeout": "1h", "steps": [{"id": "a", "kind": "http", "service": "s", "path": "/a"}, {"id": "w", "kind": "wait", "duration": "10m"}],
		"output": {"ok": "${{ steps.a.output.status == 200 }}"}}`)
	h.run(input(d, `{}`))
	if out := h.result(); out["ok"] != true {
		t.Errorf("output %v", out)
	}
	if st := h.status(); st.State != workflows.RunSucceeded {
		t.Errorf("state %s", st.State)
	}
}
