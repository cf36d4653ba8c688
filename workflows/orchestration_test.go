package workflows_test

import (
	"encoding/json"
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

func TestHTTPStepsDataFlow(t *testing.T) {
	h := newHarness(t, nil)
	d := def(t, `{
		"vars": {"b": "${{ vars.a + 1 }}", "a": "${{ input.n * 10 }}"},
		"steps": [
			{"id": "first", "kind": "http", "service": "svc", "method": "POST", "path": "/one/${{ input.name }}",
			 "headers": {"X-N": "${{ input.n }}"}, "query": {"q": "v${{ vars.b }}"}, "body": {"n": "${{ input.n }}", "lit": true}},
			{"id": "second", "kind": "http", "service": "svc", "path": "/two", "body": {"from": "${{ steps.first.output.body.echo.n }}", "state": "${{ steps.first.state }}"}}
		],
		"output": {"second": "${{ steps.second.output.body.echo }}", "b": "${{ vars.b }}"}
	}`)
	h.run(input(d, `{"n": 4, "name": "ann"}`))
	out := h.result()
	if fmt.Sprint(out["second"]) != "map[from:4 state:succeeded]" || out["b"] != 41.0 {
		t.Errorf("output %v", out)
	}
	calls := h.f.calls
	if len(calls) != 2 {
		t.Fatalf("%d calls", len(calls))
	}
	c := calls[0]
	if c.Method != "POST" || c.Path != "/one/ann" || c.Headers["X-N"] != "4" || c.Query["q"] != "v41" || string(c.Body) != `{"lit":true,"n":4}` {
		t.Errorf("first call %+v body %s", c, c.Body)
	}
	if c.StepID != "first" || c.Meta.Tenant != "acme" || c.Meta.Definition != "test" || c.Meta.Version != "1" {
		t.Errorf("step ref %+v", c.StepRef)
	}
	st := h.status()
	if st.State != workflows.RunSucceeded || st.ClosedAt == nil || string(st.Output) == "" {
		t.Errorf("run status %+v", st)
	}
	s := step(t, st, "first")
	if s.State != workflows.StepSucceeded || s.Attempts != 1 || s.StartedAt == nil || s.FinishedAt == nil {
		t.Errorf("step %+v", s)
	}
	if _, has := outputOf(t, s)["attempt"]; has {
		t.Error("attempt leaked into the step output")
	}
}

func TestHTTPRetryAndAttempts(t *testing.T) {
	f := &fakes{http: func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
		if in.Path == "/flaky" && attempt < 3 {
			return activities.HTTPCallOutput{}, temporal.NewApplicationError("status 500", calls.ClassStatus)
		}
		return activities.HTTPCallOutput{Status: 200}, nil
	}}
	h := newHarness(t, f)
	d := def(t, `{"steps": [{"id": "a", "kind": "http", "service": "s", "path": "/flaky",
		"retry": {"max_attempts": 5, "initial_interval": "2s", "backoff_coefficient": 3, "non_retryable_statuses": [400]}}]}`)
	h.run(input(d, `{}`))
	h.result()
	if n := len(f.calls); n != 3 {
		t.Errorf("%d calls, want 3", n)
	}
	if got := f.calls[0].NonRetryableStatuses; !slices.Equal(got, []int{400}) {
		t.Errorf("non-retryable statuses %v", got)
	}
	if s := step(t, h.status(), "a"); s.Attempts != 3 {
		t.Errorf("attempts %d", s.Attempts)
	}
}

