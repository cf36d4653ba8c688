// Package triggers turns what comes from outside into orchestrations:
// messages of Kafka topics (topic triggers, consumed by the worker or a
// `gateflow triggers` process), deliveries to webhooks (POST
// /v1/hooks/{name}) and events sent to POST /v1/events. Each either starts
// an orchestration of a definition or sends an event to the event steps
// waiting for it (workflows/events), and each is recorded as a call record
// of its kind (topic, webhook, event).
//
// Starts are deduplicated by Temporal itself: the workflow id is derived
// from the trigger and the message's topic/partition/offset (or its key
// expression), or the webhook's delivery id, through the orchestrator's
// idempotency key, so a redelivered message or a replayed delivery starts
// nothing twice for as long as Temporal keeps the closed workflow (the
// namespace's retention).
package triggers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/events"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// Starter starts orchestrations (*orchestrator.Orchestrator).
type Starter interface {
	Start(ctx context.Context, c orchestrator.Caller, req orchestrator.StartRequest) (orchestrator.StartResult, error)
}

// EventSender sends events (*events.Sender).
type EventSender interface {
	Send(ctx context.Context, tenant string, e events.Event) (string, error)
}

// Snapshots gives the current configuration (*sysconfig.Registry).
type Snapshots interface {
	Current() *sysconfig.Snapshot
}

// Results of one message or delivery (the "result" label of its record).
const (
	ResultStarted    = "started"
	ResultDuplicate  = "duplicate"
	ResultEvent      = "event"
	ResultFiltered   = "filtered"
	ResultDeadLetter = "dead_letter"
	ResultRejected   = "rejected"
	ResultFailed     = "failed"
)

// ErrPoison marks a message or delivery that can never be handled as it
// is (bad JSON, a mapping that fails, an input the definition refuses, an
// unknown definition): a topic trigger dead-letters it, a webhook answers
// 422.
var ErrPoison = errors.New("cannot be handled")

// action is a trigger's start or event action.
type action struct {
	kind   calls.Kind
	tenant string
	name   string
	start  *sysconfig.StartAction
	event  *sysconfig.EventAction
	// dflt is the expression of the default input or payload
	// ("input.value" for topics, "input.body" for webhooks).
	dflt string
}

// outcome is what an action did.
type outcome struct {
	result     string
	workflowID string // API id
	runID      string
	definition string
	version    string
	eventID    string
}

