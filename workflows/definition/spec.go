package definition

import "github.com/gateflow/gateflow/activities/calls"

// This file describes the definition format once, as data: Parse checks
// documents against it (unknown fields, fields that do not belong to a step
// kind, types and bounds, each with its path) and JSONSchema generates
// docs/definition.schema.json from it, so the two cannot drift. The step
// object is described by the step kind table (kinds.go and kind_*.go).

// valueType is the JSON shape a field accepts.
type valueType int

const (
	tString         valueType = iota // plain string
	tName                            // a literal name (service, model, ...): no templates
	tTemplateString                  // string that may embed ${{ expr }}
	tExpr                            // bare expression string
	tDuration                        // Go duration string
	tInt                             // integer
	tNumber                          // number
	tBool                            // true or false
	tTemplate                        // any JSON value; strings may embed ${{ expr }}
	tTemplateMap                     // object of template strings
	tValueMap                        // object of template values
	tSchema                          // a JSON Schema (object or boolean)
	tObject                          // nested object (obj)
	tList                            // list of elem
	tStep                            // one step
	tStepList                        // list of steps
)

// field is one property of an object of the format.
type field struct {
	name string
	typ  valueType
	desc string
	// obj describes a tObject; elem the elements of a tList.
	obj  *objectSpec
	elem *field
	// enum restricts string values; min/max bound numbers (and list
	// elements of numbers).
	enum     []string
	min, max *float64
	// minItems bounds lists.
	minItems int
	required bool
}

// objectSpec is an object of the format with a closed set of fields.
type objectSpec struct {
	name   string // $defs name in the JSON Schema
	desc   string
	fields []field
}

func (o *objectSpec) field(name string) (*field, bool) {
	for i := range o.fields {
		if o.fields[i].name == name {
			return &o.fields[i], true
		}
	}
	return nil, false
}

func num(v float64) *float64 { return &v }

// Bounds enforced by validation.
const (
	// MaxDefinitionBytes bounds a definition document.
	MaxDefinitionBytes = 1 << 20
	// MaxDefinitionNodes bounds the values of a parsed document, counting
	// every expansion of a YAML alias (so anchors cannot multiply it).
	MaxDefinitionNodes = 100_000
	// MaxDefinitionDepth bounds the nesting of a document.
	MaxDefinitionDepth = 64
	// MaxSteps bounds the steps of a definition, nested ones included.
	MaxSteps = 1000
	// MaxRetryAttempts bounds retry.max_attempts.
	MaxRetryAttempts = 100
)

// ErrorClasses are the error classes a retry policy may list in
// non_retryable_errors: those a step can fail with (activities/calls).
var ErrorClasses = calls.StepClasses()

var statusBounds = field{typ: tInt, min: num(100), max: num(599)}

var retrySpec = &objectSpec{
	name: "retry",
	desc: "Retry policy of a call step (maps onto Temporal's retry policy).",
	fields: []field{
		{name: "max_attempts", typ: tInt, min: num(1), max: num(MaxRetryAttempts), desc: "Attempts in total; 1 means no retry."},
		{name: "initial_interval", typ: tDuration, desc: "Wait before the first retry, e.g. \"1s\"."},
		{name: "backoff_coefficient", typ: tNumber, min: num(1), max: num(100), desc: "Multiplier of the wait after each retry."},
		{name: "max_interval", typ: tDuration, desc: "Upper bound of the wait between retries."},
		{name: "non_retryable_statuses", typ: tList, elem: &statusBounds, desc: "HTTP statuses that fail the step at once."},
		{name: "non_retryable_errors", typ: tList, elem: &field{typ: tString, enum: ErrorClasses}, desc: "Error classes that fail the step at once."},
	},
}

var definitionSpec = &objectSpec{
	name: "definition",
	desc: "A Gateflow orchestration definition.",
	fields: []field{
		{name: "name", typ: tString, required: true, desc: "Definition name: letters, digits, '.', '_', '-'."},
		{name: "version", typ: tString, required: true, desc: "Version; published versions never change."},
		{name: "description", typ: tString},
		{name: "input_schema", typ: tSchema, desc: "JSON Schema (2020-12) the input must satisfy."},
		{name: "vars", typ: tValueMap, desc: "Template values evaluated once at start, in key order."},
		{name: "steps", typ: tStepList, required: true, minItems: 1},
		{name: "output", typ: tTemplate, desc: "Template value giving the orchestration's result."},
		{name: "timeout", typ: tDuration, desc: "Bound of the whole orchestration."},
	},
}
