// Package definition parses and validates orchestration definitions: the
// declarative description of steps (HTTP calls, model calls, approvals,
// parallel branches, loops, conditions, timers) that the orchestration
// workflow interprets.
//
// Two kinds of expression appear in a definition, both in the expr language
// (github.com/expr-lang/expr) over the environment {input, steps, vars, item,
// index}:
//   - condition and list fields (when, items, until) hold a bare expression;
//   - template values (body, headers, query, output, vars, arguments, message
//     contents) are any YAML/JSON value whose strings may embed ${{ expr }}.
//     A string that is exactly one ${{ expr }} takes the expression's typed
//     value; otherwise the results are interpolated as text.
//
// A definition is immutable once published under its name and version.
package definition

import (
	"encoding/json"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
)

// Step kinds. The kinds that make calls are the call kinds of
// activities/calls, so that call records and steps use the same strings.
const (
	KindHTTP     = string(calls.KindHTTP)
	KindModel    = string(calls.KindModel)
	KindApproval = string(calls.KindApproval)
	KindMCP      = string(calls.KindMCP)
	KindParallel = "parallel"
	KindForeach  = "foreach"
	KindSwitch   = "switch"
	KindWait     = "wait"
	KindEvent    = "event"
)

// stepKinds describes every step kind, in documentation order; each entry
// is in its kind_*.go file. Parse, Validate and JSONSchema follow from it
// (see kinds.go).
var stepKinds = []*stepKind{&httpKind, &modelKind, &approvalKind, &parallelKind, &foreachKind, &switchKind, &waitKind, &mcpKind, &eventKind}

// Definition is one version of an orchestration.
type Definition struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	// InputSchema is a JSON Schema (draft 2020-12) the input must satisfy.
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
	// Vars are template values evaluated once at start, in key order, each
	// able to use input and the vars before it.
	Vars map[string]any `json:"vars,omitempty"`
	// Steps run in order; nested kinds hold their own step lists.
	Steps []Step `json:"steps"`
	// Output is a template value evaluated when every step has finished; it
	// becomes the orchestration's result.
	Output any `json:"output,omitempty"`
	// Timeout bounds the whole orchestration (Temporal execution timeout).
	Timeout Duration `json:"timeout,omitempty"`
}

// Ref returns "name@version", the way definitions are named in messages.
func (d *Definition) Ref() string { return d.Name + "@" + d.Version }

// Step is one unit of work. Which fields apply depends on Kind: the kind's
// entry in stepKinds (its kind_*.go file) lists them, and parsing and
// validation refuse the others.
type Step struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Name is a human label for UIs.
	Name string `json:"name,omitempty"`
	// When is a condition; when false the step is skipped.
	When string `json:"when,omitempty"`
	// Compensate runs, in reverse completion order, when the orchestration
	// fails or is cancelled after this step succeeded.
	Compensate *Step `json:"compensate,omitempty"`
	// Timeout bounds one attempt of a call step, or the wait of an approval.
	Timeout Duration `json:"timeout,omitempty"`
	// Retry applies to call steps (http, model, mcp).
	Retry *RetryPolicy `json:"retry,omitempty"`

	// http
	Service         string            `json:"service,omitempty"`
	URL             string            `json:"url,omitempty"`
	Method          string            `json:"method,omitempty"`
	Path            string            `json:"path,omitempty"`
	Headers         map[string]string `json:"headers,omitempty"`
	Query           map[string]string `json:"query,omitempty"`
	Body            any               `json:"body,omitempty"`
	SuccessStatuses []int             `json:"success_statuses,omitempty"`
	// Callback makes the step complete asynchronously (see Callback).
	Callback *Callback `json:"callback,omitempty"`

	// model
	Model          string         `json:"model,omitempty"`
	System         string         `json:"system,omitempty"`
	Prompt         string         `json:"prompt,omitempty"`
	Messages       []ModelMessage `json:"messages,omitempty"`
	MaxTokens      int            `json:"max_tokens,omitempty"`
	Temperature    *float64       `json:"temperature,omitempty"`
	ResponseFormat string         `json:"response_format,omitempty"` // "text" (default) or "json"

	// approval
	Approvers  *Approvers `json:"approvers,omitempty"`
	Quorum     int        `json:"quorum,omitempty"`
	OnTimeout  string     `json:"on_timeout,omitempty"`
	OnReject   string     `json:"on_reject,omitempty"` // OnRejectFail (default) or OnRejectContinue
	EscalateTo *Approvers `json:"escalate_to,omitempty"`
	// EscalationTimeout bounds the wait after escalation; when it passes too
	// the step is rejected.
	EscalationTimeout Duration `json:"escalation_timeout,omitempty"`
	// AllowSelfApproval lets the identity that submitted the orchestration
	// vote on this step; by default it may not (separation of duties).
	AllowSelfApproval bool `json:"allow_self_approval,omitempty"`

	// parallel
	Branches []Branch `json:"branches,omitempty"`

	// foreach: Items is an expression giving a list; Steps run once per
	// item (with `item` and `index` in scope), at most Concurrency at once.
	Items       string `json:"items,omitempty"`
	Concurrency int    `json:"concurrency,omitempty"`

	// foreach body (also used by nothing else)
	Steps []Step `json:"steps,omitempty"`

	// switch: the first case whose When is true runs; else Default.
	Cases   []Case `json:"cases,omitempty"`
	Default []Step `json:"default,omitempty"`

	// wait: either a Duration or an Until expression giving an RFC 3339
	// time or Unix milliseconds.
	Duration Duration `json:"duration,omitempty"`
	Until    string   `json:"until,omitempty"`

	// event: Event is the event name, Match the correlation key template.
	Event string `json:"event,omitempty"`
	Match string `json:"match,omitempty"`

	// mcp
	Server    string `json:"server,omitempty"`
	Tool      string `json:"tool,omitempty"`
	Arguments any    `json:"arguments,omitempty"`
}

// ModelMessage is one chat message of a model step; Content is a template.
type ModelMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Approvers names who may decide an approval step: any key holding one of
// Roles, or whose user is one of Users.
type Approvers struct {
	Roles []string `json:"roles,omitempty"`
	Users []string `json:"users,omitempty"`
}

// Branch is one arm of a parallel step.
type Branch struct {
	Name  string `json:"name"`
	Steps []Step `json:"steps"`
}

// Case is one arm of a switch step.
type Case struct {
	When  string `json:"when"`
	Steps []Step `json:"steps"`
}

// RetryPolicy maps onto Temporal's retry policy. MaxAttempts 1 means no
// retry. NonRetryableStatuses stop retries of http steps on those statuses;
// NonRetryableErrors stop retries on those error classes (see the activities
// package for the classes).
type RetryPolicy struct {
	MaxAttempts          int      `json:"max_attempts,omitempty"`
	InitialInterval      Duration `json:"initial_interval,omitempty"`
	BackoffCoefficient   float64  `json:"backoff_coefficient,omitempty"`
	MaxInterval          Duration `json:"max_interval,omitempty"`
	NonRetryableStatuses []int    `json:"non_retryable_statuses,omitempty"`
	NonRetryableErrors   []string `json:"non_retryable_errors,omitempty"`
}

// Duration is a Go duration string such as "1.5s" or "24h". It stays a
// string in the definition so that validation can report every bad value
// with its path instead of failing the decode at the first.
type Duration string

// Std returns the duration, or 0 when empty or invalid (validation has
// refused invalid values before anything runs).
func (d Duration) Std() time.Duration {
	if d == "" {
		return 0
	}
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return 0
	}
	return v
}
