package definition

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestLimitProblems(t *testing.T) {
	const head = "name: d\nversion: \"1\"\n"
	call := "{id: c, kind: http, service: echo}"
	cases := []struct {
		name   string
		steps  string
		limits RunLimits
		want   []string
	}{
		{"within the defaults", `steps:
  - {id: each, kind: foreach, items: "input.list", concurrency: 100, steps: [` + call + `]}`, RunLimits{}, nil},
		{"nested foreach multiplies", `steps:
  - {id: outer, kind: foreach, items: "input.a", concurrency: 10, steps: [
      {id: inner, kind: foreach, items: "item.b", concurrency: 20, steps: [` + call + `]}]}`, RunLimits{}, []string{
			"steps[0]: up to 200 calls at once (concurrency 10 × 20 inside), more than the limit of 100 (max_concurrency)"}},
		{"parallel of foreach adds", `steps:
  - {id: p, kind: parallel, branches: [
      {steps: [{id: a, kind: foreach, items: "input.a", concurrency: 60, steps: [{id: a1, kind: http, service: echo}]}]},
      {steps: [{id: b, kind: foreach, items: "input.b", concurrency: 60, steps: [{id: b1, kind: model, model: default, prompt: x}]}]}]}`, RunLimits{}, []string{
			"steps[0]: up to 120 calls at once (its branches together), more than the limit of 100 (max_concurrency)"}},
		{"the innermost product is named", `steps:
  - {id: s, kind: switch, cases: [{when: "input.x", steps: [
      {id: f, kind: foreach, items: "input.a", concurrency: 8, steps: [
        {id: g, kind: foreach, items: "item", concurrency: 8, steps: [` + call + `]}]}]}]}`, RunLimits{MaxConcurrency: 10}, []string{
			"steps[0].cases[0].steps[0]: up to 64 calls at once (concurrency 8 × 8 inside), more than the limit of 10 (max_concurrency)"}},
		{"constant items", `steps:
  - {id: each, kind: foreach, items: "0..1999", steps: [` + call + `]}
  - {id: few, kind: foreach, items: "[1, 2, 3]", steps: [{id: c2, kind: http, service: echo}]}`, RunLimits{}, []string{
			"steps: every run executes at least 2005 steps (each foreach item's steps counted), more than the limit of 2000 (max_step_executions)",
			"steps[0].items: 2000 items, more than the limit of 1000 (max_foreach_items)"}},
		{"executions of nested constant loops", `steps:
  - {id: a, kind: foreach, items: "1..100", steps: [
      {id: b, kind: foreach, items: "1..100", steps: [` + call + `]}]}`, RunLimits{}, []string{
			"steps: every run executes at least 10101 steps (each foreach item's steps counted), more than the limit of 10000 (max_step_executions)"}},
		{"input-dependent loops are left to the run", `steps:
  - {id: a, kind: foreach, items: "input.a", steps: [
      {id: b, kind: foreach, items: "1..1000", steps: [` + call + `]}]}`, RunLimits{}, nil},
		{"a when condition may skip", `steps:
  - {id: a, kind: foreach, items: "1..1000", when: "input.go", steps: [
      {id: b, kind: foreach, items: "1..1000", steps: [` + call + `]}]}`, RunLimits{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			limits := tc.limits
			if tc.name == "constant items" {
				limits.MaxStepExecutions = 2000
			}
			d, err := Parse([]byte(head + tc.steps))
			if err != nil {
				t.Fatal(err)
			}
			err = d.ValidateWithin(nil, limits)
			var got []string
			var ve *ValidationError
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					got = append(got, p.String())
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestRunLimitsProblemsAndDefaults(t *testing.T) {
	ps := RunLimits{MaxForeachItems: -1, MaxConcurrency: MaxConcurrencyCeiling + 1}.Problems("tenants.acme.limits")
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	want := []string{"tenants.acme.limits.max_foreach_items: must not be negative", "tenants.acme.limits.max_concurrency: must be at most 10000"}
	if !slices.Equal(got, want) {
		t.Errorf("problems %q", got)
	}
	l := RunLimits{MaxConcurrency: 7}.Or(RunLimits{MaxConcurrency: 9, MaxStepExecutions: 50}).Or(DefaultRunLimits())
	if l != (RunLimits{MaxForeachItems: DefaultMaxForeachItems, MaxStepExecutions: 50, MaxConcurrency: 7}) {
		t.Errorf("inherited %+v", l)
	}
}

func TestExprUsesEnv(t *testing.T) {
	for src, want := range map[string]bool{
		"1..10": false, "[1, 2]": false, "map(1..3, # * 2)": false, "let x = 3; 1..x": false,
		"input.a": true, "steps.a.output": true, "vars.x": true, "item.b": true, "index": true,
	} {
		info, err := CompileExpr(src)
		if err != nil {
			t.Fatal(err)
		}
		if info.UsesEnv != want {
			t.Errorf("%s: UsesEnv %v", src, info.UsesEnv)
		}
	}
}
