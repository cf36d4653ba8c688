package workflows_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/events"
)

// mailboxFake stands for the event mailboxes: it records subscriptions,
// returned events and unsubscriptions.
type mailboxFake struct {
	mu       sync.Mutex
	subs     []events.SubscribeRequest
	returned []events.Event
	unsubs   []string
	firings  []activities.Firing
}

func (m *mailboxFake) subscribe(_ context.Context, req events.SubscribeRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs = append(m.subs, req)
	return nil
}

func (m *mailboxFake) giveBack(_ context.Context, req events.ReturnRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.returned = append(m.returned, req.Event)
	return nil
}

func (m *mailboxFake) record(_ context.Context, f activities.Firing) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.firings = append(m.firings, f)
	return nil
}

func (m *mailboxFake) token(t *testing.T, i int) string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.subs) <= i {
		t.Fatalf("%d subscriptions, want more than %d", len(m.subs), i)
	}
	return m.subs[i].Sub.Token
}

func newEventHarness(t *testing.T) (*harness, *mailboxFake) {
	h := newHarness(t, nil)
	m := &mailboxFake{}
	h.env.RegisterActivityWithOptions(m.subscribe, activity.RegisterOptions{Name: events.SubscribeActivity})
	h.env.RegisterActivityWithOptions(m.giveBack, activity.RegisterOptions{Name: events.ReturnActivity})
	h.env.RegisterActivityWithOptions(m.record, activity.RegisterOptions{Name: activities.RecordTriggerActivity})
	h.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, events.UnsubscribeSignal, mock.Anything).
		Return(func(_, _, _, _ string, arg any) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.unsubs = append(m.unsubs, arg.(string))
			return nil
		})
	return h, m
}

const eventDef = `{"steps": [
	{"id": "shipped", "kind": "event", "event": "shipping.shipped", "match": "${{ input.order }}", "timeout": "1h"%s},
	{"id": "after", "kind": "http", "service": "svc", "body": "${{ steps.shipped.output }}"}
], "output": {"shipped": "${{ steps.shipped.output }}"}}`

func deliver(h *harness, m *mailboxFake, at time.Duration, token func() string, payload string) {
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(events.DeliveredSignal, events.Delivery{Token: token(), Event: events.Event{
			ID: "e1", Name: "shipping.shipped", Key: "o-1", Payload: json.RawMessage(payload),
		}})
	}, at)
}

func TestEventStepResumesWithPayload(t *testing.T) {
	h, m := newEventHarness(t)
	var waiting workflows.Status
	h.env.RegisterDelayedCallback(func() { waiting = h.status() }, time.Minute)
	deliver(h, m, 2*time.Minute, func() string { return m.token(t, 0) }, `{"tracking": "T1"}`)
	h.run(input(def(t, fmt.Sprintf(eventDef, "")), `{"order": "o-1"}`))
	out := h.result()
	if got := out["shipped"].(map[string]any)["tracking"]; got != "T1" {
		t.Errorf("output %v", out)
	}
	if len(m.subs) != 1 || m.subs[0].Name != "shipping.shipped" || m.subs[0].Key != "o-1" || m.subs[0].Tenant != "acme" {
		t.Fatalf("subscriptions %+v", m.subs)
	}
	if s := step(t, waiting, "shipped"); s.State != workflows.StepWaitingEvent {
		t.Errorf("state while waiting %s", s.State)
	}
	if len(waiting.Events) != 1 || waiting.Events[0].Key != "o-1" || waiting.Events[0].Deadline == nil {
		t.Errorf("pending events %+v", waiting.Events)
	}
	if len(m.unsubs) != 0 || len(m.returned) != 0 {
		t.Errorf("unsubscribed %v, returned %v", m.unsubs, m.returned)
	}
}

func TestEventStepTimeout(t *testing.T) {
	for _, tc := range []struct {
		name, onTimeout string
		wantFail        bool
	}{
		{"fail by default", "", true},
		{"continue", `, "on_timeout": "continue"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, m := newEventHarness(t)
			h.run(input(def(t, fmt.Sprintf(eventDef, tc.onTimeout)), `{"order": "o-1"}`))
			if tc.wantFail {
				if ae := h.failure(); ae.Type() != workflows.ErrTypeStepFailed {
					t.Errorf("failure %s: %v", ae.Type(), ae)
				}
			} else if out := h.result(); out["shipped"] != nil {
				t.Errorf("output %v, want null", out)
			}
			if len(m.unsubs) != 1 || m.unsubs[0] != m.token(t, 0) {
				t.Errorf("unsubscriptions %v", m.unsubs)
			}
		})
	}
}

// TestEventStepReturnsLateDelivery: a delivery for a wait that ended goes
// back to the mailbox rather than being lost.
func TestEventStepReturnsLateDelivery(t *testing.T) {
	h, m := newEventHarness(t)
	var tok string
	h.env.RegisterDelayedCallback(func() { tok = m.token(t, 0) }, time.Minute)
	// The step times out after 1h; the mailbox delivers just after.
	d := `{"steps": [
		{"id": "shipped", "kind": "event", "event": "shipping.shipped", "match": "o-1", "timeout": "1h", "on_timeout": "continue"},
		{"id": "nap", "kind": "wait", "duration": "1h"}]}`
	deliver(h, m, 90*time.Minute, func() string { return tok }, `{"late": true}`)
	h.run(input(def(t, d), `{}`))
	h.result()
	if len(m.returned) != 1 || string(m.returned[0].Payload) != `{"late":true}` {
		t.Errorf("returned %+v", m.returned)
	}
}

// TestScheduleRunEvaluatesInputAndRecords: a run started by a schedule
// builds its input from the template and records its firing.
func TestScheduleRunEvaluatesInputAndRecords(t *testing.T) {
	h, m := newEventHarness(t)
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "acme/sched-nightly-2026-01-02T03:04:05Z"})
	in := input(def(t, `{"steps": [{"id": "a", "kind": "http", "service": "svc", "body": "${{ input }}"}], "output": "${{ input }}"}`), ``)
	in.Trigger = &workflows.TriggerRef{Kind: "schedule", Name: "nightly", WorkflowIDBase: "acme/sched-nightly"}
	in.InputTemplate = map[string]any{"day": "${{ input.scheduled_time }}", "by": "${{ input.schedule }}"}
	h.run(in)
	out := h.result()
	if out["day"] != "2026-01-02T03:04:05Z" || out["by"] != "nightly" {
		t.Errorf("output %v", out)
	}
	if len(m.firings) != 1 {
		t.Fatalf("firings %+v", m.firings)
	}
	f := m.firings[0]
	if f.Kind != "schedule" || f.Trigger != "nightly" || f.Tenant != "acme" || f.At.Format(time.RFC3339) != "2026-01-02T03:04:05Z" || f.Outcome != activities.FiringOK {
		t.Errorf("firing %+v", f)
	}
}
