// Package workflows holds the Temporal workflows of Gateflow: the generic
// orchestration interpreter and the definition registry entity workflow.
//
// This file is the contract between the workflows and their callers (ingress,
// worker, CLI): names registered with Temporal and the types that cross the
// workflow boundary. Changing a name or removing a field breaks running
// workflows; add fields instead.
package workflows

import (
	"encoding/json"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows/definition"
)

// Names registered with Temporal. They are part of the wire contract with
// running workflows and must never change.
const (
	// DefaultTaskQueue is the task queue workers poll when none is configured.
	DefaultTaskQueue = "gateflow"
	// OrchestrationWorkflow is the workflow type of the generic interpreter.
	OrchestrationWorkflow = "gateflow.Orchestration"
	// RegistryWorkflow is the workflow type of the definition registry entity.
	RegistryWorkflow = "gateflow.DefinitionRegistry"
	// StatusQuery answers an orchestration's Status.
	StatusQuery = "status"
	// DecideUpdate carries an approval Decision and answers synchronously.
	DecideUpdate = "decide"
	// DecisionSignal carries the same Decision for fire-and-forget clients.
	DecisionSignal = "decision"
)

// Search attributes registered at start (Keyword type) so that visibility
// queries can filter orchestrations by tenant, definition and version.
const (
	SearchAttrTenant     = "GateflowTenant"
	SearchAttrDefinition = "GateflowDefinition"
	SearchAttrVersion    = "GateflowVersion"
)

// SearchAttrAwaiting (KeywordList) names who may decide the approval steps
// an orchestration is waiting on right now (see AwaitingValues): the
// interpreter upserts it whenever that set changes and removes it when
// nothing waits, so that the API finds a caller's pending approvals with
// one visibility query instead of querying every running workflow.
const SearchAttrAwaiting = "GateflowAwaiting"

// Values of SearchAttrAwaiting: AwaitingAny for a step that names no
// approvers (anyone may decide), else AwaitingRole+role and AwaitingUser+user
// per approver.
const (
	AwaitingAny  = "any"
	AwaitingRole = "role:"
	AwaitingUser = "user:"
)

// SearchAttributeTypes returns every custom search attribute of
// orchestrations with its type. It is the one list that registration code
// (the worker, gateflow dev, test servers) reads.
func SearchAttributeTypes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		SearchAttrTenant:     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SearchAttrDefinition: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SearchAttrVersion:    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SearchAttrAwaiting:   enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST,
	}
}

// VisibilityChange is the workflow.GetVersion change id under which an
// orchestration keeps SearchAttrAwaiting and MemoState current. Runs that
// took version 1 carry VisibilityChangeV1 in Temporal's built-in
// TemporalChangeVersion search attribute; runs started by older workers
// lack it, and the API still finds their approvals by querying them.
const (
	VisibilityChange   = "gateflow.visibility"
	VisibilityChangeV1 = VisibilityChange + "-1"
)

// Memo keys written when an orchestration starts.
const (
	// MemoRequestID holds the ingress request id that started the workflow.
	MemoRequestID = "request_id"
	// MemoBodyHash holds the SHA-256 of the submission body, used to tell an
	// idempotent retry (same body) from a conflicting reuse of a key.
	MemoBodyHash = "body_hash"
	// MemoSubmittedBy holds the key id (and user) that submitted the workflow.
	MemoSubmittedBy = "submitted_by"
	// MemoState holds the orchestration's final RunState, upserted by the
	// workflow just before it closes in any state but succeeded (Temporal's
	// own close status says "failed" or "canceled" for a compensated run,
	// and "failed" for one past the definition's timeout). Lists read it.
	MemoState = "state"
)

// OrchestrationInput starts the generic orchestration workflow. The
// definition is copied in at start so that later edits or newly published
// versions never change a running orchestration.
type OrchestrationInput struct {
	Definition definition.Definition `json:"definition"`
	Input      json.RawMessage       `json:"input,omitempty"`
	Meta       activities.RunMeta    `json:"meta"`
	// Carry is set only by continue-as-new: the state accumulated by earlier
	// runs of the same orchestration.
	Carry *Carry `json:"carry,omitempty"`
	// ContinueAsNewAfter is the history length (events) past which the
	// orchestration continues as new at its next safe point; zero means
	// DefaultContinueAsNewAfter. Tests lower it.
	ContinueAsNewAfter int `json:"continue_as_new_after,omitempty"`
}

// DefaultContinueAsNewAfter is the history length (events) after which an
// orchestration continues as new, well below the server's own limits so
// that draining in-flight work before the switch stays safe.
const DefaultContinueAsNewAfter = 2000

// Carry is the state an orchestration passes to its next run when it
// continues as new. Its content is owned by the interpreter.
type Carry struct {
	State json.RawMessage `json:"state"`
}

// StepState is the lifecycle state of one step.
type StepState string

// Step states reported by the status query.
const (
	StepPending         StepState = "pending"
	StepRunning         StepState = "running"
	StepWaitingApproval StepState = "waiting-approval"
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
	Output     json.RawMessage   `json:"output,omitempty"`
	Error      string            `json:"error,omitempty"`
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

// Application error types returned by the DecideUpdate validator, so that
// the ingress can map them to HTTP statuses without parsing messages.
const (
	ErrTypeUnknownStep     = "UnknownStep"     // 404
	ErrTypeStepNotWaiting  = "StepNotWaiting"  // 409
	ErrTypeNotApprover     = "NotApprover"     // 403
	ErrTypeDuplicateVote   = "DuplicateVote"   // 409
	ErrTypeInvalidDecision = "InvalidDecision" // 400
)

// Application error types an orchestration fails with (the workflow's
// failure), so that callers can tell why without parsing messages.
const (
	// ErrTypeStepFailed: a step failed (after its retries); the message
	// names the step ("step fanout[2].charge: ...").
	ErrTypeStepFailed = "StepFailed"
	// ErrTypeApprovalRejected: an approval step was rejected (by a vote or
	// its timeout).
	ErrTypeApprovalRejected = "ApprovalRejected"
	// ErrTypeOrchestrationTimedOut: the definition's timeout passed.
	ErrTypeOrchestrationTimedOut = "OrchestrationTimedOut"
	// ErrTypeInvalidOrchestration: the workflow input cannot run (bad
	// input JSON, corrupt continue-as-new state).
	ErrTypeInvalidOrchestration = "InvalidOrchestration"
)
