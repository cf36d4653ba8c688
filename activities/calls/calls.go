// Package calls is the vocabulary of the calls Gateflow makes and records:
// their kinds and the classes of their errors, each declared once here.
//
// It imports nothing of Gateflow, so that the definition format
// (workflows/definition: step kinds, retry.non_retryable_errors), the
// activities and the model gateway that make the calls, and the call
// records (analytics/record) share one declaration although workflows/ and
// analytics/ may not import each other.
package calls

import "strings"

// Kind is what was called: the kind of a call record. The call step kinds
// of a definition (http, model, approval, mcp) are these strings too.
type Kind string

// Kinds of call.
const (
	// KindIngress is a request to the ingress API.
	KindIngress Kind = "ingress"
	// KindHTTP is an HTTP call to a service: an attempt of an http step.
	KindHTTP Kind = "http"
	// KindModel is a model call through the model gateway: an attempt of a
	// model step, or a request to the chat API.
	KindModel Kind = "model"
	// KindApproval is a decision on an approval step (or its timeout).
	KindApproval Kind = "approval"
	// KindMCP is a tool call to an MCP server: an attempt of an mcp step.
	KindMCP Kind = "mcp"
	// KindSchedule is a firing of a schedule: the orchestration it started
	// (target: the schedule; latency: how late it started).
	KindSchedule Kind = "schedule"
	// KindTopic is a message of a Kafka topic trigger: the orchestration it
	// started, or why it did not (filtered, duplicate, dead-lettered).
	KindTopic Kind = "topic"
	// KindWebhook is a delivery to a webhook (POST /v1/hooks/{name}).
	KindWebhook Kind = "webhook"
	// KindEvent is an event delivered to event steps (from the API, a
	// webhook or a topic trigger; target: the event name).
	KindEvent Kind = "event"
	// KindCallback is the asynchronous completion of an http step through
	// its callback URL (latency: from the call to the completion).
	KindCallback Kind = "callback"
	// KindProxy is a plain HTTP call forwarded by the gateway
	// (/gw/{api}/...) to an instance of a service, or answered from its
	// cache.
	KindProxy Kind = "proxy"
)

// Kinds returns every call kind, in documentation order.
func Kinds() []Kind {
	return []Kind{KindIngress, KindHTTP, KindModel, KindApproval, KindMCP, KindProxy, KindSchedule, KindTopic, KindWebhook, KindEvent, KindCallback}
}

// TriggerKinds are the kinds of the records that start or resume
// orchestrations from outside: schedules, topic messages, webhook
// deliveries and events. Their records carry the trigger's name in the
// "trigger" label (LabelTrigger), like every call of the orchestrations
// they start.
func TriggerKinds() []Kind {
	return []Kind{KindSchedule, KindTopic, KindWebhook, KindEvent}
}

// LabelTrigger is the record label naming what started an orchestration,
// as "<kind>:<name>" (e.g. "webhook:github-push", "schedule:nightly"): set
// on the trigger's own record and copied into every call record of the
// orchestrations it starts, so that analytics can group by trigger.
const LabelTrigger = "trigger"

// KindNames returns the call kinds as strings, in documentation order (for
// enums of API documents).
func KindNames() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, string(k))
	}
	return out
}

// Error classes: the Type of the Temporal application errors call
// activities fail with (so that a step's retry.non_retryable_errors can
// name them), and the error_class of call records. Classes describes each.
const (
	ClassTimeout          = "timeout"
	ClassConnection       = "connection"
	ClassStatus           = "status"
	ClassTooLarge         = "too_large"
	ClassBadRequest       = "bad_request"
	ClassAuth             = "auth"
	ClassRateLimit        = "rate_limit"
	ClassOverloaded       = "overloaded"
	ClassContextTooLong   = "context_too_long"
	ClassBudgetExceeded   = "budget_exceeded"
	ClassNotAllowed       = "not_allowed"
	ClassInternal         = "internal"
	ClassModelUnavailable = "model_unavailable"
	ClassBadOutput        = "bad_output"
	ClassToolError        = "tool_error"
	ClassCancelled        = "cancelled"
	ClassCallback         = "callback"
)

