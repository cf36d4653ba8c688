package wire

import (
	"encoding/json"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
)

// The REST API's types for schedules, triggers, webhooks and events.

// ScheduleSpec says when and what a schedule starts. It is the body of
// POST /v1/schedules (with an id) and the entry of gateflow.yaml's
// schedules section (with a tenant).
type ScheduleSpec struct {
	// Definition (and Version, the latest when empty) to start. The
	// version is resolved when the schedule is created or updated.
	Definition string `json:"definition"`
	Version    string `json:"version,omitempty"`
	// Cron is a 5-field cron expression (or @hourly, @daily, ...);
	// Interval a duration ("15m"), shifted by Offset. Exactly one is set.
	Cron     string              `json:"cron,omitempty"`
	Interval definition.Duration `json:"interval,omitempty"`
	Offset   definition.Duration `json:"offset,omitempty"`
	// Timezone of the cron expression (IANA name; UTC when empty).
	Timezone string `json:"timezone,omitempty"`
	// Input is a template evaluated at each firing, with input =
	// {schedule, scheduled_time, scheduled_unix_ms}.
	Input any `json:"input,omitempty"`
	// Overlap: what happens when a firing comes while the previous run
	// still runs: skip (default), buffer_one, buffer_all, cancel_other,
	// terminate_other, allow_all.
	Overlap string `json:"overlap,omitempty"`
	// CatchupWindow: how late a missed firing (Temporal down) may still
	// start; default 1 minute (at least 10s).
	CatchupWindow definition.Duration `json:"catchup_window,omitempty"`
	// Jitter delays each firing by a random amount up to this.
	Jitter definition.Duration `json:"jitter,omitempty"`
	// Paused creates the schedule paused.
	Paused bool   `json:"paused,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Overlap policies of a schedule.
const (
	OverlapSkip           = "skip"
	OverlapBufferOne      = "buffer_one"
	OverlapBufferAll      = "buffer_all"
	OverlapCancelOther    = "cancel_other"
	OverlapTerminateOther = "terminate_other"
	OverlapAllowAll       = "allow_all"
)

// OverlapPolicies lists the overlap policies, default first.
func OverlapPolicies() []string {
	return []string{OverlapSkip, OverlapBufferOne, OverlapBufferAll, OverlapCancelOther, OverlapTerminateOther, OverlapAllowAll}
}

// ScheduleRequest creates or replaces a schedule.
type ScheduleRequest struct {
	ID string `json:"id"`
	ScheduleSpec
}

// Sources of schedules and triggers.
const (
	SourceAPI    = "api"
	SourceConfig = "config"
)

// Schedule is a schedule as the API shows it.
type Schedule struct {
	ID string `json:"id"`
	ScheduleSpec
	// Source is "api" or "config" (managed in gateflow.yaml: only pause,
	// resume, trigger and backfill apply).
	Source string `json:"source"`
	// ResolvedVersion is the definition version its runs start.
	ResolvedVersion string `json:"resolved_version,omitempty"`
	// State: paused (and why) and what it did.
	Paused      bool          `json:"paused"`
	PausedNote  string        `json:"paused_note,omitempty"`
	Actions     int           `json:"actions"`
	Skipped     int           `json:"skipped_overlap,omitempty"`
	Missed      int           `json:"missed_catchup,omitempty"`
	NextRuns    []time.Time   `json:"next_runs"`
	RecentRuns  []ScheduleRun `json:"recent_runs,omitempty"`
	RunningRuns []string      `json:"running,omitempty"`
	CreatedAt   *time.Time    `json:"created_at,omitempty"`
	UpdatedAt   *time.Time    `json:"updated_at,omitempty"`
}

// ScheduleRun is a run a schedule started.
type ScheduleRun struct {
	ScheduledAt time.Time `json:"scheduled_at"`
	StartedAt   time.Time `json:"started_at"`
	// WorkflowID is the API id of the orchestration.
	WorkflowID string `json:"workflow_id,omitempty"`
}

// Schedules is the answer of GET /v1/schedules.
type Schedules struct {
	Items []Schedule `json:"items"`
}

// ScheduleAction is the body of the pause, resume and trigger actions.
type ScheduleAction struct {
	// Note says why (pause, resume).
	Note string `json:"note,omitempty"`
	// Overlap overrides the schedule's policy (trigger).
	Overlap string `json:"overlap,omitempty"`
}

// BackfillRequest starts the runs a schedule would have started in
// [From, To), at once.
type BackfillRequest struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Overlap string    `json:"overlap,omitempty"`
}

// EventRequest is the body of POST /v1/events.
type EventRequest struct {
	// Name and Key select the event steps it may resume.
	Name string `json:"name"`
	Key  string `json:"key"`
	// Payload becomes the output of the step it resumes.
	Payload json.RawMessage `json:"payload,omitempty"`
	// ID deduplicates: an event sent again with the same id within its
	// TTL is dropped. Empty: a fresh id.
	ID string `json:"id,omitempty"`
	// TTL is how long the event is kept while no step waits (default 24h,
	// at most 7 days).
	TTL definition.Duration `json:"ttl,omitempty"`
	// Strict delivers only to a step waiting now: 404 when none waits,
	// and nothing is kept.
	Strict bool `json:"strict,omitempty"`
}

// EventAccepted answers POST /v1/events (202).
type EventAccepted struct {
	ID string `json:"id"`
	// Delivered is set by strict delivery: the step it resumed.
	Delivered  bool   `json:"delivered,omitempty"`
	Duplicate  bool   `json:"duplicate,omitempty"`
	WorkflowID string `json:"workflow_id,omitempty"`
	StepID     string `json:"step_id,omitempty"`
}

// HookAccepted answers a webhook delivery (202).
type HookAccepted struct {
	Hook       string `json:"hook"`
	DeliveryID string `json:"delivery_id"`
	// Action is "started", "event", "duplicate" or "filtered".
	Action string `json:"action"`
	// WorkflowID is the API id of the orchestration started (or started
	// before by the same delivery).
	WorkflowID string `json:"workflow_id,omitempty"`
	EventID    string `json:"event_id,omitempty"`
}

// Trigger is a topic trigger or a webhook as GET /v1/triggers shows it.
type Trigger struct {
	Name string `json:"name"`
	// Kind is "topic" or "webhook".
	Kind string `json:"kind"`
	// Topic (topic triggers) or Path (webhooks).
	Topic  string `json:"topic,omitempty"`
	Path   string `json:"path,omitempty"`
	Scheme string `json:"scheme,omitempty"`
	// Starts names the definition started, or Event the event produced.
	Starts string `json:"starts,omitempty"`
	Event  string `json:"event,omitempty"`
	Filter string `json:"filter,omitempty"`
}

// Triggers is the answer of GET /v1/triggers.
type Triggers struct {
	Items []Trigger `json:"items"`
}
