package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// Update is one element of a Watch stream: a new status, or an error that
// did not end the stream (Temporal briefly unavailable, a query timeout).
type Update struct {
	Status Status
	Err    error
}

// Watch streams the status of a workflow of the caller's tenant: the
// current status at once, then every change, until the workflow closes
// (after its final status) or ctx ends. The channel is closed when the
// stream ends. A workflow that does not exist is an error at once.
//
// How changes are noticed: a long poll on the run's history wakes the
// watcher at every new event (a step scheduled or finished, an update, a
// timer); the status query is then asked again, at most once per
// WatchMinInterval. If the long poll fails, the watcher falls back to
// polling with backoff up to WatchMaxInterval. A continued-as-new run is
// followed. An idle workflow costs one open long poll and nothing else.
//
// The caller must cancel ctx to stop watching early; every goroutine Watch
// starts has ended when the channel is closed.
func (o *Orchestrator) Watch(ctx context.Context, caller Caller, id string) (<-chan Update, error) {
	if err := checkCaller(caller); err != nil {
		return nil, err
	}
	desc, err := o.describe(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	out := make(chan Update)
	go o.watch(ctx, caller, id, desc, out)
	return out, nil
}

func (o *Orchestrator) watch(ctx context.Context, caller Caller, id string, desc *client.WorkflowExecutionDescription, out chan<- Update) {
	defer close(out)
	send := func(u Update) bool {
		select {
		case out <- u:
			return true
		case <-ctx.Done():
			return false
		}
	}

	hist := o.follow(ctx, WorkflowID(caller.Tenant, id), desc.WorkflowExecution.RunID)
	defer func() { hist.stop() }()

	var last []byte
	backoff := o.opts.WatchMinInterval
	for {
		fetched := time.Now()
		failed := false
		st, err := o.statusOf(ctx, id, desc)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrNotFound):
			send(Update{Err: err})
			return
		case err != nil:
			failed = true
			if !send(Update{Err: err}) {
				return
			}
		default:
			b, _ := json.Marshal(st)
			if !bytes.Equal(b, last) {
				if !send(Update{Status: st}) {
					return
				}
				last = b
				backoff = o.opts.WatchMinInterval
			}
			if desc.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				return
			}
		}

		for {
			// Wait for a history event, or poll with backoff when the long
			// poll is gone or the last attempt failed.
			changed := hist.changed
			if failed {
				changed = nil
			}
			wait := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-changed:
				wait.Stop()
			case <-wait.C:
				backoff = min(backoff*2, o.opts.WatchMaxInterval)
			}
			// Coalesce bursts of events into one query.
			if !sleep(ctx, o.opts.WatchMinInterval-time.Since(fetched)) {
				return
			}
			d, err := o.describe(ctx, caller, id)
			if err == nil {
				running := d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
				if running && (d.WorkflowExecution.RunID != desc.WorkflowExecution.RunID || hist.ended()) {
					hist.stop()
					hist = o.follow(ctx, WorkflowID(caller.Tenant, id), d.WorkflowExecution.RunID)
				}
				desc = d
				break
			}
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrNotFound) || !send(Update{Err: err}) {
				return
			}
			failed = true
		}
	}
}

// sleep waits d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// history is a long poll on one run's history that signals new events.
type history struct {
	changed chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc
}

// follow starts a long poll on runID's history. changed receives a value
// (coalesced) after new events; done is closed when the poll ends (run
// closed, error or stop).
func (o *Orchestrator) follow(ctx context.Context, wid, runID string) *history {
	ctx, cancel := context.WithCancel(ctx)
	h := &history{changed: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(h.done)
		it := o.c.GetWorkflowHistory(ctx, wid, runID, true, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			if _, err := it.Next(); err != nil {
				break
			}
			select {
			case h.changed <- struct{}{}:
			default:
			}
		}
		// Wake the watcher once more so it notices the end.
		select {
		case h.changed <- struct{}{}:
		default:
		}
	}()
	return h
}

// ended reports whether the long poll has stopped.
func (h *history) ended() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// stop ends the long poll and waits for its goroutine.
func (h *history) stop() {
	h.cancel()
	<-h.done
}
