package definition

import (
	"errors"
	"fmt"
)

// RunLimits bound the work one orchestration may cause, so that one
// tenant's definition cannot hold every worker: a foreach over a million
// items, foreach and parallel nested into thousands of calls at once, or
// chains of skipped steps that add no history event and keep a worker
// busy without end. Operators set them per tenant (gateflow.yaml,
// tenants.<name>.limits); unset (zero) limits take the "*" entry's, then
// the defaults.
//
// What can be known before a run is refused at validation
// (Definition.LimitProblems): the calls a definition can have in flight at
// once (always known: concurrency and branches are literal), foreach lists
// written as constants, and step counts every run must reach. The rest is
// checked by the interpreter while it runs, which fails the orchestration
// with a LimitExceeded error (and runs its compensations).
type RunLimits struct {
	// MaxForeachItems bounds the items of one foreach.
	MaxForeachItems int `json:"max_foreach_items,omitempty"`
	// MaxStepExecutions bounds the steps one orchestration executes, over
	// all its runs: every step reached counts once per execution, steps
	// skipped by their when condition and each foreach item's steps
	// included; compensations do not count.
	MaxStepExecutions int `json:"max_step_executions,omitempty"`
	// MaxConcurrency bounds the calls (http, model and mcp steps) one
	// orchestration has in flight at once.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
}

// Default run limits, and the ceilings an operator may raise them to.
const (
	DefaultMaxForeachItems   = 1000
	DefaultMaxStepExecutions = 10_000
	DefaultMaxConcurrency    = 100

	MaxForeachItemsCeiling   = 100_000
	MaxStepExecutionsCeiling = 1_000_000
	MaxConcurrencyCeiling    = 10_000
)

// DefaultRunLimits are the limits of a tenant that sets none.
func DefaultRunLimits() RunLimits {
	return RunLimits{
		MaxForeachItems:   DefaultMaxForeachItems,
		MaxStepExecutions: DefaultMaxStepExecutions,
		MaxConcurrency:    DefaultMaxConcurrency,
	}
}

// Or returns l with each unset (zero) limit taken from d.
func (l RunLimits) Or(d RunLimits) RunLimits {
	if l.MaxForeachItems <= 0 {
		l.MaxForeachItems = d.MaxForeachItems
	}
	if l.MaxStepExecutions <= 0 {
		l.MaxStepExecutions = d.MaxStepExecutions
	}
	if l.MaxConcurrency <= 0 {
		l.MaxConcurrency = d.MaxConcurrency
	}
	return l
}

// Problems reports negative limits and limits above their ceilings, at
// paths under path (a configuration file's "tenants.acme.limits").
func (l RunLimits) Problems(path string) []Problem {
	var ps []Problem
	check := func(name string, v, ceiling int) {
		switch {
		case v < 0:
			ps = append(ps, Problem{Path: joinPath(path, name), Message: "must not be negative"})
		case v > ceiling:
			ps = append(ps, Problem{Path: joinPath(path, name), Message: fmt.Sprintf("must be at most %d", ceiling)})
		}
	}
	check("max_foreach_items", l.MaxForeachItems, MaxForeachItemsCeiling)
	check("max_step_executions", l.MaxStepExecutions, MaxStepExecutionsCeiling)
	check("max_concurrency", l.MaxConcurrency, MaxConcurrencyCeiling)
	return ps
}

// ValidateWithin validates d (Validate) and checks it against the limits
// (LimitProblems; unset limits are the defaults), listing every problem in
// one *ValidationError.
func (d *Definition) ValidateWithin(cat Catalog, l RunLimits) error {
	err := d.Validate(cat)
	ps := d.LimitProblems(l)
	if len(ps) == 0 {
		return err
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		if err != nil {
			return err
		}
		ve = &ValidationError{Subject: "definition " + d.Ref()}
	}
	ve.Problems = sortProblems(append(ve.Problems, ps...))
	return ve
}

// LimitProblems reports what the limits (unset ones are the defaults)
// refuse before any run: a step that can have more calls in flight at
// once than MaxConcurrency (reported at the foreach or parallel whose
// product exceeds it), a foreach whose items are a constant list longer
// than MaxForeachItems, and a definition every successful run of which
// executes more than MaxStepExecutions steps. What depends on the input
// is checked at run time.
func (d *Definition) LimitProblems(l RunLimits) []Problem {
	l = l.Or(DefaultRunLimits())
	var ps []Problem
	ps = append(ps, concurrencyProblems(d.Steps, "steps", l.MaxConcurrency)...)
	d.Walk(func(path string, s *Step) bool {
		if s.Kind != KindForeach {
			return true
		}
		if n, ok := constantItems(s); ok && n > l.MaxForeachItems {
			ps = append(ps, Problem{Path: path + ".items", Message: fmt.Sprintf("%d items, more than the limit of %d (max_foreach_items)", n, l.MaxForeachItems)})
		}
		return true
	})
	if n := minExecutions(d.Steps); n > l.MaxStepExecutions {
		ps = append(ps, Problem{Path: "steps", Message: fmt.Sprintf(
			"every run executes at least %d steps (each foreach item's steps counted), more than the limit of %d (max_step_executions)", n, l.MaxStepExecutions)})
	}
	return ps
}

