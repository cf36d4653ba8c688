package activities

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
)

// RecordTriggerActivity records the firing of a schedule; the orchestration
// it started runs it as a local activity when it begins.
const RecordTriggerActivity = "gateflow.RecordTrigger"

// Outcomes of a firing, for Firing.Outcome (the call record outcomes).
const (
	// FiringOK: the orchestration was started, or the event accepted.
	FiringOK = record.OutcomeOK
	// FiringRejected: the input was refused (bad signature, filtered out
	// is not a rejection but is recorded with the "result" label).
	FiringRejected = record.OutcomeRejected
	// FiringError: the start failed (dead-lettered, Temporal refused).
	FiringError = record.OutcomeError
)

// Firing is one firing of a trigger (a schedule's run, a topic message, a
// webhook delivery, an event): what the trigger processes and the
// orchestrations started by schedules record, as a call record of the
// trigger's kind.
type Firing struct {
	// Kind is one of calls.TriggerKinds.
	Kind   calls.Kind `json:"kind"`
	Tenant string     `json:"tenant"`
	// Trigger is the name of the schedule, topic trigger or webhook, or
	// the event name; the record's target.
	Trigger string `json:"trigger"`
	// WorkflowID and RunID name the orchestration started (Temporal ids).
	WorkflowID string `json:"workflow_id,omitempty"`
	RunID      string `json:"run_id,omitempty"`
	Definition string `json:"definition,omitempty"`
	Version    string `json:"version,omitempty"`
	// At is when the firing was due (a schedule's time) or received.
	At time.Time `json:"at"`
	// Latency is how long it took: until the start was acknowledged, or,
	// for a schedule, how late the run started.
	Latency    time.Duration  `json:"latency"`
	Outcome    record.Outcome `json:"outcome"`
	StatusCode int32          `json:"status_code,omitempty"`
	ReqBytes   int64          `json:"request_bytes,omitempty"`
	// ErrorClass and Error say why it failed (never a secret).
	ErrorClass string `json:"error_class,omitempty"`
	Error      string `json:"error,omitempty"`
	// Labels are added to the record's labels (e.g. "result": "duplicate",
	// "delivery_id", "origin": "topic/partition/offset").
	Labels map[string]string `json:"labels,omitempty"`
	// IDParts, when set, make the record id a function of them (and At),
	// so that a firing recorded twice (a redelivered message, a retried
	// local activity) keeps one id and collapses in ClickHouse.
	IDParts []string `json:"id_parts,omitempty"`
}

// Record returns the call record of the firing. Its labels carry
// calls.LabelTrigger ("<kind>:<name>").
func (f Firing) Record() record.Record {
	r := record.New(f.Kind, f.At)
	if len(f.IDParts) > 0 {
		r.ID = DerivedRecordID(f.At, f.IDParts...)
	}
	r.Tenant = f.Tenant
	r.Target = f.Trigger
	r.WorkflowID, r.RunID = f.WorkflowID, f.RunID
	r.Definition, r.Version = f.Definition, f.Version
	r.Attempt = 1
	r.Outcome = f.Outcome
	if r.Outcome == "" {
		r.Outcome = record.OutcomeOK
	}
	r.StatusCode = f.StatusCode
	r.ReqBytes = f.ReqBytes
	r.LatencyMS = float64(f.Latency.Microseconds()) / 1000
	if f.Error != "" {
		r.ErrorClass = f.ErrorClass
		r.ErrorMsg = record.Truncate(f.Error, record.MaxErrorMessage)
	}
	r.Labels = make(map[string]string, len(f.Labels)+1)
	for k, v := range f.Labels {
		r.Labels[k] = v
	}
	r.Labels[calls.LabelTrigger] = TriggerLabel(f.Kind, f.Trigger)
	return r
}

// TriggerLabel is the value of calls.LabelTrigger for a trigger.
func TriggerLabel(kind calls.Kind, name string) string { return string(kind) + ":" + name }

// TriggerActivity records schedule firings. Register its Record method
// under RecordTriggerActivity.
type TriggerActivity struct {
	rec Recorder
}

// NewTriggerActivity returns the activity emitting to rec.
func NewTriggerActivity(rec Recorder) *TriggerActivity {
	if rec == nil {
		rec = NopRecorder{}
	}
	return &TriggerActivity{rec: rec}
}

// Record emits the firing's record.
func (a *TriggerActivity) Record(_ context.Context, f Firing) error {
	if f.Kind == "" || f.Tenant == "" {
		return fmt.Errorf("trigger record: kind and tenant are required")
	}
	a.rec.Emit(f.Record())
	return nil
}

// DerivedRecordID is a UUIDv7 whose time is at and whose other bits hash
// parts, so that the same parts always give the same id.
func DerivedRecordID(at time.Time, parts ...string) string {
	h := sha256.New()
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(at.UnixNano()))
	h.Write(ts[:])
	sum := h.Sum(nil)
	var id uuid.UUID
	copy(id[:], sum[:16])
	ms := uint64(at.UnixMilli())
	id[0] = byte(ms >> 40)
	id[1] = byte(ms >> 32)
	id[2] = byte(ms >> 24)
	id[3] = byte(ms >> 16)
	id[4] = byte(ms >> 8)
	id[5] = byte(ms)
	id[6] = (id[6] & 0x0f) | 0x70 // version 7
	id[8] = (id[8] & 0x3f) | 0x80 // RFC 4122 variant
	return id.String()
}
