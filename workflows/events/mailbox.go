package events

import (
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Mailbox is the workflow registered as MailboxWorkflow: it pairs the
// events of one (tenant, name, key) with the steps waiting for them (see
// the package doc). It handles one signal at a time, in the order the
// selector sees them, and completes once it holds nothing.
func Mailbox(ctx workflow.Context, in MailboxInput) error {
	m := &mailbox{in: in, log: workflow.GetLogger(ctx)}
	if in.State != nil {
		m.st = *in.State
	}
	if m.st.Seen == nil {
		m.st.Seen = map[string]time.Time{}
	}
	for i := range m.st.Queue {
		m.bytes += len(m.st.Queue[i].Payload)
	}
	m.wake = workflow.NewChannel(ctx)
	if err := workflow.SetUpdateHandlerWithOptions(ctx, DeliverUpdate, m.deliverStrict,
		workflow.UpdateHandlerOptions{Validator: m.checkStrict}); err != nil {
		return fmt.Errorf("register %s update: %w", DeliverUpdate, err)
	}
	evCh := workflow.GetSignalChannel(ctx, EventSignal)
	subCh := workflow.GetSignalChannel(ctx, SubscribeSignal)
	unsubCh := workflow.GetSignalChannel(ctx, UnsubscribeSignal)
	drain := func() bool {
		got := false
		for {
			var e Event
			var s Subscription
			var tok string
			switch {
			case evCh.ReceiveAsync(&e):
				m.onEvent(ctx, e)
			case subCh.ReceiveAsync(&s):
				m.onSubscribe(ctx, s)
			case unsubCh.ReceiveAsync(&tok):
				m.onUnsubscribe(tok)
			default:
				return got
			}
			got = true
		}
	}

	var (
		timer       workflow.Future
		timerAt     time.Time
		cancelTimer workflow.CancelFunc
	)
	var idleSince time.Time
	for {
		now := workflow.Now(ctx)
		m.expire(now)
		if !m.idle() {
			idleSince = time.Time{}
		} else if idleSince.IsZero() {
			idleSince = now
		}
		if !idleSince.IsZero() && !now.Before(idleSince.Add(idleGrace)) {
			// Signals that came with this workflow task, and updates
			// still running, keep the mailbox open.
			if drain() {
				continue
			}
			if !workflow.AllHandlersFinished(ctx) {
				if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
					return err
				}
				continue
			}
			return nil
		}
		info := workflow.GetInfo(ctx)
		if info.GetCurrentHistoryLength() > continueAsNewAfter || info.GetContinueAsNewSuggested() {
			for drain() {
			}
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			for drain() {
			}
			st := m.st
			return workflow.NewContinueAsNewError(ctx, MailboxWorkflow, MailboxInput{Tenant: in.Tenant, Name: in.Name, Key: in.Key, State: &st})
		}
		next := m.nextDeadline()
		if !idleSince.IsZero() {
			next = idleSince.Add(idleGrace)
		}
		if !next.IsZero() && (timer == nil || next.Before(timerAt)) {
			if cancelTimer != nil {
				cancelTimer()
			}
			var tctx workflow.Context
			tctx, cancelTimer = workflow.WithCancel(ctx)
			d := next.Sub(workflow.Now(ctx))
			if d < time.Millisecond {
				d = time.Millisecond
			}
			timer, timerAt = workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{Summary: "event expiry"}), next
		}
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(evCh, func(c workflow.ReceiveChannel, _ bool) {
			var e Event
			c.Receive(ctx, &e)
			m.onEvent(ctx, e)
		})
		sel.AddReceive(subCh, func(c workflow.ReceiveChannel, _ bool) {
			var s Subscription
			c.Receive(ctx, &s)
			m.onSubscribe(ctx, s)
		})
		sel.AddReceive(unsubCh, func(c workflow.ReceiveChannel, _ bool) {
			var tok string
			c.Receive(ctx, &tok)
			m.onUnsubscribe(tok)
		})
		sel.AddReceive(m.wake, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
		})
		if timer != nil {
			sel.AddFuture(timer, func(workflow.Future) { timer, cancelTimer = nil, nil })
		}
		sel.Select(ctx)
	}
}