// fire runs the action for one input. dedup identifies the message or
// delivery (the idempotency key of a start, the id of an event); labels
// go into the started orchestration's records (they must be a function of
// the message, so that a redelivery hashes the same).
func (a action) fire(ctx context.Context, st Starter, es EventSender, input map[string]any, dedup string, labels map[string]string) (outcome, error) {
	env := definition.Env{definition.EnvInput: input}
	if a.start != nil {
		var in any
		var err error
		if a.start.Input != nil {
			in, err = definition.EvalTemplate(a.start.Input, env)
		} else {
			in, err = definition.EvalValue(a.dflt, env)
		}
		if err != nil {
			return outcome{}, fmt.Errorf("%w: start.input: %w", ErrPoison, err)
		}
		raw, err := json.Marshal(in)
		if err != nil {
			return outcome{}, fmt.Errorf("%w: start.input: %w", ErrPoison, err)
		}
		l := map[string]string{calls.LabelTrigger: activities.TriggerLabel(a.kind, a.name)}
		for k, v := range labels {
			l[k] = v
		}
		res, err := st.Start(ctx, orchestrator.Caller{Tenant: a.tenant, KeyID: string(a.kind) + ":" + a.name, RequestID: dedup},
			orchestrator.StartRequest{Definition: a.start.Definition, Version: a.start.Version, Input: raw, IdempotencyKey: idempotencyKey(a.kind, a.name, dedup), Labels: l})
		switch {
		case err == nil:
			out := outcome{result: ResultStarted, workflowID: res.ID, runID: res.RunID, definition: res.Definition, version: res.Version}
			if !res.Created {
				out.result = ResultDuplicate
			}
			return out, nil
		case errors.Is(err, orchestrator.ErrConflict):
			// The key was used by another message: one orchestration per
			// key, as the trigger's id expression asks.
			return outcome{result: ResultDuplicate, workflowID: orchestrator.IdempotentID(a.tenant, idempotencyKey(a.kind, a.name, dedup))}, nil
		case permanent(err):
			return outcome{}, fmt.Errorf("%w: %w", ErrPoison, err)
		default:
			return outcome{}, err
		}
	}
	key, err := definition.EvalString(a.event.Key, env)
	if err != nil {
		return outcome{}, fmt.Errorf("%w: event.key: %w", ErrPoison, err)
	}
	var payload any
	if a.event.Payload != nil {
		payload, err = definition.EvalTemplate(a.event.Payload, env)
	} else {
		payload, err = definition.EvalValue(a.dflt, env)
	}
	if err != nil {
		return outcome{}, fmt.Errorf("%w: event.payload: %w", ErrPoison, err)
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return outcome{}, fmt.Errorf("%w: event.payload: %w", ErrPoison, err)
	}
	id, err := es.Send(ctx, a.tenant, events.Event{ID: eventID(a.kind, a.name, dedup), Name: a.event.Name, Key: key, Payload: raw,
		Source: activities.TriggerLabel(a.kind, a.name), TTL: a.event.TTL.Std()})
	switch {
	case err == nil:
		return outcome{result: ResultEvent, eventID: id}, nil
	case errors.Is(err, events.ErrInvalid):
		return outcome{}, fmt.Errorf("%w: %w", ErrPoison, err)
	default:
		return outcome{}, err
	}
}

// permanent reports errors that retrying the same start cannot fix.
func permanent(err error) bool {
	var ve *definition.ValidationError
	return errors.As(err, &ve) || errors.Is(err, orchestrator.ErrInvalid) || errors.Is(err, orchestrator.ErrNotFound) ||
		errors.Is(err, orchestrator.ErrForbidden)
}

// idempotencyKey is the orchestrator idempotency key of a message or
// delivery: the workflow id derives from it.
func idempotencyKey(kind calls.Kind, name, dedup string) string {
	k := string(kind) + ":" + name + ":" + dedup
	if len(k) > orchestrator.MaxIdempotencyKey {
		sum := sha256.Sum256([]byte(k))
		k = string(kind) + ":" + name + ":sha256:" + hex.EncodeToString(sum[:])
	}
	return k
}

// eventID is the id of the event a message or delivery sends, so that a
// redelivery is dropped by the mailbox.
func eventID(kind calls.Kind, name, dedup string) string {
	sum := sha256.Sum256([]byte(string(kind) + "\x00" + name + "\x00" + dedup))
	return string(kind) + "-" + hex.EncodeToString(sum[:16])
}

// firing builds the record of one message or delivery.
func (a action) firing(at time.Time, o outcome, err error) activities.Firing {
	f := activities.Firing{Kind: a.kind, Tenant: a.tenant, Trigger: a.name, At: at, Latency: time.Since(at),
		Definition: o.definition, Version: o.version, RunID: o.runID, Outcome: activities.FiringOK,
		Labels: map[string]string{"result": o.result}}
	if o.workflowID != "" {
		f.WorkflowID = orchestrator.WorkflowID(a.tenant, o.workflowID)
	}
	if a.start != nil && f.Definition == "" {
		f.Definition = a.start.Definition
	}
	if o.eventID != "" {
		f.Labels["event_id"] = o.eventID
	}
	if err != nil {
		f.Outcome, f.ErrorClass, f.Error = activities.FiringError, "start_failed", err.Error()
		if errors.Is(err, ErrPoison) {
			f.ErrorClass = "poison"
		}
	}
	return f
}