func TestHTTPNonRetryableErrorClass(t *testing.T) {
	f := &fakes{http: func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
		return activities.HTTPCallOutput{}, temporal.NewApplicationError("POST s/x: status 500: boom", calls.ClassStatus)
	}}
	h := newHarness(t, f)
	d := def(t, `{"steps": [{"id": "a", "kind": "http", "service": "s", "path": "/x",
		"retry": {"max_attempts": 4, "non_retryable_errors": ["status"]}}]}`)
	h.run(input(d, `{}`))
	ae := h.failure()
	if ae.Type() != workflows.ErrTypeStepFailed || !strings.Contains(ae.Error(), "step a: POST s/x: status 500: boom") {
		t.Errorf("failure %q (%s)", ae.Error(), ae.Type())
	}
	if len(f.calls) != 1 {
		t.Errorf("%d calls, want 1", len(f.calls))
	}
	st := h.status()
	if st.State != workflows.RunFailed || !strings.Contains(st.Error, "boom") {
		t.Errorf("run %s %q", st.State, st.Error)
	}
	if s := step(t, st, "a"); s.State != workflows.StepFailed || s.Attempts != 1 || s.Error != "POST s/x: status 500: boom" {
		t.Errorf("step %+v", s)
	}
}

func TestRetriesExhaustedReportsAttempts(t *testing.T) {
	f := &fakes{http: func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
		return activities.HTTPCallOutput{}, temporal.NewApplicationError("status 503", calls.ClassOverloaded)
	}}
	h := newHarness(t, f)
	d := def(t, `{"steps": [{"id": "a", "kind": "http", "service": "s", "retry": {"max_attempts": 3, "initial_interval": "1s"}}]}`)
	h.run(input(d, `{}`))
	h.failure()
	if s := step(t, h.status(), "a"); s.Attempts != 3 || len(f.calls) != 3 {
		t.Errorf("attempts %d, calls %d", s.Attempts, len(f.calls))
	}
}

func TestWhenSwitchAndSkips(t *testing.T) {
	h := newHarness(t, nil)
	d := def(t, `{"steps": [
		{"id": "never", "kind": "http", "service": "s", "path": "/never", "when": "input.n > 100"},
		{"id": "route", "kind": "switch", "cases": [
			{"when": "input.n > 10", "steps": [{"id": "big", "kind": "http", "service": "s", "path": "/big"}]},
			{"when": "input.n > 1", "steps": [{"id": "mid", "kind": "http", "service": "s", "path": "/mid"}]}
		], "default": [{"id": "small", "kind": "http", "service": "s", "path": "/small"}]},
		{"id": "after", "kind": "http", "service": "s", "path": "/after", "body": {"never": "${{ steps.never.state }}", "mid": "${{ steps.mid.output.body.path }}"}}
	], "output": "${{ steps.route.output }}"}`)
	h.run(input(d, `{"n": 5}`))
	out := h.result()
	if out["case"] != 1.0 || out["default"] != false {
		t.Errorf("switch output %v", out)
	}
	if got := h.f.paths(); !slices.Equal(got, []string{"/mid", "/after"}) {
		t.Errorf("calls %v", got)
	}
	if b := string(h.f.calls[1].Body); b != `{"mid":"/mid","never":"skipped"}` {
		t.Errorf("after body %s", b)
	}
	st := h.status()
	for id, want := range map[string]workflows.StepState{"never": workflows.StepSkipped, "big": workflows.StepSkipped, "small": workflows.StepSkipped, "mid": workflows.StepSucceeded, "route": workflows.StepSucceeded} {
		if s := step(t, st, id); s.State != want {
			t.Errorf("%s: %s, want %s", id, s.State, want)
		}
	}
}

func TestSwitchDefault(t *testing.T) {
	h := newHarness(t, nil)
	d := def(t, `{"steps": [{"id": "route", "kind": "switch", "cases": [{"when": "false", "steps": [{"id": "x", "kind": "wait", "duration": "1s"}]}],
		"default": [{"id": "dflt", "kind": "http", "service": "s", "path": "/d"}]}], "output": "${{ steps.route.output }}"}`)
	h.run(input(d, `{}`))
	if out := h.result(); out["case"] != -1.0 || out["default"] != true {
		t.Errorf("output %v", out)
	}
}

