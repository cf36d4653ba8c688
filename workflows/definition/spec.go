package definition

// This file describes the definition format once, as data: Parse checks
// documents against it (unknown fields, fields that do not belong to a step
// kind, types and bounds, each with its path) and JSONSchema generates
// docs/definition.schema.json from it, so the two cannot drift.

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
	// MaxForeachConcurrency bounds foreach concurrency.
	MaxForeachConcurrency = 100
	// DefaultForeachConcurrency is used when a foreach sets none.
	DefaultForeachConcurrency = 1
)

// ErrorClasses are the error classes a retry policy may list in
// non_retryable_errors (the activities package's ErrClass* values).
var ErrorClasses = []string{
	"timeout", "connection", "status", "too_large", "bad_request", "auth",
	"rate_limit", "overloaded", "context_too_long", "budget_exceeded", "not_allowed", "internal",
}

// HTTPMethods are the methods an http step may use.
var HTTPMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// ModelRoles are the roles of model step messages.
var ModelRoles = []string{"system", "user", "assistant"}

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

var approversSpec = &objectSpec{
	name: "approvers",
	desc: "Who may decide: any key holding one of roles, or whose user is one of users.",
	fields: []field{
		{name: "roles", typ: tList, elem: &field{typ: tString}},
		{name: "users", typ: tList, elem: &field{typ: tString}},
	},
}

var messageSpec = &objectSpec{
	name: "message",
	desc: "One chat message of a model step.",
	fields: []field{
		{name: "role", typ: tString, enum: ModelRoles, required: true},
		{name: "content", typ: tTemplateString, required: true},
	},
}

var branchSpec = &objectSpec{
	name: "branch",
	desc: "One arm of a parallel step.",
	fields: []field{
		{name: "name", typ: tString},
		{name: "steps", typ: tStepList, required: true, minItems: 1},
	},
}

var caseSpec = &objectSpec{
	name: "case",
	desc: "One arm of a switch step: runs when its condition is the first to be true.",
	fields: []field{
		{name: "when", typ: tExpr, required: true},
		{name: "steps", typ: tStepList, required: true, minItems: 1},
	},
}

// stepSpec lists every step field; stepCommon and kindFields say which
// apply to which kind.
var stepSpec = &objectSpec{
	name: "step",
	desc: "One unit of work; which fields apply depends on kind.",
	fields: []field{
		{name: "id", typ: tString, required: true, desc: "Unique id, used as steps.<id> in expressions."},
		{name: "kind", typ: tString, required: true, enum: Kinds},
		{name: "name", typ: tString, desc: "Human label."},
		{name: "when", typ: tExpr, desc: "Condition; the step is skipped when false."},
		{name: "compensate", typ: tStep, desc: "Step run, in reverse completion order, when the orchestration fails or is cancelled after this step succeeded."},
		{name: "timeout", typ: tDuration, desc: "Bound of one attempt of a call step, or of an approval's wait."},
		{name: "retry", typ: tObject, obj: retrySpec},
		// http
		{name: "service", typ: tName, desc: "Registered service name."},
		{name: "url", typ: tTemplateString, desc: "Absolute http(s) URL, when the tenant allows URLs."},
		{name: "method", typ: tString, enum: HTTPMethods, desc: "Default GET."},
		{name: "path", typ: tTemplateString, desc: "Path appended to the service's base URL."},
		{name: "headers", typ: tTemplateMap},
		{name: "query", typ: tTemplateMap},
		{name: "body", typ: tTemplate, desc: "JSON body."},
		{name: "success_statuses", typ: tList, elem: &statusBounds, desc: "Statuses that count as success; default 2xx."},
		// model
		{name: "model", typ: tName, desc: "\"provider/model\" or an alias from the model registry."},
		{name: "system", typ: tTemplateString},
		{name: "prompt", typ: tTemplateString, desc: "User message (or use messages)."},
		{name: "messages", typ: tList, elem: &field{typ: tObject, obj: messageSpec}},
		{name: "max_tokens", typ: tInt, min: num(1), max: num(10_000_000)},
		{name: "temperature", typ: tNumber, min: num(0), max: num(2)},
		{name: "response_format", typ: tString, enum: []string{"text", "json"}},
		// approval
		{name: "approvers", typ: tObject, obj: approversSpec},
		{name: "quorum", typ: tInt, min: num(1), max: num(1000), desc: "Approvals needed; default 1."},
		{name: "on_timeout", typ: tString, enum: []string{OnTimeoutReject, OnTimeoutApprove, OnTimeoutEscalate}},
		{name: "on_reject", typ: tString, enum: []string{OnRejectFail, OnRejectContinue},
			desc: "fail (default): a rejection fails the orchestration and runs compensations; continue: the step succeeds with decision \"rejected\" and later steps branch on steps.<id>.output.decision."},
		{name: "escalate_to", typ: tObject, obj: approversSpec},
		{name: "escalation_timeout", typ: tDuration},
		// parallel
		{name: "branches", typ: tList, elem: &field{typ: tObject, obj: branchSpec}, minItems: 1},
		// foreach
		{name: "items", typ: tExpr, desc: "Expression giving the list to iterate."},
		{name: "concurrency", typ: tInt, min: num(1), max: num(MaxForeachConcurrency), desc: "Items run at once; default 1."},
		{name: "steps", typ: tStepList, minItems: 1},
		// switch
		{name: "cases", typ: tList, elem: &field{typ: tObject, obj: caseSpec}, minItems: 1},
		{name: "default", typ: tStepList},
		// wait
		{name: "duration", typ: tDuration},
		{name: "until", typ: tExpr, desc: "Expression giving an RFC 3339 time or Unix milliseconds."},
		// mcp
		{name: "server", typ: tName, desc: "Registered MCP server name."},
		{name: "tool", typ: tName},
		{name: "arguments", typ: tTemplate},
	},
}

// stepCommon are the fields every step kind accepts.
var stepCommon = []string{"id", "kind", "name", "when", "compensate"}

// kindFields are the fields each kind accepts besides stepCommon.
var kindFields = map[string][]string{
	KindHTTP:     {"service", "url", "method", "path", "headers", "query", "body", "success_statuses", "timeout", "retry"},
	KindModel:    {"model", "system", "prompt", "messages", "max_tokens", "temperature", "response_format", "timeout", "retry"},
	KindApproval: {"approvers", "quorum", "on_timeout", "on_reject", "escalate_to", "escalation_timeout", "timeout"},
	KindParallel: {"branches"},
	KindForeach:  {"items", "concurrency", "steps"},
	KindSwitch:   {"cases", "default"},
	KindWait:     {"duration", "until"},
	KindMCP:      {"server", "tool", "arguments", "timeout", "retry"},
}

// CompensationKinds are the kinds a compensate step may have.
var CompensationKinds = []string{KindHTTP, KindModel, KindMCP}

var kindAllows = func() map[string]map[string]bool {
	m := make(map[string]map[string]bool, len(kindFields))
	for k, fs := range kindFields {
		set := make(map[string]bool, len(fs)+len(stepCommon))
		for _, f := range stepCommon {
			set[f] = true
		}
		for _, f := range fs {
			set[f] = true
		}
		m[k] = set
	}
	return m
}()

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
