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

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/wire"
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
	// Limits bound the orchestration's work (definition.RunLimits): the
	// tenant's limits when it started, copied in like the definition since
	// workflow code cannot read the configuration. Nil (a starter that
	// predates them) means definition.DefaultRunLimits.
	Limits *definition.RunLimits `json:"limits,omitempty"`
	// ContinueAsNewAfter is the history length (events) past which the
	// orchestration continues as new at its next safe point; zero means
	// DefaultContinueAsNewAfter. Tests lower it.
	ContinueAsNewAfter int `json:"continue_as_new_after,omitempty"`
	// Trigger names what started the run when it was not an API call.
	// Schedules set it (with InputTemplate): the run then records its own
	// firing (a call record of kind schedule) when it starts.
	Trigger *TriggerRef `json:"trigger,omitempty"`
	// InputTemplate, when set, replaces Input: it is evaluated when the
	// run starts, with input = TriggerEnv (a schedule's id and scheduled
	// time), so that every firing of a schedule gets its own input.
	InputTemplate any `json:"input_template,omitempty"`
}

// TriggerRef names the trigger of a run.
type TriggerRef struct {
	// Kind is a trigger call kind (calls.TriggerKinds): "schedule".
	Kind string `json:"kind"`
	// Name is the trigger's name (the schedule id, without tenant).
	Name string `json:"name"`
	// WorkflowIDBase is the workflow id the schedule starts runs under;
	// Temporal appends "-<scheduled time>" to it.
	WorkflowIDBase string `json:"workflow_id_base,omitempty"`
}

// Keys of the input an InputTemplate sees (input.schedule,
// input.scheduled_time, input.scheduled_unix_ms).
const (
	TriggerEnvSchedule        = "schedule"
	TriggerEnvScheduledTime   = "scheduled_time"
	TriggerEnvScheduledUnixMS = "scheduled_unix_ms"
)

// EventsChange is the workflow.GetVersion change id of the event-driven
// additions to the interpreter: the event step, http steps with a
// callback, and schedule runs that evaluate their input and record their
// firing. Runs without these never reach it, so their histories are
// unchanged.
const EventsChange = "gateflow.events"

// DefaultContinueAsNewAfter is the history length (events) after which an
// orchestration continues as new, well below the server's own limits so
// that draining in-flight work before the switch stays safe.
const DefaultContinueAsNewAfter = 2000

// Carry is the state an orchestration passes to its next run when it
// continues as new. Its content is owned by the interpreter.
type Carry struct {
	State json.RawMessage `json:"state"`
}

// The types that cross the workflow boundary to the API and its clients
// are declared in workflows/wire (no Temporal import, so the Go client can
// use them); these aliases keep the workflow code's names.
type (
	// StepState is the lifecycle state of one step.
	StepState = wire.StepState
	// RunState is the lifecycle state of a whole orchestration.
	RunState = wire.RunState
	// Status is what the status query returns.
	Status = wire.Status
	// StepStatus is the state of one step.
	StepStatus = wire.StepStatus
	// Approvers names who may decide an approval step.
	Approvers = wire.Approvers
	// PendingApproval is an approval step waiting for decisions.
	PendingApproval = wire.PendingApproval
	// PendingEvent is an event step waiting for its event.
	PendingEvent = wire.PendingEvent
	// Identity is the caller behind a decision.
	Identity = wire.Identity
	// Decision is an approver's vote, sent as the DecideUpdate or the
	// DecisionSignal.
	Decision = wire.Decision
	// Vote is a decision recorded by an approval step.
	Vote = wire.Vote
	// DecisionResult answers a DecideUpdate.
	DecisionResult = wire.DecisionResult
)

// Step states reported by the status query.
const (
	StepPending         = wire.StepPending
	StepRunning         = wire.StepRunning
	StepWaitingApproval = wire.StepWaitingApproval
	StepWaitingEvent    = wire.StepWaitingEvent
	StepSucceeded       = wire.StepSucceeded
	StepFailed          = wire.StepFailed
	StepSkipped         = wire.StepSkipped
	StepCompensated     = wire.StepCompensated
)

// Orchestration states.
const (
	RunRunning     = wire.RunRunning
	RunSucceeded   = wire.RunSucceeded
	RunFailed      = wire.RunFailed
	RunCancelled   = wire.RunCancelled
	RunTerminated  = wire.RunTerminated
	RunTimedOut    = wire.RunTimedOut
	RunCompensated = wire.RunCompensated
)

// Decision values.
const (
	Approve = wire.Approve
	Reject  = wire.Reject
)

// Application error types returned by the DecideUpdate validator, so that
// the ingress can map them to HTTP statuses without parsing messages.
const (
	ErrTypeUnknownStep     = "UnknownStep"     // 404
	ErrTypeStepNotWaiting  = "StepNotWaiting"  // 409
	ErrTypeNotApprover     = "NotApprover"     // 403
	ErrTypeDuplicateVote   = "DuplicateVote"   // 409
	ErrTypeInvalidDecision = "InvalidDecision" // 400
)

// ErrTypeSelfApproval is the decide validator's refusal of a vote by the
// identity that submitted the orchestration on a step that does not allow
// self-approval (separation of duties; 409 self_approval).
const ErrTypeSelfApproval = "SelfApproval"

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
	// ErrTypeEventTimedOut: an event step's timeout passed without its
	// event (on_timeout: fail).
	ErrTypeEventTimedOut = "EventTimedOut"
)

// ErrTypeLimitExceeded is the failure of an orchestration that went past
// one of its RunLimits (items of a foreach, step executions); the message
// names the step and the limit.
const ErrTypeLimitExceeded = "LimitExceeded"
