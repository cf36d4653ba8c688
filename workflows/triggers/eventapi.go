package triggers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/workflows/events"
	"github.com/gateflow/gateflow/workflows/wire"
)

// StrictSender sends events, also strictly (*events.Sender).
type StrictSender interface {
	EventSender
	SendStrict(ctx context.Context, tenant string, e events.Event) (string, events.DeliverResult, error)
}

// Events serves POST /v1/events: it sends the caller's event to its
// mailbox and records it (kind event).
type Events struct {
	sender StrictSender
	rec    activities.Recorder
}

// NewEvents returns the API's event sender.
func NewEvents(s StrictSender, rec activities.Recorder) *Events {
	if rec == nil {
		rec = activities.NopRecorder{}
	}
	return &Events{sender: s, rec: rec}
}

// Send delivers req for tenant: to a waiting step, or into its mailbox
// until one waits (events.ErrInvalid for a bad event; with Strict,
// events.ErrNoWaiter when no step waits, and nothing is kept).
func (e *Events) Send(ctx context.Context, tenant, keyID string, req wire.EventRequest) (wire.EventAccepted, error) {
	at := time.Now()
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(string(req.TTL))
		if err != nil || d <= 0 {
			return wire.EventAccepted{}, fmt.Errorf("%w: ttl: must be a positive duration such as \"1h\"", events.ErrInvalid)
		}
		ttl = d
	}
	ev := events.Event{ID: req.ID, Name: req.Name, Key: req.Key, Payload: req.Payload, Source: "api", TTL: ttl}
	f := activities.Firing{Kind: calls.KindEvent, Tenant: tenant, Trigger: req.Name, At: at, ReqBytes: int64(len(req.Payload)),
		Outcome: activities.FiringOK, Labels: map[string]string{"source": "api", "key_id": keyID}}
	var out wire.EventAccepted
	var err error
	if req.Strict {
		var res events.DeliverResult
		out.ID, res, err = e.sender.SendStrict(ctx, tenant, ev)
		out.Delivered, out.Duplicate, out.StepID = res.Delivered, res.Duplicate, res.StepID
		if res.WorkflowID != "" {
			f.WorkflowID = res.WorkflowID
			if id, ok := cutTenant(tenant, res.WorkflowID); ok {
				out.WorkflowID = id
			}
		}
		f.Labels["result"] = "delivered"
	} else {
		out.ID, err = e.sender.Send(ctx, tenant, ev)
		f.Labels["result"] = "sent"
	}
	f.Latency = time.Since(at)
	if err != nil {
		if errors.Is(err, events.ErrNoWaiter) || errors.Is(err, events.ErrInvalid) {
			f.Outcome, f.Labels["result"] = activities.FiringRejected, ResultRejected
		} else {
			f.Outcome, f.Labels["result"] = activities.FiringError, ResultFailed
		}
		f.Error, f.ErrorClass = err.Error(), "event"
	}
	e.rec.Emit(f.Record())
	return out, err
}

func cutTenant(tenant, workflowID string) (string, bool) {
	if len(workflowID) > len(tenant)+1 && workflowID[:len(tenant)+1] == tenant+"/" {
		return workflowID[len(tenant)+1:], true
	}
	return "", false
}
