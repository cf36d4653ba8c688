// Package wire holds the JSON types that cross Gateflow's boundaries for
// orchestrations: the status query's answer and the decisions sent to a
// running orchestration (part of the contract with running workflows: add
// fields, never rename or remove), and the REST API's answers about runs,
// approvals and definitions. It imports no Temporal package and no server
// code, so the Go client (ingress/client) and other programs read the API
// with these types without linking the Temporal SDK or a database driver.
package wire

import (
	"encoding/json"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
)

// StepState is the lifecycle state of one step.
type StepState string

// Step states reported by the status query.
const (
	StepPending         StepState = "pending"
	StepRunning         StepState = "running"
	StepWaitingApproval StepState = "waiting-approval"
	StepWaitingEvent    StepState = "waiting-event"
	StepSucceeded       StepState = "succeeded"
	StepFailed          StepState = "failed"
	StepSkipped         StepState = "skipped"
	StepCompensated     StepState = "compensated"
)

// RunState is the lifecycle state of a whole orchestration.
type RunState string

// Orchestration states.
const (
	RunRunning     RunState = "running"
	RunSucceeded   RunState = "succeeded"
	RunFailed      RunState = "failed"
	RunCancelled   RunState = "cancelled"
	RunTerminated  RunState = "terminated"
	RunTimedOut    RunState = "timed-out"
	RunCompensated RunState = "compensated"
)

// Status is what the status query returns: the state of every step and the
// approvals waiting for a decision.
type Status struct {
	Definition string            `json:"definition"`
	Version    string            `json:"version"`
	Tenant     string            `json:"tenant"`
	State      RunState          `json:"state"`
	StartedAt  time.Time         `json:"started_at"`
	ClosedAt   *time.Time        `json:"closed_at,omitempty"`
	Steps      []StepStatus      `json:"steps"`
	Pending    []PendingApproval `json:"pending_approvals,omitempty"`
	// Events are the event steps waiting for an event now.
	Events []PendingEvent  `json:"pending_events,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
	// Seq increases with every change, so watchers can detect changes cheaply.
	Seq int64 `json:"seq"`
}

// StepStatus is the state of one step (for foreach, one entry per item with
// an id such as "fanout[3].charge").
type StepStatus struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	State      StepState       `json:"state"`
	Attempts   int32           `json:"attempts,omitempty"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Output     json.RawMessage `json:"output,omitempty"`
	// OutputTruncated is true when Output was cut to the status size cap.
	OutputTruncated bool   `json:"output_truncated,omitempty"`
	Error           string `json:"error,omitempty"`
}

// Approvers names who may decide an approval step.
type Approvers = definition.Approvers

// PendingApproval is an approval step waiting for decisions.
type PendingApproval struct {
	StepID    string     `json:"step_id"`
	Approvers Approvers  `json:"approvers"`
	Quorum    int        `json:"quorum"`
	Votes     []Vote     `json:"votes,omitempty"`
	Since     time.Time  `json:"since"`
	Deadline  *time.Time `json:"deadline,omitempty"`
	Escalated bool       `json:"escalated,omitempty"`
	// AllowSelfApproval is the step's allow_self_approval: whether the
	// identity that submitted the orchestration may vote on it.
	AllowSelfApproval bool `json:"allow_self_approval,omitempty"`
}

// PendingEvent is an event step waiting for its event: POST /v1/events
// with this name and key (or a webhook or topic trigger producing it)
// resumes it.
type PendingEvent struct {
	StepID   string     `json:"step_id"`
	Event    string     `json:"event"`
	Key      string     `json:"key"`
	Since    time.Time  `json:"since"`
	Deadline *time.Time `json:"deadline,omitempty"`
}

// Identity is the caller behind a decision, as authenticated by the ingress.
type Identity struct {
	KeyID string   `json:"key_id"`
	User  string   `json:"user,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// Decision is an approver's vote on an approval step, sent as the DecideUpdate
// or the DecisionSignal.
type Decision struct {
	StepID   string   `json:"step_id"`
	Decision string   `json:"decision"` // "approve" or "reject"
	Comment  string   `json:"comment,omitempty"`
	By       Identity `json:"by"`
	// RequestID ties the decision to the ingress request for tracing.
	RequestID string `json:"request_id,omitempty"`
}

// Decision values.
const (
	Approve = "approve"
	Reject  = "reject"
)

// Vote is a decision recorded by an approval step.
type Vote struct {
	By       Identity  `json:"by"`
	Decision string    `json:"decision"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// DecisionResult answers a DecideUpdate.
type DecisionResult struct {
	StepID string `json:"step_id"`
	// Accepted is always true when the update succeeded (the validator
	// rejects everything else with an error).
	Accepted bool `json:"accepted"`
	// Resolved is true when this vote decided the step; Outcome then holds
	// "approved" or "rejected".
	Resolved bool   `json:"resolved"`
	Outcome  string `json:"outcome,omitempty"`
	Votes    int    `json:"votes"`
	Quorum   int    `json:"quorum"`
}
