package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
)

// Recorder takes call records. Emit must not block the call for long (the
// analytics producer buffers and spools) and must not fail the call: a
// record that cannot be sent is the producer's problem to keep.
type Recorder interface {
	Emit(record.Record)
}

// NopRecorder drops every record; for tests and tools that do not record.
type NopRecorder struct{}

// Emit drops r.
func (NopRecorder) Emit(record.Record) {}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(record.Record)

// Emit calls f(r).
func (f RecorderFunc) Emit(r record.Record) { f(r) }

// newCallRecord starts the record of one activity attempt: who, which
// orchestration, which step, which attempt. The caller fills the outcome.
func newCallRecord(ctx context.Context, kind calls.Kind, ref StepRef, target string, start time.Time) record.Record {
	r := record.New(kind, start)
	r.SetTrace(ctx) // the activity's span, from Temporal's tracing interceptor
	r.Tenant = ref.Meta.Tenant
	r.KeyID = ref.Meta.KeyID
	r.Definition = ref.Meta.Definition
	r.Version = ref.Meta.Version
	r.StepID = ref.StepID
	r.Target = target
	r.Labels = copyLabels(ref.Meta.Labels)
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		r.WorkflowID = info.WorkflowExecution.ID
		r.RunID = info.WorkflowExecution.RunID
		r.Attempt = info.Attempt
	}
	return r
}

func copyLabels(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// latencyMS is the time since start in milliseconds, with sub-millisecond
// precision kept for fast local calls.
func latencyMS(start, end time.Time) float64 {
	return float64(end.Sub(start).Microseconds()) / 1000
}