func TestParallelJoin(t *testing.T) {
	h := newHarness(t, nil)
	d := def(t, `{"steps": [
		{"id": "fan", "kind": "parallel", "branches": [
			{"name": "left", "steps": [{"id": "l1", "kind": "http", "service": "s", "path": "/l1"}, {"id": "l2", "kind": "http", "service": "s", "path": "/l2", "body": "${{ steps.l1.output.body.path }}"}]},
			{"name": "right", "steps": [{"id": "r1", "kind": "wait", "duration": "1m"}, {"id": "r2", "kind": "http", "service": "s", "path": "/r2"}]}
		]},
		{"id": "join", "kind": "http", "service": "s", "path": "/join", "body": ["${{ steps.l2.output.body.echo }}", "${{ steps.r2.output.status }}"]}
	], "output": {"fan": "${{ steps.fan.output.left.l1.status }}"}}`)
	h.run(input(d, `{}`))
	if out := h.result(); out["fan"] != 200.0 {
		t.Errorf("output %v", out)
	}
	paths := h.f.paths()
	if paths[len(paths)-1] != "/join" || !slices.Contains(paths, "/r2") {
		t.Errorf("calls %v", paths)
	}
	if b := string(h.f.calls[len(h.f.calls)-1].Body); b != `["/l1",200]` {
		t.Errorf("join body %s", b)
	}
}

func TestParallelFirstFailureCancelsOthers(t *testing.T) {
	f := &fakes{http: func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
		if in.Path == "/bad" {
			return activities.HTTPCallOutput{}, temporal.NewNonRetryableApplicationError("nope", calls.ClassAuth, nil)
		}
		return echo(in), nil
	}}
	h := newHarness(t, f)
	d := def(t, `{"steps": [
		{"id": "fan", "kind": "parallel", "branches": [
			{"name": "slow", "steps": [{"id": "w", "kind": "wait", "duration": "1h"}, {"id": "late", "kind": "http", "service": "s", "path": "/late"}]},
			{"name": "fail", "steps": [{"id": "bad", "kind": "http", "service": "s", "path": "/bad"}]}
		]},
		{"id": "next", "kind": "http", "service": "s", "path": "/next"}
	]}`)
	start := h.env.Now()
	h.run(input(d, `{}`))
	ae := h.failure()
	if !strings.Contains(ae.Error(), "step bad: nope") {
		t.Errorf("error %v", ae)
	}
	if slices.Contains(f.paths(), "/late") || slices.Contains(f.paths(), "/next") {
		t.Errorf("calls after the failure: %v", f.paths())
	}
	if h.env.Now().Sub(start) >= time.Hour {
		t.Error("the wait in the other branch was not cancelled")
	}
	st := h.status()
	if s := step(t, st, "fan"); s.State != workflows.StepFailed || !strings.Contains(s.Error, "step bad") {
		t.Errorf("fan %+v", s)
	}
	if s := step(t, st, "w"); s.State != workflows.StepFailed {
		t.Errorf("cancelled wait %+v", s)
	}
	if s := step(t, st, "next"); s.State != workflows.StepPending {
		t.Errorf("next %+v", s)
	}
}

func TestForeachConcurrencyAndResults(t *testing.T) {
	h := newHarness(t, nil)
	d := def(t, `{"steps": [
		{"id": "each", "kind": "foreach", "items": "input.orders", "concurrency": 3, "steps": [
			{"id": "charge", "kind": "http", "service": "s", "path": "/charge/${{ item.id }}", "body": {"i": "${{ index }}"}},
			{"id": "note", "kind": "http", "service": "s", "path": "/note", "when": "item.amount > 10", "body": "${{ steps.charge.output.body.path }}"}
		]}
	], "output": {"results": "${{ steps.each.output }}"}}`)
	h.run(input(d, `{"orders": [{"id": "a", "amount": 5}, {"id": "b", "amount": 50}, {"id": "c", "amount": 7}, {"id": "d", "amount": 70}, {"id": "e", "amount": 1}]}`))
	out := h.result()
	results, _ := out["results"].([]any)
	if len(results) != 5 {
		t.Fatalf("results %v", out)
	}
	r1, _ := results[1].(map[string]any)
	note, _ := r1["note"].(map[string]any)
	if body, _ := note["body"].(map[string]any); body["echo"] != "/charge/b" {
		t.Errorf("item 1 result %v", r1)
	}
	if r0, _ := results[0].(map[string]any); r0["note"] != nil {
		t.Errorf("item 0 note should be skipped: %v", r0)
	}
	st := h.status()
	if s := step(t, st, "each[3].charge"); s.State != workflows.StepSucceeded {
		t.Errorf("each[3].charge %+v", s)
	}
	if s := step(t, st, "each[0].note"); s.State != workflows.StepSkipped {
		t.Errorf("each[0].note %+v", s)
	}
	if len(h.f.calls) != 7 {
		t.Errorf("%d calls", len(h.f.calls))
	}
}

