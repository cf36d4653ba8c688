package definition

import (
	"reflect"
	"strings"
)

// This file holds the machinery of the step kind table (stepKinds, in
// definition.go): each kind is described once, in its own kind_*.go file,
// and parsing (the fields a step of that kind accepts), validation (its
// checks and the step lists it nests) and the JSON Schema follow from the
// entry. Adding a kind means adding its fields to Step, a constant and a
// line to stepKinds, and a kind_*.go file; TestStepKindsCoverStep fails
// when a Step field belongs to no kind or a kind names a field Step lacks.

// stepKind describes one step kind.
type stepKind struct {
	// name is the value of the step's kind field.
	name string
	// fields are what the kind accepts besides stepCommonFields. A field
	// several kinds accept is one variable each lists (timeoutField,
	// retryField), so that it has one description.
	fields []field
	// required are the fields the JSON Schema requires of the kind, and
	// oneOf fields of which it requires exactly one. check reports them
	// too, in its own words.
	required []string
	oneOf    []string
	// compensation says whether a compensate step may be of this kind.
	compensation bool
	// check reports what is wrong with a step of this kind (at paths under
	// path), apart from what every step is checked for and from the steps
	// it nests, which arms returns.
	check func(v *validator, s *Step, path string, ctx exprCtx)
	// arms returns the step lists a container kind nests, nil for others.
	arms func(s *Step) []arm
	// perItem says that the arms run once per item, with item and index in
	// scope, and that their steps are not visible after the step. Otherwise
	// every arm's steps are visible after it (those of an arm not taken
	// are null, which expressions handle with ?. and ??).
	perItem bool
}

// arm is one list of steps nested in a container step.
type arm struct {
	// path follows the container's path, e.g. ".branches[0].steps".
	path string
	// index is the branch or case index, -1 for a switch default.
	index int
	steps []Step
}

// stepCommonFields are the fields every step kind accepts.
var stepCommonFields = []field{
	{name: "id", typ: tString, required: true, desc: "Unique id, used as steps.<id> in expressions."},
	{name: "kind", typ: tString, required: true, enum: Kinds},
	{name: "name", typ: tString, desc: "Human label."},
	{name: "when", typ: tExpr, desc: "Condition; the step is skipped when false."},
	{name: "compensate", typ: tStep, desc: "Step run, in reverse completion order, when the orchestration fails or is cancelled after this step succeeded."},
}

// Fields several kinds accept.
var (
	timeoutField = field{name: "timeout", typ: tDuration, desc: "Bound of one attempt of a call step, or of an approval's wait."}
	retryField   = field{name: "retry", typ: tObject, obj: retrySpec}
)

// Kinds lists every step kind, in documentation order.
var Kinds = kindNames(func(k *stepKind) bool { return true })

// CompensationKinds are the kinds a compensate step may have.
var CompensationKinds = kindNames(func(k *stepKind) bool { return k.compensation })

func kindNames(keep func(*stepKind) bool) []string {
	var out []string
	for _, k := range stepKinds {
		if keep(k) {
			out = append(out, k.name)
		}
	}
	return out
}

// kindRules is a kind with the set of fields a step of it accepts.
type kindRules struct {
	*stepKind
	allowed map[string]bool
}

// kindsByName indexes stepKinds by name.
var kindsByName = indexKinds()

func indexKinds() map[string]kindRules {
	m := make(map[string]kindRules, len(stepKinds))
	for _, k := range stepKinds {
		set := make(map[string]bool, len(stepCommonFields)+len(k.fields))
		for _, f := range stepCommonFields {
			set[f.name] = true
		}
		for _, f := range k.fields {
			set[f.name] = true
		}
		m[k.name] = kindRules{stepKind: k, allowed: set}
	}
	return m
}

// stepSpec is the step object of the format: the common fields, then the
// fields several kinds share, then each kind's own, in table order (the
// order "did you mean" suggestions are tried in).
var stepSpec = &objectSpec{
	name:   "step",
	desc:   "One unit of work; which fields apply depends on kind.",
	fields: stepFieldsOfKinds(),
}

func stepFieldsOfKinds() []field {
	uses := map[string]int{}
	for _, k := range stepKinds {
		for _, f := range k.fields {
			uses[f.name]++
		}
	}
	out := append([]field(nil), stepCommonFields...)
	seen := map[string]bool{}
	add := func(shared bool) {
		for _, k := range stepKinds {
			for _, f := range k.fields {
				if !seen[f.name] && (uses[f.name] > 1) == shared {
					seen[f.name] = true
					out = append(out, f)
				}
			}
		}
	}
	add(true)
	add(false)
	return out
}

// kindArm is an arm with the kind whose field holds it.
type kindArm struct {
	arm
	kind string
}

// everyArm returns the step lists s nests in the fields of any kind, in
// table order. Walk and the id index use it, so that steps nested in a
// field the kind does not allow are still indexed (validation reports the
// field).
func everyArm(s *Step) []kindArm {
	var out []kindArm
	for _, k := range stepKinds {
		if k.arms == nil {
			continue
		}
		for _, a := range k.arms(s) {
			out = append(out, kindArm{arm: a, kind: k.name})
		}
	}
	return out
}

// stepField is one JSON field of Step, found by reflection.
type stepField struct {
	name  string
	index int
}

// stepFields lists Step's JSON fields in declaration order.
var stepFields = jsonFields(reflect.TypeFor[Step]())

func jsonFields(t reflect.Type) []stepField {
	var out []stepField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		out = append(out, stepField{name: name, index: i})
	}
	return out
}

// set reports whether the field of s holds a value: a non-empty list or
// map, or any other non-zero value.
func (f stepField) set(s *Step) bool {
	v := reflect.ValueOf(s).Elem().Field(f.index)
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() > 0
	}
	return !v.IsZero()
}
