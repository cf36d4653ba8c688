package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/events"
)

// eventsV1 is the version of EventsChange that runs the event step, http
// callbacks and schedule inputs.
const eventsV1 workflow.Version = 1

// eventMailboxTimeout bounds the local activities that reach a mailbox
// (subscribe, return an event).
const eventMailboxTimeout = time.Minute

// eventWait is an event step waiting for its event.
type eventWait struct {
	token    string
	statusID string
	name     string
	key      string
	since    time.Time
	deadline *time.Time
	event    *events.Event
	// done is set once the step stopped waiting: a delivery after it is
	// returned to the mailbox.
	done bool
}

// eventsVersion marks the history of a run that uses the event-driven
// additions (see EventsChange).
func (r *run) eventsVersion(ctx workflow.Context) workflow.Version {
	v := workflow.GetVersion(ctx, EventsChange, workflow.DefaultVersion, eventsV1)
	if v == eventsV1 {
		r.events += versionEvents
	}
	return v
}

// eventStep waits for an event named st.Event whose key is st.Match:
// it subscribes with the (tenant, event, key) mailbox, which hands it the
// oldest event kept there or the next one to arrive. Output: the event's
// payload. On timeout the step fails, or, with on_timeout: continue,
// succeeds with a null output.
func (r *run) eventStep(ctx workflow.Context, sc *scope, st *definition.Step, id string) (stepOutcome, error) {
	if r.eventsVersion(ctx) < eventsV1 {
		return stepOutcome{}, fmt.Errorf("event steps need a newer worker")
	}
	key, err := evalString(st.Match, sc.env(r))
	if err != nil {
		return stepOutcome{}, fmt.Errorf("match: %w", err)
	}
	switch {
	case key == "":
		return stepOutcome{}, fmt.Errorf("match: gave an empty correlation key")
	case len(key) > definition.MaxCorrelationKey:
		return stepOutcome{}, fmt.Errorf("match: correlation key longer than %d bytes", definition.MaxCorrelationKey)
	}
	info := workflow.GetInfo(ctx)
	w := &eventWait{
		token:    fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.RunID, id, r.eventSeq),
		statusID: id,
		name:     st.Event,
		key:      key,
		since:    workflow.Now(ctx),
	}
	r.eventSeq++
	timeout := st.Timeout.Std()
	if timeout > 0 {
		d := w.since.Add(timeout)
		w.deadline = &d
	}
	r.eventWaits[w.token] = w
	r.eventOrder = append(r.eventOrder, w.token)
	defer r.endEventWait(ctx, w)
	r.status.setState(id, st.Kind, StepWaitingEvent)

	if err := r.subscribe(ctx, w); err != nil {
		return stepOutcome{}, fmt.Errorf("subscribe to event %s: %w", st.Event, err)
	}
	if timeout <= 0 {
		if err := workflow.Await(ctx, func() bool { return w.event != nil }); err != nil {
			return stepOutcome{}, err
		}
	} else {
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimerWithOptions(timerCtx, timeout, workflow.TimerOptions{Summary: "event timeout " + id})
		r.events += timerEvents
		err := workflow.Await(ctx, func() bool { return w.event != nil || timer.IsReady() })
		cancelTimer()
		if err != nil {
			return stepOutcome{}, err
		}
	}
	if w.event == nil {
		if st.OnTimeout == definition.OnTimeoutContinue {
			return stepOutcome{}, nil
		}
		return stepOutcome{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("no event %s with key %q within %s", st.Event, key, st.Timeout), ErrTypeEventTimedOut, nil)
	}
	var out any
	if len(w.event.Payload) > 0 {
		if err := jsonUnmarshal(w.event.Payload, &out); err != nil {
			return stepOutcome{}, fmt.Errorf("event payload is not JSON: %w", err)
		}
	}
	return stepOutcome{output: out}, nil
}

// subscribe registers w with its mailbox through a local activity (it
// signals-with-start the mailbox).
func (r *run) subscribe(ctx workflow.Context, w *eventWait) error {
	info := workflow.GetInfo(ctx)
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: eventMailboxTimeout,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second},
	})
	req := events.SubscribeRequest{Tenant: r.in.Meta.Tenant, Name: w.name, Key: w.key, Sub: events.Subscription{
		Token: w.token, WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, StepID: w.statusID, Since: w.since,
	}}
	r.events += localActivityEvents
	return workflow.ExecuteLocalActivity(lctx, events.SubscribeActivity, req).Get(lctx, nil)
}

// endEventWait forgets a wait that ended (event, timeout, cancellation);
// without its event it unsubscribes from the mailbox, so that the next
// event is kept for another step.
func (r *run) endEventWait(ctx workflow.Context, w *eventWait) {
	w.done = true
	delete(r.eventWaits, w.token)
	for i, t := range r.eventOrder {
		if t == w.token {
			r.eventOrder = append(r.eventOrder[:i:i], r.eventOrder[i+1:]...)
			break
		}
	}
	r.status.touch()
	if w.event != nil {
		return
	}
	// The mailbox holds the subscription, so it is running: a plain
	// signal reaches it. A failure only leaves a stale subscription, whose
	// delivery comes back here and is returned.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	r.events += 2
	if err := workflow.SignalExternalWorkflow(dctx, events.MailboxID(r.in.Meta.Tenant, w.name, w.key), "",
		events.UnsubscribeSignal, w.token).Get(dctx, nil); err != nil {
		r.log.Info("unsubscribe from event mailbox failed", "step", w.statusID, "error", err.Error())
	}
}

// onDelivered hands a delivered event to the step it is for, or returns it
// to its mailbox when that step stopped waiting.
func (r *run) onDelivered(ctx workflow.Context, d events.Delivery) {
	if w := r.eventWaits[d.Token]; w != nil && w.event == nil && !w.done {
		e := d.Event
		w.event = &e
		r.status.touch()
		return
	}
	r.returnEvent(ctx, d.Event)
}

// returnEvent gives an event back to its mailbox (front of its queue)
// through a local activity on a disconnected context, counted in
// r.recording so that the run does not close before it is done.
func (r *run) returnEvent(ctx workflow.Context, e events.Event) {
	r.recording++
	defer func() { r.recording-- }()
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	lctx := workflow.WithLocalActivityOptions(dctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: eventMailboxTimeout,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second},
	})
	r.events += localActivityEvents
	if err := workflow.ExecuteLocalActivity(lctx, events.ReturnActivity, events.ReturnRequest{Tenant: r.in.Meta.Tenant, Event: e}).Get(lctx, nil); err != nil {
		r.log.Warn("event could not be returned to its mailbox; it is lost", "event", e.Name, "id", e.ID, "error", err.Error())
	}
}

// drainDeliveries handles the deliveries already received but not yet
// read, before the run closes or continues as new.
func (r *run) drainDeliveries(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, events.DeliveredSignal)
	for {
		var d events.Delivery
		if !ch.ReceiveAsync(&d) {
			return
		}
		r.onDelivered(ctx, d)
	}
}

// pendingEvents lists the event steps waiting now, in start order.
func (r *run) pendingEvents() []PendingEvent {
	if len(r.eventOrder) == 0 {
		return nil
	}
	out := make([]PendingEvent, 0, len(r.eventOrder))
	for _, t := range r.eventOrder {
		w := r.eventWaits[t]
		if w == nil || w.event != nil {
			continue
		}
		out = append(out, PendingEvent{StepID: w.statusID, Event: w.name, Key: w.key, Since: w.since, Deadline: w.deadline})
	}
	return out
}
