// Package events carries events to the event steps that wait for them.
//
// An event has a name (shipping.shipped), a correlation key (the order id)
// and a JSON payload. It comes from POST /v1/events, a webhook or a topic
// trigger, and resumes one event step of the same tenant whose event is the
// name and whose match evaluated to the key.
//
// Where an event waits: every (tenant, name, key) has a mailbox, a small
// Temporal entity workflow (MailboxWorkflow, id MailboxID) started on
// demand with signal-with-start by whoever comes first: the sender of an
// event or a step that starts waiting. The mailbox pairs them:
//
//   - an event that finds a waiting step is signalled to that step's
//     orchestration (DeliveredSignal) at once;
//   - an event that finds none is kept, in arrival order, until a step
//     subscribes (it gets the oldest) or the event's TTL passes
//     (DefaultTTL, at most MaxTTL; at most MaxQueued events and
//     MaxQueuedBytes per mailbox, the oldest dropped beyond);
//   - a step that finds no event subscribes and waits (its own timeout
//     unsubscribes it).
//
// Each event resumes exactly one step. A delivery that reaches an
// orchestration whose step stopped waiting in the meantime (timed out,
// cancelled) is returned to the mailbox, at the front of its queue, so an
// event is never lost between the two. Event ids are remembered for the
// event's TTL: an event sent again with the same id (a webhook redelivery)
// is dropped. A mailbox with nothing queued, no subscriber and no id to
// remember completes a minute later; the next event or subscription
// starts a new one.
//
// The mailbox lives in Temporal, so events survive restarts of every
// Gateflow process; they are kept in its history and state in clear, like
// orchestration inputs.
package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
)

// Names registered with Temporal: part of the wire contract with running
// mailboxes and orchestrations. Never change them.
const (
	// MailboxWorkflow is the workflow type of a mailbox.
	MailboxWorkflow = "gateflow.EventMailbox"
	// EventSignal carries an Event to a mailbox.
	EventSignal = "event"
	// SubscribeSignal carries a Subscription to a mailbox.
	SubscribeSignal = "subscribe"
	// UnsubscribeSignal carries the token of a subscription to cancel.
	UnsubscribeSignal = "unsubscribe"
	// DeliverUpdate delivers an Event only if a step waits for it now
	// (strict delivery); it answers a DeliverResult.
	DeliverUpdate = "deliver"
	// DeliveredSignal carries a Delivery from a mailbox to the
	// orchestration whose step it resumes.
	DeliveredSignal = "gateflow.event"
	// SubscribeActivity is the local activity through which an
	// orchestration subscribes (signal-with-start of the mailbox).
	SubscribeActivity = "gateflow.EventSubscribe"
	// ReturnActivity is the local activity through which an orchestration
	// gives back an event its step no longer waits for.
	ReturnActivity = "gateflow.EventReturn"
	// MailboxIDPrefix starts every mailbox workflow id.
	MailboxIDPrefix = "gateflow-events/"
)

// Application error types of the DeliverUpdate.
const (
	// ErrTypeNoWaiter: no step waits for the event (strict delivery).
	ErrTypeNoWaiter = "NoWaiter"
	// ErrTypeMismatch: the event's name or key is not the mailbox's.
	ErrTypeMismatch = "EventMismatch"
)

// Bounds of events and mailboxes.
const (
	// DefaultTTL is how long an event nobody waits for is kept.
	DefaultTTL = 24 * time.Hour
	// MaxTTL bounds an event's TTL.
	MaxTTL = 7 * 24 * time.Hour
	// MaxQueued bounds the events one mailbox keeps; beyond, the oldest
	// is dropped.
	MaxQueued = 100
	// MaxQueuedBytes bounds the payload bytes one mailbox keeps.
	MaxQueuedBytes = 1 << 20
	// MaxPayload bounds one event's payload.
	MaxPayload = 256 << 10
	// MaxIDLength bounds an event id.
	MaxIDLength = 255
	// maxRemembered bounds the event ids a mailbox remembers.
	maxRemembered = 10_000
	// idleGrace is how long an idle mailbox stays open for the next event
	// or subscription before it completes (bursts reuse one run).
	idleGrace = time.Minute
	// continueAsNewAfter is the history length past which a mailbox
	// continues as new.
	continueAsNewAfter = 2000
)