func TestForeachFailureStopsItems(t *testing.T) {
	f := &fakes{http: func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
		if in.Path == "/x/2" {
			return activities.HTTPCallOutput{}, temporal.NewNonRetryableApplicationError("bad item", calls.ClassStatus, nil)
		}
		return echo(in), nil
	}}
	h := newHarness(t, f)
	d := def(t, `{"steps": [{"id": "each", "kind": "foreach", "items": "[0,1,2,3,4,5,6,7,8,9]", "steps": [
		{"id": "call", "kind": "http", "service": "s", "path": "/x/${{ item }}"}]}]}`)
	h.run(input(d, `{}`))
	ae := h.failure()
	if !strings.Contains(ae.Error(), "step each[2].call: bad item") {
		t.Errorf("error %v", ae)
	}
	if got := f.paths(); !slices.Equal(got, []string{"/x/0", "/x/1", "/x/2"}) {
		t.Errorf("calls %v (default concurrency is 1)", got)
	}
}

func TestWaitDurationAndUntil(t *testing.T) {
	h := newHarness(t, nil)
	start := h.env.Now()
	until := start.Add(3 * time.Hour).UTC().Format(time.RFC3339)
	d := def(t, `{"steps": [
		{"id": "nap", "kind": "wait", "duration": "90m"},
		{"id": "till", "kind": "wait", "until": "input.at"},
		{"id": "past", "kind": "wait", "until": "input.past"}
	], "output": "${{ steps.till.output }}"}`)
	h.run(input(d, fmt.Sprintf(`{"at": %q, "past": 1000}`, until)))
	out := h.result()
	if out["until"] == nil {
		t.Errorf("output %v", out)
	}
	if el := h.env.Now().Sub(start); el < 3*time.Hour-time.Second || el > 3*time.Hour+time.Minute {
		t.Errorf("elapsed %s", el)
	}
}

func TestModelAndMCPSteps(t *testing.T) {
	f := &fakes{model: func(in activities.ModelCallInput) (activities.ModelCallOutput, error) {
		return activities.ModelCallOutput{Content: `{"label":"spam"}`, JSON: map[string]any{"label": "spam"}, Model: in.Request.Model, Attempt: 2}, nil
	}}
	h := newHarness(t, f)
	d := def(t, `{"steps": [
		{"id": "classify", "kind": "model", "model": "gpt-small", "system": "You label ${{ input.kind }}.",
		 "messages": [{"role": "assistant", "content": "Ready."}], "prompt": "Label: ${{ input.text }}",
		 "max_tokens": 50, "temperature": 0.2, "response_format": "json", "timeout": "20s"},
		{"id": "tool", "kind": "mcp", "server": "files", "tool": "write", "arguments": {"label": "${{ steps.classify.output.json.label }}"}}
	], "output": {"label": "${{ steps.classify.output.json.label }}", "tool": "${{ steps.tool.output.content }}"}}`)
	h.run(input(d, `{"kind": "mail", "text": "win money"}`))
	out := h.result()
	if out["label"] != "spam" || out["tool"] != "tool write" {
		t.Errorf("output %v", out)
	}
	m := f.models[0]
	req := m.Request
	if req.Model != "gpt-small" || len(req.Messages) != 3 || req.Messages[0].Role != "system" || req.Messages[0].Text() != "You label mail." ||
		req.Messages[1].Text() != "Ready." || req.Messages[2].Role != "user" || req.Messages[2].Text() != "Label: win money" ||
		*req.MaxTokens != 50 || *req.Temperature != 0.2 || req.ResponseFormat.Type != "json_object" || m.Timeout != 20*time.Second || m.StepID != "classify" {
		t.Errorf("model request %+v", m)
	}
	if string(f.mcps[0].Arguments) != `{"label":"spam"}` || f.mcps[0].Server != "files" {
		t.Errorf("mcp input %+v", f.mcps[0])
	}
	if s := step(t, h.status(), "classify"); s.Attempts != 2 {
		t.Errorf("model attempts %d", s.Attempts)
	}
}

