package workflows

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/gateflow/gateflow/workflows/definition"
)

// Size caps of the status query: a step output above StatusOutputCap (and a
// run output above StatusRunOutputCap) is replaced by its first bytes as a
// JSON string and flagged as truncated. The full values stay available to
// expressions and in the workflow result.
const (
	StatusOutputCap    = 8 << 10
	StatusRunOutputCap = 64 << 10
)

// statusTracker keeps the Status answered by the status query. Every change
// goes through it so that Seq increases with each one.
type statusTracker struct {
	st    Status
	index map[string]int // step status id -> position in st.Steps
}

func newStatusTracker(def *definition.Definition, tenant string, startedAt time.Time) *statusTracker {
	t := &statusTracker{
		st: Status{
			Definition: def.Name,
			Version:    def.Version,
			Tenant:     tenant,
			State:      RunRunning,
			StartedAt:  startedAt,
			Steps:      []StepStatus{},
		},
		index: map[string]int{},
	}
	t.addPending("", def.Steps)
	return t
}

// restore replaces the tracker's content with a carried status.
func (t *statusTracker) restore(st Status) {
	if st.Steps == nil {
		st.Steps = []StepStatus{}
	}
	t.st = st
	t.index = make(map[string]int, len(st.Steps))
	for i := range st.Steps {
		t.index[st.Steps[i].ID] = i
	}
}

// addPending lists steps (and the steps nested in parallel branches and
// switch arms, whose ids are fixed) as pending under prefix. Foreach bodies
// are listed per item when the item starts.
func (t *statusTracker) addPending(prefix string, steps []definition.Step) {
	for i := range steps {
		st := &steps[i]
		t.ensure(prefix+st.ID, st.Kind)
		for _, b := range st.Branches {
			t.addPending(prefix, b.Steps)
		}
		for _, c := range st.Cases {
			t.addPending(prefix, c.Steps)
		}
		t.addPending(prefix, st.Default)
	}
}

// ensure returns the entry of id, creating a pending one.
func (t *statusTracker) ensure(id, kind string) *StepStatus {
	if i, ok := t.index[id]; ok {
		return &t.st.Steps[i]
	}
	t.st.Steps = append(t.st.Steps, StepStatus{ID: id, Kind: kind, State: StepPending})
	t.index[id] = len(t.st.Steps) - 1
	t.st.Seq++
	return &t.st.Steps[len(t.st.Steps)-1]
}

// lookup returns the entry of id, if any.
func (t *statusTracker) lookup(id string) (StepStatus, bool) {
	i, ok := t.index[id]
	if !ok {
		return StepStatus{}, false
	}
	return t.st.Steps[i], true
}

// update changes the entry of id (created if needed) and bumps Seq.
func (t *statusTracker) update(id, kind string, fn func(s *StepStatus)) {
	s := t.ensure(id, kind)
	fn(s)
	t.st.Seq++
}

// touch records a change outside the step list (votes, escalation).
func (t *statusTracker) touch() { t.st.Seq++ }

func (t *statusTracker) start(id, kind string, now time.Time) {
	t.update(id, kind, func(s *StepStatus) {
		if s.State == StepRunning && s.StartedAt != nil {
			return // resumed after continue-as-new
		}
		s.State = StepRunning
		s.StartedAt = &now
		s.FinishedAt = nil
		s.Error = ""
	})
}

func (t *statusTracker) setState(id, kind string, state StepState) {
	t.update(id, kind, func(s *StepStatus) { s.State = state })
}

func (t *statusTracker) skip(id, kind string, now time.Time) {
	t.update(id, kind, func(s *StepStatus) {
		s.State = StepSkipped
		s.FinishedAt = &now
	})
}

// finish records the end of a step: its output (capped), attempts, error.
func (t *statusTracker) finish(id, kind string, state StepState, output json.RawMessage, attempts int32, errMsg string, now time.Time) {
	t.update(id, kind, func(s *StepStatus) {
		s.State = state
		s.FinishedAt = &now
		if attempts > 0 {
			s.Attempts = attempts
		}
		s.Output, s.OutputTruncated = capJSON(output, StatusOutputCap)
		s.Error = errMsg
	})
}

// closeRun records the end of the orchestration.
func (t *statusTracker) closeRun(state RunState, output json.RawMessage, errMsg string, now time.Time) {
	t.st.State = state
	t.st.ClosedAt = &now
	t.st.Output, _ = capJSON(output, StatusRunOutputCap)
	t.st.Error = errMsg
	t.st.Seq++
}

// snapshot is what the query answers: a copy, with the pending approvals.
func (t *statusTracker) snapshot(pending []PendingApproval) Status {
	s := t.st
	s.Steps = append([]StepStatus(nil), t.st.Steps...)
	s.Pending = pending
	return s
}

// capJSON returns raw when it fits in limit bytes; otherwise its first
// bytes as a JSON string (so the status stays valid JSON) and true.
func capJSON(raw json.RawMessage, limit int) (json.RawMessage, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	if len(raw) <= limit {
		return raw, false
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	b, err := jsonMarshal(string(raw[:cut]))
	if err != nil {
		return nil, true
	}
	return b, true
}