// Event is one event on its way to an event step.
type Event struct {
	// ID identifies the event for deduplication: the sender's delivery id,
	// or one chosen by the sender of POST /v1/events, or a fresh one.
	ID   string `json:"id"`
	Name string `json:"name"`
	Key  string `json:"key"`
	// Payload becomes the output of the step it resumes.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Source says where it came from: "api", "webhook:<name>",
	// "topic:<trigger>".
	Source string `json:"source,omitempty"`
	// SentAt is when the sender accepted it (the sender's clock).
	SentAt time.Time `json:"sent_at"`
	// TTL is how long it is kept while no step waits (DefaultTTL when
	// zero).
	TTL time.Duration `json:"ttl,omitempty"`
	// ExpiresAt is set by the mailbox when it keeps the event.
	ExpiresAt time.Time `json:"expires_at,omitempty"`
	// Returned is set on an event given back by an orchestration whose
	// step stopped waiting: it goes to the front of the queue and is not
	// deduplicated again.
	Returned bool `json:"returned,omitempty"`
}

// Subscription is a step waiting for an event.
type Subscription struct {
	// Token identifies this wait; the Delivery carries it back.
	Token      string    `json:"token"`
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	StepID     string    `json:"step_id"`
	Since      time.Time `json:"since"`
}

// Delivery is what a mailbox signals to the orchestration of a waiting
// step.
type Delivery struct {
	Token string `json:"token"`
	Event Event  `json:"event"`
}

// DeliverResult answers the DeliverUpdate.
type DeliverResult struct {
	// Delivered is true when a waiting step received the event;
	// Duplicate when an event with its id was seen already.
	Delivered  bool   `json:"delivered"`
	Duplicate  bool   `json:"duplicate,omitempty"`
	WorkflowID string `json:"workflow_id,omitempty"`
	StepID     string `json:"step_id,omitempty"`
}

// MailboxInput starts (or continues) a mailbox.
type MailboxInput struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	Key    string `json:"key"`
	// State is set only by continue-as-new.
	State *MailboxState `json:"state,omitempty"`
}

// MailboxState is what a mailbox carries across continue-as-new.
type MailboxState struct {
	Queue []Event        `json:"queue,omitempty"`
	Subs  []Subscription `json:"subs,omitempty"`
	// Seen maps remembered event ids to when they are forgotten.
	Seen map[string]time.Time `json:"seen,omitempty"`
}

// SubscribeRequest is the input of SubscribeActivity.
type SubscribeRequest struct {
	Tenant string       `json:"tenant"`
	Name   string       `json:"name"`
	Key    string       `json:"key"`
	Sub    Subscription `json:"sub"`
}

// ReturnRequest is the input of ReturnActivity.
type ReturnRequest struct {
	Tenant string `json:"tenant"`
	Event  Event  `json:"event"`
}

// Errors of senders.
var (
	// ErrInvalid: the event cannot be sent as given (bad name, empty key,
	// payload too large, ...).
	ErrInvalid = errors.New("invalid event")
	// ErrNoWaiter: strict delivery found no step waiting for the event.
	ErrNoWaiter = errors.New("no step waits for this event")
)

var safeKey = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// MailboxID returns the workflow id of the mailbox of (tenant, name, key).
// Keys that are not short and plain are hashed, so the id stays valid for
// any key.
func MailboxID(tenant, name, key string) string {
	k := key
	if !safeKey.MatchString(key) {
		sum := sha256.Sum256([]byte(key))
		k = "sha256-" + hex.EncodeToString(sum[:20])
	}
	return MailboxIDPrefix + tenant + "/" + name + "/" + k
}

// Check reports what makes an event unsendable, naming the field.
func (e *Event) Check() error {
	switch {
	case !definition.EventNamePattern.MatchString(e.Name):
		return fmt.Errorf("%w: name %q: must be 1-128 letters, digits, '.', '_', ':' or '-'", ErrInvalid, e.Name)
	case e.Key == "":
		return fmt.Errorf("%w: key: must not be empty", ErrInvalid)
	case len(e.Key) > definition.MaxCorrelationKey:
		return fmt.Errorf("%w: key: longer than %d bytes", ErrInvalid, definition.MaxCorrelationKey)
	case len(e.ID) > MaxIDLength:
		return fmt.Errorf("%w: id: longer than %d bytes", ErrInvalid, MaxIDLength)
	case len(e.Payload) > MaxPayload:
		return fmt.Errorf("%w: payload: larger than %d bytes", ErrInvalid, MaxPayload)
	case e.TTL < 0 || e.TTL > MaxTTL:
		return fmt.Errorf("%w: ttl: must be between 0 and %s", ErrInvalid, MaxTTL)
	case len(e.Payload) > 0 && !json.Valid(e.Payload):
		return fmt.Errorf("%w: payload: not valid JSON", ErrInvalid)
	}
	return nil
}

func (e *Event) ttl() time.Duration {
	if e.TTL <= 0 {
		return DefaultTTL
	}
	return e.TTL
}