// saturate keeps the products and sums below overflow: anything this
// large is far past every limit.
const saturate = 1 << 40

func satAdd(a, b int) int { return min(a+b, saturate) }

func satMul(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if a > saturate/b {
		return saturate
	}
	return a * b
}

// CallConcurrency is the most calls (http, model and mcp steps) steps can
// have in flight at once: a call is one, a parallel the sum of its
// branches, a foreach its concurrency times its steps', a switch its
// widest arm, and a list of steps (which run one after the other) its
// widest step.
func CallConcurrency(steps []Step) int {
	n := 0
	for i := range steps {
		n = max(n, stepConcurrency(&steps[i]))
	}
	return n
}

func stepConcurrency(s *Step) int {
	switch s.Kind {
	case KindHTTP, KindModel, KindMCP:
		return 1
	case KindParallel:
		n := 0
		for b := range s.Branches {
			n = satAdd(n, CallConcurrency(s.Branches[b].Steps))
		}
		return n
	case KindForeach:
		return satMul(s.ForeachConcurrency(), CallConcurrency(s.Steps))
	case KindSwitch:
		n := CallConcurrency(s.Default)
		for c := range s.Cases {
			n = max(n, CallConcurrency(s.Cases[c].Steps))
		}
		return n
	}
	return 0
}

// concurrencyProblems reports the steps whose concurrency exceeds limit
// while that of every step list inside them does not: the foreach or
// parallel that multiplies or adds calls past the limit.
func concurrencyProblems(steps []Step, path string, limit int) []Problem {
	var ps []Problem
	for i := range steps {
		s := &steps[i]
		p := fmt.Sprintf("%s[%d]", path, i)
		n := stepConcurrency(s)
		if n <= limit {
			continue
		}
		k, ok := kindsByName[s.Kind]
		var arms []arm
		if ok && k.arms != nil {
			arms = k.arms(s)
		}
		var inner []Problem
		for _, a := range arms {
			inner = append(inner, concurrencyProblems(a.steps, p+a.path, limit)...)
		}
		if len(inner) > 0 {
			ps = append(ps, inner...)
			continue
		}
		what := "its branches together"
		if s.Kind == KindForeach {
			what = fmt.Sprintf("concurrency %d × %d inside", s.ForeachConcurrency(), CallConcurrency(s.Steps))
		}
		ps = append(ps, Problem{Path: p, Message: fmt.Sprintf("up to %d calls at once (%s), more than the limit of %d (max_concurrency)", n, what, limit)})
	}
	return ps
}

// constantItems returns the length of a foreach's items when they are a
// constant list (the expression uses neither input, steps, vars nor the
// enclosing item).
func constantItems(s *Step) (int, bool) {
	info, err := CompileExpr(s.Items)
	if err != nil || info.UsesEnv {
		return 0, false
	}
	items, err := EvalList(s.Items, Env{})
	if err != nil {
		return 0, false
	}
	return len(items), true
}

// minExecutions is how many steps every successful run executes at
// least: each step once, and what it nests when that must run (parallel
// branches, a foreach's steps per constant item, a switch's smallest arm);
// a step with a when condition counts alone, since it may be skipped.
func minExecutions(steps []Step) int {
	n := 0
	for i := range steps {
		n = satAdd(n, minStepExecutions(&steps[i]))
	}
	return n
}

func minStepExecutions(s *Step) int {
	if s.When != "" {
		return 1
	}
	n := 1
	switch s.Kind {
	case KindParallel:
		for b := range s.Branches {
			n = satAdd(n, minExecutions(s.Branches[b].Steps))
		}
	case KindForeach:
		if items, ok := constantItems(s); ok {
			n = satAdd(n, satMul(items, minExecutions(s.Steps)))
		}
	case KindSwitch:
		least := minExecutions(s.Default)
		if len(s.Default) == 0 {
			least = 0
		}
		for c := range s.Cases {
			least = min(least, minExecutions(s.Cases[c].Steps))
		}
		n = satAdd(n, least)
	}
	return n
}
