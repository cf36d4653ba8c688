// Package activities holds the Temporal activities of Gateflow: the calls
// themselves (HTTP microservices, AI models, MCP tools) and the recording of
// approval decisions. Every attempt produces one call record.
//
// This file is the contract with the orchestration workflow: activity names
// and the types that cross the activity boundary. Add fields; never rename.
// The error classes activities fail with (the Type of their application
// errors) are declared in activities/calls.
package activities

import (
	"encoding/json"
	"time"

	"github.com/gateflow/gateflow/activities/llm"
)

// Activity names registered with Temporal.
const (
	HTTPCallActivity       = "gateflow.HTTPCall"
	ModelCallActivity      = "gateflow.ModelCall"
	MCPCallActivity        = "gateflow.MCPCall"
	RecordApprovalActivity = "gateflow.RecordApproval"
)

// RunMeta identifies the orchestration a call belongs to and who started
// it; it is copied into every call record.
type RunMeta struct {
	Tenant      string            `json:"tenant"`
	KeyID       string            `json:"key_id,omitempty"`
	SubmittedBy string            `json:"submitted_by,omitempty"`
	RequestID   string            `json:"request_id,omitempty"`
	Definition  string            `json:"definition,omitempty"`
	Version     string            `json:"version,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// StepRef names the step a call is made for ("fanout[3].charge" inside a
// foreach).
type StepRef struct {
	Meta   RunMeta `json:"meta"`
	StepID string  `json:"step_id"`
}

// HTTPCallInput is one HTTP microservice call, with templates already
// evaluated by the workflow.
type HTTPCallInput struct {
	StepRef
	// Service is the registry name; URL is used instead when Service is
	// empty (allowed hosts are checked by the activity).
	Service string            `json:"service,omitempty"`
	URL     string            `json:"url,omitempty"`
	Method  string            `json:"method"`
	Path    string            `json:"path,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Query   map[string]string `json:"query,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
	// Timeout of one attempt; zero means the service's default.
	Timeout time.Duration `json:"timeout,omitempty"`
	// SuccessStatuses count as success; empty means 2xx.
	SuccessStatuses []int `json:"success_statuses,omitempty"`
	// NonRetryableStatuses fail the step at once.
	NonRetryableStatuses []int `json:"non_retryable_statuses,omitempty"`
	// Callback, when set, makes the call asynchronous: the service gets a
	// callback URL and the step completes when it posts the result.
	Callback *CallbackRequest `json:"callback,omitempty"`
	// gateway holds the headers the activity itself adds for this attempt
	// (the callback URL): reserved names a step may not set, so they are
	// kept apart from Headers; never part of the workflow's input.
	gateway map[string]string
}

// CallbackRequest asks the HTTP activity for asynchronous completion.
type CallbackRequest struct {
	// TTL is how long the callback URL is valid (the step's
	// callback.timeout).
	TTL time.Duration `json:"ttl"`
	// BodyField, when set, puts the URL into that field of the JSON body.
	BodyField string `json:"body_field,omitempty"`
}

// HTTPCallOutput is an HTTP step's output: `steps.<id>.output`.
type HTTPCallOutput struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the decoded JSON body, or the body as a string when it is
	// not JSON.
	Body any `json:"body,omitempty"`
	// Attempt is the activity attempt that produced this output. The
	// workflow reads it for the status query and removes it from the step
	// output.
	Attempt int32 `json:"attempt,omitempty"`
}

// ModelCallInput is one model call in the unified format.
type ModelCallInput struct {
	StepRef
	Request llm.ChatRequest `json:"request"`
	Timeout time.Duration   `json:"timeout,omitempty"`
}

// ModelCallOutput is a model step's output.
type ModelCallOutput struct {
	Content string `json:"content"`
	// JSON is Content decoded, when the step asked for JSON.
	JSON         any            `json:"json,omitempty"`
	ToolCalls    []llm.ToolCall `json:"tool_calls,omitempty"`
	FinishReason string         `json:"finish_reason,omitempty"`
	Model        string         `json:"model"`
	Usage        llm.Usage      `json:"usage"`
	CostUSD      float64        `json:"cost_usd"`
	// Attempt is the activity attempt that produced this output
	// (activity.GetInfo(ctx).Attempt). The workflow reads it for the status
	// query and removes it from the step output.
	Attempt int32 `json:"attempt,omitempty"`
}

// MCPCallInput calls a tool of a registered MCP server.
type MCPCallInput struct {
	StepRef
	Server    string          `json:"server"`
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Timeout   time.Duration   `json:"timeout,omitempty"`
}

// MCPCallOutput is an mcp step's output.
type MCPCallOutput struct {
	// Content is the text of the tool result's content items, joined.
	Content string `json:"content"`
	// Structured is the tool's structured result, when it returned one.
	Structured any  `json:"structured,omitempty"`
	IsError    bool `json:"is_error,omitempty"`
	// Attempt is the activity attempt that produced this output
	// (activity.GetInfo(ctx).Attempt). The workflow reads it for the status
	// query and removes it from the step output.
	Attempt int32 `json:"attempt,omitempty"`
}

// CallErrorDetails is attached as the details of the application errors
// call activities return, so that the workflow can report the attempt that
// failed (and the HTTP status, when there was one) without parsing messages.
type CallErrorDetails struct {
	Attempt    int32 `json:"attempt"`
	StatusCode int   `json:"status_code,omitempty"`
}

// ApprovalRecord is one accepted approval decision (or a timeout), recorded
// by the workflow through RecordApprovalActivity.
type ApprovalRecord struct {
	StepRef
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// Decision is "approve", "reject", or "timeout".
	Decision string   `json:"decision"`
	KeyID    string   `json:"key_id,omitempty"`
	User     string   `json:"user,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	// WaitingSince is when the step started waiting; DecidedAt when this
	// vote arrived. Their difference is the approval turnaround.
	WaitingSince time.Time `json:"waiting_since"`
	DecidedAt    time.Time `json:"decided_at"`
}

// CallbackTicket is what the HTTP activity knows of an attempt that asks
// for asynchronous completion; a CallbackIssuer turns it into a URL.
type CallbackTicket struct {
	Tenant     string
	WorkflowID string
	StepID     string
	Target     string
	Attempt    int32
	// TaskToken is Temporal's token of the attempt.
	TaskToken []byte
	TTL       time.Duration
	// Trigger is the run's trigger label (calls.LabelTrigger), carried to
	// the completion's call record.
	Trigger string
}

// CallbackIssuer issues the one-time callback URL of an attempt
// (activities/callback implements it from the configuration).
type CallbackIssuer interface {
	Issue(t CallbackTicket) (url string, expires time.Time, err error)
}

// Headers of an asynchronous http call: where and until when the service
// completes it.
const (
	HeaderCallbackURL     = "Gateflow-Callback-Url"
	HeaderCallbackExpires = "Gateflow-Callback-Expires"
)
