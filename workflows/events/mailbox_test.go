package events_test

import (
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows/events"
)

// mailboxEnv runs one mailbox in the test environment and collects what
// it signals to orchestrations; gone lists workflows that no longer take
// signals.
type mailboxEnv struct {
	t    *testing.T
	env  *testsuite.TestWorkflowEnvironment
	mu   sync.Mutex
	got  []events.Delivery
	gone map[string]bool
}

func newMailbox(t *testing.T) *mailboxEnv {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	m := &mailboxEnv{t: t, env: s.NewTestWorkflowEnvironment(), gone: map[string]bool{}}
	m.env.RegisterWorkflowWithOptions(events.Mailbox, workflow.RegisterOptions{Name: events.MailboxWorkflow})
	m.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, events.DeliveredSignal, mock.Anything).
		Return(func(_, wf, _, _ string, arg any) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.gone[wf] {
				return errors.New("workflow not found")
			}
			m.got = append(m.got, arg.(events.Delivery))
			return nil
		})
	m.env.SetTestTimeout(10 * time.Second)
	return m
}

func (m *mailboxEnv) at(d time.Duration, fn func()) { m.env.RegisterDelayedCallback(fn, d) }

func (m *mailboxEnv) event(d time.Duration, id, payload string) {
	m.at(d, func() {
		m.env.SignalWorkflow(events.EventSignal, events.Event{ID: id, Name: "shipped", Key: "o-1", Payload: []byte(payload), TTL: time.Hour})
	})
}

func (m *mailboxEnv) subscribe(d time.Duration, token, wf string) {
	m.at(d, func() {
		m.env.SignalWorkflow(events.SubscribeSignal, events.Subscription{Token: token, WorkflowID: wf, RunID: "r", StepID: "s"})
	})
}

func (m *mailboxEnv) run() {
	m.env.ExecuteWorkflow(events.MailboxWorkflow, events.MailboxInput{Tenant: "acme", Name: "shipped", Key: "o-1"})
	if !m.env.IsWorkflowCompleted() {
		m.t.Fatal("mailbox did not complete")
	}
	if err := m.env.GetWorkflowError(); err != nil {
		m.t.Fatalf("mailbox failed: %v", err)
	}
}

// deliveries returns "token=payload" for each delivery, in order.
func (m *mailboxEnv) deliveries() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, d := range m.got {
		out = append(out, d.Token+"="+string(d.Event.Payload))
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMailbox(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drive func(m *mailboxEnv)
		want  []string
	}{
		{"event before the step", func(m *mailboxEnv) {
			m.event(time.Second, "e1", `1`)
			m.subscribe(time.Minute, "t1", "wf1")
		}, []string{"t1=1"}},
		{"step before the event", func(m *mailboxEnv) {
			m.subscribe(time.Second, "t1", "wf1")
			m.event(time.Minute, "e1", `1`)
		}, []string{"t1=1"}},
		{"each event resumes one step, oldest first", func(m *mailboxEnv) {
			m.subscribe(time.Second, "t1", "wf1")
			m.subscribe(2*time.Second, "t2", "wf2")
			m.event(time.Minute, "e1", `1`)
			m.event(2*time.Minute, "e2", `2`)
		}, []string{"t1=1", "t2=2"}},
		{"duplicate id dropped", func(m *mailboxEnv) {
			m.event(time.Second, "e1", `1`)
			m.event(2*time.Second, "e1", `1`)
			m.subscribe(time.Minute, "t1", "wf1")
			m.subscribe(2*time.Minute, "t2", "wf2")
			m.at(3*time.Minute, func() { m.env.SignalWorkflow(events.UnsubscribeSignal, "t2") })
		}, []string{"t1=1"}},
		{"kept events go oldest first", func(m *mailboxEnv) {
			m.event(time.Second, "e1", `1`)
			m.event(2*time.Second, "e2", `2`)
			m.subscribe(time.Minute, "t1", "wf1")
			m.subscribe(2*time.Minute, "t2", "wf2")
		}, []string{"t1=1", "t2=2"}},
		{"expired event not delivered", func(m *mailboxEnv) {
			m.event(time.Second, "e1", `1`)
			m.subscribe(2*time.Hour, "t1", "wf1")
			m.at(3*time.Hour, func() { m.env.SignalWorkflow(events.UnsubscribeSignal, "t1") })
		}, nil},
		{"gone subscriber skipped", func(m *mailboxEnv) {
			m.gone["wf1"] = true
			m.subscribe(time.Second, "t1", "wf1")
			m.subscribe(2*time.Second, "t2", "wf2")
			m.event(time.Minute, "e1", `1`)
		}, []string{"t2=1"}},
		{"returned event goes first", func(m *mailboxEnv) {
			m.event(time.Second, "e2", `2`)
			m.at(time.Minute, func() {
				m.env.SignalWorkflow(events.EventSignal, events.Event{ID: "e1", Name: "shipped", Key: "o-1", Payload: []byte(`1`),
					Returned: true, ExpiresAt: time.Now().Add(240 * time.Hour)})
			})
			m.subscribe(2*time.Minute, "t1", "wf1")
			m.subscribe(3*time.Minute, "t2", "wf2")
		}, []string{"t1=1", "t2=2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMailbox(t)
			tc.drive(m)
			m.run()
			if got := m.deliveries(); !equal(got, tc.want) {
				t.Errorf("deliveries %v, want %v", got, tc.want)
			}
		})
	}
}

// TestMailboxStrict: strict delivery reaches a waiting step, and is
// refused (keeping nothing) when none waits.
func TestMailboxStrict(t *testing.T) {
	m := newMailbox(t)
	var first, second error
	var res events.DeliverResult
	update := func(d time.Duration, id string, out *error, keep bool) {
		m.at(d, func() {
			m.env.UpdateWorkflow(events.DeliverUpdate, id, &testsuite.TestUpdateCallback{
				OnAccept: func() {},
				OnReject: func(err error) { *out = err },
				OnComplete: func(v any, err error) {
					*out = err
					if keep && err == nil {
						res = v.(events.DeliverResult)
					}
				},
			}, events.Event{ID: id, Name: "shipped", Key: "o-1", Payload: []byte(`7`)})
		})
	}
	m.subscribe(time.Second, "t0", "wf0")
	m.at(2*time.Second, func() { m.env.SignalWorkflow(events.UnsubscribeSignal, "t0") })
	update(10*time.Second, "e1", &first, false)
	m.subscribe(20*time.Second, "t1", "wf1")
	update(30*time.Second, "e2", &second, true)
	m.run()
	var ae *temporal.ApplicationError
	if !errors.As(first, &ae) || ae.Type() != events.ErrTypeNoWaiter {
		t.Errorf("strict delivery without a waiter: %v", first)
	}
	if second != nil || !res.Delivered || res.WorkflowID != "wf1" {
		t.Errorf("strict delivery: %+v, %v", res, second)
	}
	if got := m.deliveries(); !equal(got, []string{"t1=7"}) {
		t.Errorf("deliveries %v", got)
	}
}
