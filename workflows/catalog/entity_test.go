package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/replicated"
	"github.com/gateflow/gateflow/workflows/wire"
)

type updateResult struct {
	rejected error
	res      Result
	err      error
}

func cb(r *updateResult) *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnReject: func(err error) { r.rejected = err },
		OnAccept: func() {},
		OnComplete: func(v any, err error) {
			r.err = err
			if res, ok := v.(Result); ok {
				r.res = res
			}
		},
	}
}

// published collects what the publish activity was given.
type published struct {
	mu   sync.Mutex
	recs []replicated.Record
}

func (p *published) fn(_ context.Context, in replicated.PublishInput) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recs = append(p.recs, in.Records...)
	return nil
}

func (p *published) keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.recs {
		out = append(out, r.Key)
	}
	return out
}

func newEnv(t *testing.T, e *Entity, pub *published) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(e.Run, workflow.RegisterOptions{Name: EntityWorkflow})
	env.RegisterActivityWithOptions(pub.fn, activity.RegisterOptions{Name: replicated.PublishActivity})
	return env
}

// TestEntityFlow drives an owner's entity through creation, publication,
// a subscription that needs approval (its workflow is started), a
// decision, a revocation, and continue-as-new carrying everything.
func TestEntityFlow(t *testing.T) {
	pub := &published{}
	env := newEnv(t, &Entity{}, pub)
	var started []SubscriptionInput
	env.RegisterWorkflowWithOptions(func(_ workflow.Context, in SubscriptionInput) error {
		started = append(started, in)
		return nil
	}, workflow.RegisterOptions{Name: SubscriptionWorkflow})
	var created, publish, badMove, sub, dup, decided, revoked, last updateResult
	step := func(d time.Duration, fn func()) { env.RegisterDelayedCallback(fn, d) }
	step(time.Second, func() {
		env.UpdateWorkflow(UpdateCreateAPI, "c", cb(&created), CreateAPIInput{Request: orchestrationAPI("invoices"), By: "ann"})
	})
	step(2*time.Second, func() {
		env.UpdateWorkflow(UpdateTransition, "p", cb(&publish), TransitionInput{API: "invoices", Version: "1", Request: wire.TransitionRequest{State: wire.StatePublished}, By: "ann"})
	})
	step(3*time.Second, func() {
		env.UpdateWorkflow(UpdateTransition, "bad", cb(&badMove), TransitionInput{API: "invoices", Version: "1", Request: wire.TransitionRequest{State: wire.StateRetired}})
	})
	step(4*time.Second, func() {
		env.UpdateWorkflow(UpdateSubscribe, "s", cb(&sub), SubscribeInput{ID: "sub_0123456789", API: "invoices", Consumer: "beta", Plan: "free", By: "carl"})
	})
	step(5*time.Second, func() {
		env.UpdateWorkflow(UpdateSubscribe, "s2", cb(&dup), SubscribeInput{ID: "sub_0000000001", API: "invoices", Consumer: "beta", Plan: "free"})
	})
	step(6*time.Second, func() {
		env.UpdateWorkflow(UpdateDecide, "d", cb(&decided), DecideInput{ID: "sub_0123456789", Approved: true, By: "ann"})
	})
	step(7*time.Second, func() {
		env.UpdateWorkflow(UpdateRevoke, "r", cb(&revoked), EndInput{ID: "sub_0123456789", By: "ann", Reason: "done"})
	})
	step(8*time.Second, func() {
		env.UpdateWorkflow(UpdateAddVersion, "v", cb(&last), AddVersionInput{API: "invoices", Spec: wire.APIVersionSpec{Version: "2", Target: wire.APITarget{Definition: "invoice", DefinitionVersion: "2"}}})
	})
	env.ExecuteWorkflow(EntityWorkflow, EntityInput{Owner: "acme", Topic: "t", ContinueAsNewAfter: 6})

	if created.rejected != nil || created.err != nil || created.res.API == nil || !created.res.Published || len(created.res.Records) != 1 {
		t.Fatalf("create: %+v", created)
	}
	if publish.err != nil || publish.res.API.Version("1").State != wire.StatePublished {
		t.Fatalf("publish: %+v", publish)
	}
	var ce *Error
	if !errors.As(FromUpdateError(badMove.rejected), &ce) || ce.Kind != ErrConflict || ce.Code != "invalid_transition" {
		t.Fatalf("published -> retired: %+v", badMove.rejected)
	}
	if sub.err != nil || sub.res.Subscription.State != wire.SubscriptionPending || len(started) != 1 || started[0].Subscription.ID != "sub_0123456789" {
		t.Fatalf("subscribe: %+v started %+v", sub, started)
	}
	if !errors.As(FromUpdateError(dup.rejected), &ce) || ce.Code != "subscription_pending" {
		t.Fatalf("second request: %v", dup.rejected)
	}
	if decided.err != nil || decided.res.Subscription.State != wire.SubscriptionActive {
		t.Fatalf("decide: %+v", decided)
	}
	if revoked.err != nil || revoked.res.Subscription.State != wire.SubscriptionRevoked {
		t.Fatalf("revoke: %+v", revoked)
	}
	if last.err != nil {
		t.Fatalf("add version: %+v", last)
	}
	// The sixth change made the run continue as new before it went out:
	// it is carried in the outbox and published by the next run.
	want := []string{"api/invoices", "api/invoices", "sub/sub_0123456789", "sub/sub_0123456789", "sub/sub_0123456789"}
	if got := pub.keys(); len(got) != len(want) {
		t.Fatalf("published %v, want %v", got, want)
	}

	// Six changes: the run continued as new, carrying state and sequence.
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next EntityInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	env2 := newEnv(t, &Entity{}, pub)
	env2.RegisterWorkflowWithOptions(func(workflow.Context, SubscriptionInput) error { return nil }, workflow.RegisterOptions{Name: SubscriptionWorkflow})
	var snap Snapshot
	var after updateResult
	env2.RegisterDelayedCallback(func() {
		v, err := env2.QueryWorkflow(QuerySnapshot)
		if err == nil {
			err = v.Get(&snap)
		}
		if err != nil {
			t.Error(err)
		}
		env2.UpdateWorkflow(UpdateTransition, "p2", cb(&after), TransitionInput{API: "invoices", Version: "2", Request: wire.TransitionRequest{State: wire.StatePublished}})
	}, time.Second)
	env2.RegisterDelayedCallback(env2.CancelWorkflow, 2*time.Second)
	env2.ExecuteWorkflow(EntityWorkflow, next)
	if len(snap.APIs) != 1 || len(snap.APIs[0].Versions) != 2 || len(snap.Subscriptions) != 1 || snap.Subscriptions[0].State != wire.SubscriptionRevoked {
		t.Fatalf("state after continue-as-new: %+v", snap)
	}
	if after.err != nil || after.res.Records[0].Seq != 7 {
		t.Fatalf("the sequence goes on after continue-as-new: %+v", after)
	}
	if got := pub.keys(); len(got) != 7 {
		t.Fatalf("published %v", got)
	}
	for i, r := range pub.recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d: one sequence per change, published in order, across runs", i, r.Seq)
		}
	}
}

