package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Sender sends events to their mailboxes. It is what POST /v1/events,
// webhooks and topic triggers call.
type Sender struct {
	c         client.Client
	taskQueue string
}

// NewSender returns a sender starting mailboxes on taskQueue (where the
// workers that registered them poll).
func NewSender(c client.Client, taskQueue string) *Sender {
	return &Sender{c: c, taskQueue: taskQueue}
}

// prepare fills in the id and time of e and checks it.
func prepare(e *Event) error {
	if e.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("event id: %w", err)
		}
		e.ID = id.String()
	}
	if e.SentAt.IsZero() {
		e.SentAt = time.Now().UTC()
	}
	e.ExpiresAt, e.Returned = time.Time{}, false
	return e.Check()
}

// Send hands e to its mailbox (signal-with-start): once it returns, the
// event is durably accepted and reaches a waiting step now, or the first
// one that waits within its TTL. It returns e's id (generated when empty).
func (s *Sender) Send(ctx context.Context, tenant string, e Event) (string, error) {
	if err := prepare(&e); err != nil {
		return "", err
	}
	id := MailboxID(tenant, e.Name, e.Key)
	if _, err := s.c.SignalWithStartWorkflow(ctx, id, EventSignal, e, s.startOptions(id), MailboxWorkflow,
		MailboxInput{Tenant: tenant, Name: e.Name, Key: e.Key}); err != nil {
		return "", fmt.Errorf("send event %s: %w", e.Name, err)
	}
	return e.ID, nil
}

// SendStrict delivers e only if a step waits for it right now, else
// returns ErrNoWaiter and keeps nothing. A duplicate (an id the mailbox
// remembers) is answered with Duplicate set.
func (s *Sender) SendStrict(ctx context.Context, tenant string, e Event) (string, DeliverResult, error) {
	if err := prepare(&e); err != nil {
		return "", DeliverResult{}, err
	}
	id := MailboxID(tenant, e.Name, e.Key)
	h, err := s.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: DeliverUpdate, Args: []any{e}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var res DeliverResult
	if err == nil {
		err = h.Get(ctx, &res)
	}
	var nf *serviceerror.NotFound
	var ae *temporal.ApplicationError
	switch {
	case err == nil:
		return e.ID, res, nil
	case errors.As(err, &nf), errors.As(err, &ae) && ae.Type() == ErrTypeNoWaiter:
		return e.ID, DeliverResult{}, fmt.Errorf("%w: %s with key %q", ErrNoWaiter, e.Name, e.Key)
	default:
		return e.ID, DeliverResult{}, fmt.Errorf("deliver event %s: %w", e.Name, err)
	}
}

func (s *Sender) startOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: s.taskQueue,
		// A completed mailbox is started again by the next event.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}
}

// Activities are the local activities through which orchestrations reach
// mailboxes (workflow code cannot signal-with-start).
type Activities struct {
	s *Sender
}

// NewActivities returns the activities, starting mailboxes on taskQueue.
func NewActivities(c client.Client, taskQueue string) *Activities {
	return &Activities{s: NewSender(c, taskQueue)}
}

// Subscribe registers a waiting step with its mailbox, starting it if
// needed.
func (a *Activities) Subscribe(ctx context.Context, req SubscribeRequest) error {
	id := MailboxID(req.Tenant, req.Name, req.Key)
	_, err := a.s.c.SignalWithStartWorkflow(ctx, id, SubscribeSignal, req.Sub, a.s.startOptions(id), MailboxWorkflow,
		MailboxInput{Tenant: req.Tenant, Name: req.Name, Key: req.Key})
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", id, err)
	}
	return nil
}

// Return gives an event back to its mailbox, at the front of its queue.
func (a *Activities) Return(ctx context.Context, req ReturnRequest) error {
	e := req.Event
	e.Returned = true
	id := MailboxID(req.Tenant, e.Name, e.Key)
	_, err := a.s.c.SignalWithStartWorkflow(ctx, id, EventSignal, e, a.s.startOptions(id), MailboxWorkflow,
		MailboxInput{Tenant: req.Tenant, Name: e.Name, Key: e.Key})
	if err != nil {
		return fmt.Errorf("return event to %s: %w", id, err)
	}
	return nil
}

// Register registers the mailbox workflow and the activities on a worker
// polling taskQueue.
func Register(r worker.Registry, c client.Client, taskQueue string) {
	r.RegisterWorkflowWithOptions(Mailbox, workflow.RegisterOptions{Name: MailboxWorkflow})
	a := NewActivities(c, taskQueue)
	r.RegisterActivityWithOptions(a.Subscribe, activity.RegisterOptions{Name: SubscribeActivity})
	r.RegisterActivityWithOptions(a.Return, activity.RegisterOptions{Name: ReturnActivity})
}