// mailbox is the state of one mailbox run.
type mailbox struct {
	in    MailboxInput
	st    MailboxState
	bytes int
	log   log.Logger
	// wake unblocks the main loop after an update changed the state.
	wake workflow.Channel
}

func (m *mailbox) idle() bool {
	return len(m.st.Queue) == 0 && len(m.st.Subs) == 0 && len(m.st.Seen) == 0
}

// onEvent delivers an event to the oldest waiting step, or keeps it.
func (m *mailbox) onEvent(ctx workflow.Context, e Event) {
	now := workflow.Now(ctx)
	if e.Name != m.in.Name || e.Key != m.in.Key {
		m.log.Warn("event for another mailbox dropped", "event", e.Name, "id", e.ID)
		return
	}
	if !e.Returned {
		if _, dup := m.st.Seen[e.ID]; dup {
			m.log.Info("duplicate event dropped", "event", e.Name, "id", e.ID)
			return
		}
		e.ExpiresAt = now.Add(e.ttl())
		m.remember(e.ID, e.ExpiresAt)
	} else if !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt) {
		m.log.Info("returned event expired", "event", e.Name, "id", e.ID)
		return
	}
	if _, ok := m.deliver(ctx, e); ok {
		return
	}
	m.enqueue(e, e.Returned)
}

// deliver signals e to the oldest subscriber whose orchestration takes the
// signal; subscribers whose orchestration is gone are dropped.
func (m *mailbox) deliver(ctx workflow.Context, e Event) (Subscription, bool) {
	for len(m.st.Subs) > 0 {
		s := m.st.Subs[0]
		m.st.Subs = m.st.Subs[1:]
		if m.signal(ctx, s, e) {
			return s, true
		}
	}
	return Subscription{}, false
}

// signal sends e to the orchestration of s; false when that orchestration
// is gone (completed, continued, terminated).
func (m *mailbox) signal(ctx workflow.Context, s Subscription, e Event) bool {
	err := workflow.SignalExternalWorkflow(ctx, s.WorkflowID, s.RunID, DeliveredSignal, Delivery{Token: s.Token, Event: e}).Get(ctx, nil)
	if err != nil {
		m.log.Info("waiting orchestration is gone; trying the next", "workflow", s.WorkflowID, "step", s.StepID, "error", err.Error())
		return false
	}
	return true
}

// enqueue keeps e (at the front when it was returned), dropping the oldest
// events beyond the bounds.
func (m *mailbox) enqueue(e Event, front bool) {
	if front {
		m.st.Queue = append([]Event{e}, m.st.Queue...)
	} else {
		m.st.Queue = append(m.st.Queue, e)
	}
	m.bytes += len(e.Payload)
	for len(m.st.Queue) > 1 && (len(m.st.Queue) > MaxQueued || m.bytes > MaxQueuedBytes) {
		old := m.st.Queue[0]
		m.st.Queue = m.st.Queue[1:]
		m.bytes -= len(old.Payload)
		m.log.Warn("mailbox full: oldest event dropped", "event", old.Name, "id", old.ID)
	}
}

// onSubscribe hands the oldest kept event to a new subscriber, or lets it
// wait.
func (m *mailbox) onSubscribe(ctx workflow.Context, s Subscription) {
	for _, o := range m.st.Subs {
		if o.Token == s.Token {
			return // a retried subscription
		}
	}
	m.expire(workflow.Now(ctx))
	if len(m.st.Queue) > 0 {
		e := m.st.Queue[0]
		m.st.Queue = m.st.Queue[1:]
		m.bytes -= len(e.Payload)
		if m.signal(ctx, s, e) {
			return
		}
		m.st.Queue = append([]Event{e}, m.st.Queue...)
		m.bytes += len(e.Payload)
		return
	}
	m.st.Subs = append(m.st.Subs, s)
}