// TestOutboxWaitsForKafka: while publishing fails, changes are accepted and
// answered Published=false after the bounded wait; once Kafka is back they
// go out in order.
func TestOutboxWaitsForKafka(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions((&Entity{}).Run, workflow.RegisterOptions{Name: EntityWorkflow})
	var mu sync.Mutex
	calls := 0
	var got []replicated.Record
	env.RegisterActivityWithOptions(func(_ context.Context, in replicated.PublishInput) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 8 { // the test environment caps unlimited retries at 10 attempts
			return errors.New("kafka down")
		}
		got = append(got, in.Records...)
		return nil
	}, activity.RegisterOptions{Name: replicated.PublishActivity})
	var a, b updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateCreateAPI, "a", cb(&a), CreateAPIInput{Request: orchestrationAPI("one")})
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateCreateAPI, "b", cb(&b), CreateAPIInput{Request: orchestrationAPI("two")})
	}, 2*time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)
	env.ExecuteWorkflow(EntityWorkflow, EntityInput{Owner: "acme", Topic: "t"})
	if a.err != nil || a.res.Published || b.res.Published {
		t.Fatalf("accepted while Kafka is down: %+v %+v", a, b)
	}
	if len(got) != 2 || got[0].Key != "api/one" || got[1].Key != "api/two" {
		t.Fatalf("published after recovery: %+v", got)
	}
}

// TestSubscriptionFlow runs the approval workflow with the interpreter
// mocked: the decision and who made it reach the owner's entity.
func TestSubscriptionFlow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		out      ApprovalOutcome
		err      error
		approved bool
		by       string
	}{
		{"approved", ApprovalOutcome{Decision: workflows.OutcomeApproved, Comment: "welcome", Votes: []wire.Vote{{By: wire.Identity{User: "ann"}, Decision: "approve"}}}, nil, true, "ann"},
		{"rejected", ApprovalOutcome{Decision: workflows.OutcomeRejected, Votes: []wire.Vote{{By: wire.Identity{KeyID: "k1"}, Decision: "reject"}}}, nil, false, "k1"},
		{"timed out", ApprovalOutcome{Decision: workflows.OutcomeRejected, TimedOut: true}, nil, false, "gateflow"},
		{"run failed", ApprovalOutcome{}, errors.New("boom"), false, "gateflow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(SubscriptionFlow, workflow.RegisterOptions{Name: SubscriptionWorkflow})
			var run workflows.OrchestrationInput
			env.RegisterWorkflowWithOptions(func(_ workflow.Context, in workflows.OrchestrationInput) (json.RawMessage, error) {
				run = in
				if tc.err != nil {
					return nil, tc.err
				}
				b, _ := json.Marshal(tc.out)
				return b, nil
			}, workflow.RegisterOptions{Name: workflows.OrchestrationWorkflow})
			var applied ApplyDecisionInput
			env.RegisterActivityWithOptions(func(_ context.Context, in ApplyDecisionInput) error { applied = in; return nil }, activity.RegisterOptions{Name: ApplyDecisionActivity})
			sub := Subscription{ID: "sub_0123456789", API: "invoices", Owner: "acme", Consumer: "beta", Plan: "free", State: wire.SubscriptionPending}
			env.ExecuteWorkflow(SubscriptionWorkflow, SubscriptionInput{Subscription: sub, Approval: wire.SubscriptionApproval{Approvers: wire.Approvers{Roles: []string{"admin"}}}})
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			if run.Meta.Tenant != "acme" || run.Definition.Name != approvalDefinition || run.Meta.Labels["consumer"] != "beta" {
				t.Fatalf("approval run: %+v", run.Meta)
			}
			d := applied.Decision
			if applied.Owner != "acme" || d.ID != sub.ID || d.Approved != tc.approved || d.By != tc.by {
				t.Fatalf("applied %+v", applied)
			}
		})
	}
}