func TestExpressionErrorFailsStep(t *testing.T) {
	h := newHarness(t, nil)
	d := def(t, `{"steps": [{"id": "a", "kind": "http", "service": "s", "when": "input.missing.deeper > 1"}]}`)
	h.run(input(d, `{}`))
	ae := h.failure()
	if !strings.Contains(ae.Error(), "step a: when:") {
		t.Errorf("error %v", ae)
	}
	if s := step(t, h.status(), "a"); s.State != workflows.StepFailed {
		t.Errorf("step %+v", s)
	}
}

func TestInvalidInput(t *testing.T) {
	h := newHarness(t, nil)
	d := def(t, `{"steps": []}`)
	in := input(d, `{}`)
	in.Carry = &workflows.Carry{State: json.RawMessage(`"not a state"`)}
	h.run(in)
	if ae := h.failure(); ae.Type() != workflows.ErrTypeInvalidOrchestration {
		t.Errorf("type %s", ae.Type())
	}
}

func TestStatusOutputCapAndSeq(t *testing.T) {
	big := strings.Repeat("é", workflows.StatusOutputCap)
	f := &fakes{http: func(in activities.HTTPCallInput, attempt int32) (activities.HTTPCallOutput, error) {
		return activities.HTTPCallOutput{Status: 200, Body: big}, nil
	}}
	h := newHarness(t, f)
	var seqs []int64
	for _, at := range []time.Duration{time.Second, 2 * time.Minute} {
		h.env.RegisterDelayedCallback(func() {
			v, err := h.env.QueryWorkflow(workflows.StatusQuery)
			if err != nil {
				t.Error(err)
				return
			}
			var st workflows.Status
			_ = v.Get(&st)
			seqs = append(seqs, st.Seq)
		}, at)
	}
	d := def(t, `{"steps": [{"id": "w", "kind": "wait", "duration": "1m"}, {"id": "w2", "kind": "wait", "duration": "5m"}, {"id": "big", "kind": "http", "service": "s"}],
		"output": {"n": "${{ len(steps.big.output.body) }}"}}`)
	h.run(input(d, `{}`))
	if out := h.result(); out["n"] != float64(workflows.StatusOutputCap) {
		t.Errorf("expressions must see the whole output: %v", out)
	}
	st := h.status()
	s := step(t, st, "big")
	if !s.OutputTruncated || len(s.Output) > workflows.StatusOutputCap+16 {
		t.Errorf("truncated %v, %d bytes", s.OutputTruncated, len(s.Output))
	}
	var str string
	if err := json.Unmarshal(s.Output, &str); err != nil {
		t.Errorf("truncated output is not a JSON string: %v", err)
	}
	if len(seqs) != 2 || seqs[0] >= seqs[1] || seqs[1] >= st.Seq {
		t.Errorf("seq did not increase: %v then %d", seqs, st.Seq)
	}
	if st.Definition != "test" || st.Version != "1" || st.Tenant != "acme" || st.StartedAt.IsZero() {
		t.Errorf("status header %+v", st)
	}
}