func (m *mailbox) onUnsubscribe(token string) {
	for i, s := range m.st.Subs {
		if s.Token == token {
			m.st.Subs = append(m.st.Subs[:i:i], m.st.Subs[i+1:]...)
			return
		}
	}
}

// checkStrict is the DeliverUpdate's validator: it refuses an event for
// another mailbox, and one that no step waits for (unless it is a
// duplicate, answered as such).
func (m *mailbox) checkStrict(e Event) error {
	if e.Name != m.in.Name || e.Key != m.in.Key {
		return temporal.NewApplicationError("event for another mailbox", ErrTypeMismatch)
	}
	if _, dup := m.st.Seen[e.ID]; dup {
		return nil
	}
	if len(m.st.Subs) == 0 {
		return temporal.NewApplicationError("no step waits for this event", ErrTypeNoWaiter)
	}
	return nil
}

// deliverStrict is the DeliverUpdate's handler.
func (m *mailbox) deliverStrict(ctx workflow.Context, e Event) (DeliverResult, error) {
	defer m.wake.SendAsync(true)
	if _, dup := m.st.Seen[e.ID]; dup {
		return DeliverResult{Duplicate: true}, nil
	}
	now := workflow.Now(ctx)
	e.ExpiresAt = now.Add(e.ttl())
	m.remember(e.ID, e.ExpiresAt)
	s, ok := m.deliver(ctx, e)
	if !ok {
		delete(m.st.Seen, e.ID)
		return DeliverResult{}, temporal.NewApplicationError("no step waits for this event", ErrTypeNoWaiter)
	}
	return DeliverResult{Delivered: true, WorkflowID: s.WorkflowID, StepID: s.StepID}, nil
}

// remember keeps an event id until forget, bounded by maxRemembered (the
// ids forgotten soonest go first).
func (m *mailbox) remember(id string, forget time.Time) {
	m.st.Seen[id] = forget
	if len(m.st.Seen) <= maxRemembered {
		return
	}
	ids := seenByExpiry(m.st.Seen)
	for _, old := range ids[:len(ids)-maxRemembered] {
		delete(m.st.Seen, old)
	}
}

// expire drops kept events past their expiry and forgets old ids.
func (m *mailbox) expire(now time.Time) {
	kept := m.st.Queue[:0]
	for _, e := range m.st.Queue {
		if !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt) {
			m.bytes -= len(e.Payload)
			m.log.Info("event expired unclaimed", "event", e.Name, "id", e.ID)
			continue
		}
		kept = append(kept, e)
	}
	m.st.Queue = kept
	for _, id := range seenByExpiry(m.st.Seen) {
		if now.Before(m.st.Seen[id]) {
			break
		}
		delete(m.st.Seen, id)
	}
}

// nextDeadline is the earliest expiry of a kept event or remembered id.
func (m *mailbox) nextDeadline() time.Time {
	var next time.Time
	for _, e := range m.st.Queue {
		if !e.ExpiresAt.IsZero() && (next.IsZero() || e.ExpiresAt.Before(next)) {
			next = e.ExpiresAt
		}
	}
	if ids := seenByExpiry(m.st.Seen); len(ids) > 0 {
		if t := m.st.Seen[ids[0]]; next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// seenByExpiry lists remembered ids, soonest forgotten first (then by id):
// a deterministic order over a map.
func seenByExpiry(seen map[string]time.Time) []string {
	ids := make([]string, 0, len(seen))
	//workflowcheck:ignore
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := seen[ids[i]], seen[ids[j]]
		if !a.Equal(b) {
			return a.Before(b)
		}
		return ids[i] < ids[j]
	})
	return ids
}
