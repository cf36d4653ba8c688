package workflows

import (
	"fmt"
	"strconv"

	"github.com/gateflow/gateflow/workflows/definition"
)

// stepResult is what expressions see of a step that ran:
// steps.<id>.output and steps.<id>.state.
type stepResult struct {
	ID     string    `json:"id"`
	State  StepState `json:"state"`
	Output any       `json:"output,omitempty"`
}

// scope holds the step results visible to expressions. The root scope holds
// every step outside foreach bodies (parallel branches and switch arms write
// to the scope they are in, so their steps are visible by id afterwards);
// each foreach item gets a child scope with item, index and its own body
// results, which shadow outer ones.
type scope struct {
	parent *scope
	// prefix is prepended to step ids in the status ("fanout[3].").
	prefix  string
	hasItem bool
	item    any
	index   int
	// results in the order steps finished; byID indexes them.
	results []stepResult
	byID    map[string]int
}

func newScope(parent *scope, prefix string) *scope {
	return &scope{parent: parent, prefix: prefix, byID: map[string]int{}}
}

// itemScope is the scope of one foreach item.
func itemScope(parent *scope, foreachID string, index int, item any) *scope {
	sc := newScope(parent, parent.prefix+foreachID+"["+strconv.Itoa(index)+"].")
	sc.hasItem, sc.item, sc.index = true, item, index
	return sc
}

func (s *scope) set(id string, state StepState, output any) {
	if i, ok := s.byID[id]; ok {
		s.results[i] = stepResult{ID: id, State: state, Output: output}
		return
	}
	s.byID[id] = len(s.results)
	s.results = append(s.results, stepResult{ID: id, State: state, Output: output})
}

func (s *scope) get(id string) (stepResult, bool) {
	for sc := s; sc != nil; sc = sc.parent {
		if i, ok := sc.byID[id]; ok {
			return sc.results[i], true
		}
	}
	return stepResult{}, false
}

// outputs returns the outputs of the steps directly in this scope, by id:
// a foreach item's result.
func (s *scope) outputs() map[string]any {
	out := make(map[string]any, len(s.results))
	for _, r := range s.results {
		out[r.ID] = r.Output
	}
	return out
}

// env builds the expression environment seen from this scope.
func (s *scope) env(r *run) definition.Env {
	var chain []*scope
	for sc := s; sc != nil; sc = sc.parent {
		chain = append(chain, sc)
	}
	steps := map[string]any{}
	// Outermost first so that inner results shadow outer ones.
	for i := len(chain) - 1; i >= 0; i-- {
		for _, res := range chain[i].results {
			steps[res.ID] = map[string]any{"output": res.Output, "state": string(res.State)}
		}
	}
	env := definition.Env{
		definition.EnvInput: r.input,
		definition.EnvVars:  r.vars,
		definition.EnvSteps: steps,
	}
	for _, sc := range chain {
		if sc.hasItem {
			env[definition.EnvItem] = sc.item
			env[definition.EnvIndex] = sc.index
			break
		}
	}
	return env
}

// scopeSnapshot is what a compensation needs of the scope its step ran in
// (a foreach item's item, index and body results), in a form that survives
// continue-as-new.
type scopeSnapshot struct {
	Prefix  string       `json:"prefix,omitempty"`
	HasItem bool         `json:"has_item,omitempty"`
	Item    any          `json:"item,omitempty"`
	Index   int          `json:"index,omitempty"`
	Results []stepResult `json:"results,omitempty"`
}

// snapshot captures the non-root part of the scope chain.
func (s *scope) snapshot() scopeSnapshot {
	var chain []*scope
	for sc := s; sc != nil && sc.parent != nil; sc = sc.parent {
		chain = append(chain, sc)
	}
	snap := scopeSnapshot{Prefix: s.prefix}
	for i := len(chain) - 1; i >= 0; i-- {
		snap.Results = append(snap.Results, chain[i].results...)
	}
	for _, sc := range chain {
		if sc.hasItem {
			snap.HasItem, snap.Item, snap.Index = true, sc.item, sc.index
			break
		}
	}
	return snap
}

// fromSnapshot rebuilds a scope under root from a snapshot.
func fromSnapshot(root *scope, snap scopeSnapshot) *scope {
	if snap.Prefix == "" && !snap.HasItem && len(snap.Results) == 0 {
		return root
	}
	sc := newScope(root, snap.Prefix)
	sc.hasItem, sc.item, sc.index = snap.HasItem, snap.Item, snap.Index
	for _, r := range snap.Results {
		sc.set(r.ID, r.State, r.Output)
	}
	return sc
}

// normalize turns any value into its JSON form (maps, lists, float64,
// strings, booleans, nil), so that values look the same to expressions
// whether they were just computed or carried across continue-as-new.
func normalize(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := jsonMarshal(v)
	if err != nil {
		return nil, fmt.Errorf("value is not representable as JSON: %w", err)
	}
	var out any
	if err := jsonUnmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}