// Class describes one error class.
type Class struct {
	Name string
	// Retryable says whether retrying the same call may succeed. It is the
	// default: the model activity follows it; the http and mcp activities
	// decide per error (a status listed in non_retryable_statuses, or a
	// configuration problem reported as internal, is not retried).
	Retryable bool
	// RecordOnly classes are only written to call records: no step fails
	// with them, so a retry policy cannot name them.
	RecordOnly bool
	// Doc says when the class is used.
	Doc string
}

var classes = []Class{
	{Name: ClassTimeout, Retryable: true, Doc: "the attempt's deadline passed"},
	{Name: ClassConnection, Retryable: true, Doc: "could not connect, connection reset, stream cut"},
	{Name: ClassStatus, Retryable: true, Doc: "unexpected HTTP status (for a model: another 5xx, or a malformed provider answer)"},
	{Name: ClassTooLarge, Doc: "answer above the size cap"},
	{Name: ClassBadRequest, Doc: "the request itself is invalid"},
	{Name: ClassAuth, Doc: "credential missing or refused"},
	{Name: ClassRateLimit, Retryable: true, Doc: "429 from the target"},
	{Name: ClassOverloaded, Retryable: true, Doc: "503 or 529 from the target"},
	{Name: ClassContextTooLong, Doc: "prompt and completion above the model's context window"},
	{Name: ClassBudgetExceeded, Doc: "the tenant's token budget is spent"},
	{Name: ClassNotAllowed, Doc: "URL host not in the tenant's allow-list, or a redirect refused"},
	{Name: ClassInternal, Retryable: true, Doc: "gateway- or worker-side failure (e.g. the budget store unreadable)"},
	{Name: ClassModelUnavailable, Doc: "the provider does not serve the model, on any target of the alias"},
	{Name: ClassBadOutput, Retryable: true, Doc: "a model answer that is not the JSON the step asked for (another sample usually is)"},
	{Name: ClassToolError, RecordOnly: true, Doc: "the MCP tool reported its call as failed; the step succeeds with is_error true"},
	{Name: ClassCancelled, RecordOnly: true, Doc: "the attempt was cancelled"},
	{Name: ClassCallback, Doc: "the service completed an asynchronous http step (callback) with an error; retried only when it said retryable"},
}

// Classes returns every error class, in documentation order.
func Classes() []Class {
	return append([]Class(nil), classes...)
}

// StepClasses returns the names of the classes a step can fail with, in
// documentation order: what a retry policy may list in
// non_retryable_errors.
func StepClasses() []string {
	var out []string
	for _, c := range classes {
		if !c.RecordOnly {
			out = append(out, c.Name)
		}
	}
	return out
}

// Retryable reports whether errors of class may succeed when the same call
// is retried; false for unknown classes.
func Retryable(class string) bool {
	for _, c := range classes {
		if c.Name == class {
			return c.Retryable
		}
	}
	return false
}

// Identity headers the gateway adds to every call it makes to a service, so
// that services can trust who the call is for: no step, client or proxied
// request may set a header with ReservedHeaderPrefix, and the gateway
// strips any such header it receives before forwarding.
const (
	// ReservedHeaderPrefix starts every header only the gateway sets.
	ReservedHeaderPrefix = "Gateflow-"
	// HeaderTenant names the tenant the call is made for.
	HeaderTenant = "Gateflow-Tenant"
	// HeaderUser names the user behind the call, when the caller's key has
	// one.
	HeaderUser = "Gateflow-User"
)

// IsReservedHeader reports whether name (any case) is a header only the
// gateway sets.
func IsReservedHeader(name string) bool {
	return len(name) >= len(ReservedHeaderPrefix) && strings.EqualFold(name[:len(ReservedHeaderPrefix)], ReservedHeaderPrefix)
}
