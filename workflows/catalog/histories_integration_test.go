//go:build integration

package catalog

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/gateflow/gateflow/activities"
	gfworker "github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/apikeys"
	"github.com/gateflow/gateflow/workflows/replicated"
	"github.com/gateflow/gateflow/workflows/wire"
)

// update rewrites the recorded histories:
//
//	go test -tags integration -run TestRecordHistories ./workflows/catalog/ -update
var update = flag.Bool("update", false, "rewrite testdata/histories (and apikeys') from this run")

const (
	historiesDir     = "testdata/histories"
	keysHistoriesDir = "../apikeys/testdata/histories"
)

// TestRecordHistories drives the catalogue's workflows against a real
// server (an owner's entity through creation, publication, a subscription
// approved in the interpreter, a revocation and continue-as-new; the
// subscription's approval workflow; the name claims; a tenant's keys),
// replays each history, and with -update stores them for the replay tests.
func TestRecordHistories(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t),
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}),
		temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			dynamicconfig.TimerProcessorMaxTimeShift.Key():              []dynamicconfig.ConstrainedValue{{Value: 10 * time.Millisecond}},
		})))
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := gfworker.EnsureSearchAttributes(ctx, c, ts.GetDefaultNamespace()); err != nil {
		t.Fatal(err)
	}
	const queue = "catalog-histories"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions((&Entity{}).Run, workflow.RegisterOptions{Name: EntityWorkflow})
	w.RegisterWorkflowWithOptions((&Names{}).Run, workflow.RegisterOptions{Name: NamesWorkflow})
	w.RegisterWorkflowWithOptions(SubscriptionFlow, workflow.RegisterOptions{Name: SubscriptionWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Orchestration, workflow.RegisterOptions{Name: workflows.OrchestrationWorkflow})
	w.RegisterWorkflowWithOptions((&apikeys.Entity{}).Run, workflow.RegisterOptions{Name: apikeys.EntityWorkflow})
	w.RegisterActivityWithOptions(func(context.Context, replicated.PublishInput) error { return nil }, activity.RegisterOptions{Name: replicated.PublishActivity})
	w.RegisterActivityWithOptions(func(context.Context, activities.ApprovalRecord) error { return nil }, activity.RegisterOptions{Name: activities.RecordApprovalActivity})
	w.RegisterActivityWithOptions(NewApplier(c, queue, "t").Apply, activity.RegisterOptions{Name: ApplyDecisionActivity})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	up := func(e replicated.Entity, name string, arg any) Result {
		t.Helper()
		var res Result
		if err := replicated.Update(ctx, c, e, name, arg, &res); err != nil {
			t.Fatalf("%s: %v", name, FromUpdateError(err))
		}
		return res
	}
	acme := entityRef("acme", queue, "t")
	acme.Input = EntityInput{Owner: "acme", Topic: "t", ContinueAsNewAfter: 5}
	names := replicated.Entity{ID: NamesWorkflowID, Type: NamesWorkflow, TaskQueue: queue, Input: NamesInput{}}
	if err := replicated.Update(ctx, c, names, UpdateClaimName, ClaimInput{Name: "invoices", Owner: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	up(acme, UpdateCreateAPI, CreateAPIInput{Request: orchestrationAPI("invoices"), By: "ann"})
	up(acme, UpdateTransition, TransitionInput{API: "invoices", Version: "1", Request: wire.TransitionRequest{State: wire.StatePublished}, By: "ann"})
	sub := up(acme, UpdateSubscribe, SubscribeInput{ID: "sub_0123456789", API: "invoices", Consumer: "beta", Plan: "free", By: "bob"}).Subscription
	runID := "acme/" + sub.WorkflowID
	waitFor(t, 30*time.Second, func() bool {
		v, err := c.QueryWorkflow(ctx, runID, "", workflows.StatusQuery)
		var st workflows.Status
		return err == nil && v.Get(&st) == nil && len(st.Pending) == 1
	})
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: runID, UpdateName: workflows.DecideUpdate, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{workflows.Decision{StepID: ApprovalStep, Decision: workflows.Approve, Comment: "ok", By: workflows.Identity{KeyID: "k1", User: "ann", Roles: []string{"admin"}}}}})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		v, err := c.QueryWorkflow(ctx, EntityID("acme"), "", QuerySnapshot)
		var snap Snapshot
		return err == nil && v.Get(&snap) == nil && len(snap.Subscriptions) == 1 && snap.Subscriptions[0].State == wire.SubscriptionActive
	})
	// A second request, cancelled while pending: its approval is stopped.
	pending := up(acme, UpdateSubscribe, SubscribeInput{ID: "sub_0000000002", API: "invoices", Consumer: "gamma", Plan: "gold", By: "gil"}).Subscription
	up(acme, UpdateCancel, EndInput{ID: pending.ID, Consumer: "gamma", By: "gil", Reason: "changed my mind"})
	up(acme, UpdateRevoke, EndInput{ID: sub.ID, By: "ann", Reason: "end of trial"}) // the fifth change: continue-as-new
	up(acme, UpdateAddVersion, AddVersionInput{API: "invoices", Spec: wire.APIVersionSpec{Version: "2", Target: wire.APITarget{Definition: "invoice", DefinitionVersion: "2"}}})

	keys := replicated.Entity{ID: apikeys.EntityID("beta"), Type: apikeys.EntityWorkflow, TaskQueue: queue, Input: apikeys.EntityInput{Tenant: "beta", Topic: "k"}}
	key := apikeys.Key{ID: "abcd1234", Hash: "sha256:" + fmt.Sprintf("%064d", 7), Tenant: "beta", Roles: []string{"submitter"}, App: "mobile"}
	if err := replicated.Update(ctx, c, keys, apikeys.UpdateCreate, apikeys.CreateInput{Key: key, By: "bob"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := replicated.Update(ctx, c, keys, apikeys.UpdateDisable, apikeys.DisableInput{ID: key.ID, By: "bob", Reason: "rotated"}, nil); err != nil {
		t.Fatal(err)
	}

	// Let the approval workflows finish, then stop the entities so that
	// their histories end.
	for _, id := range []string{SubscriptionIDPrefix + sub.ID, SubscriptionIDPrefix + pending.ID} {
		_ = c.GetWorkflow(ctx, id, "").Get(ctx, nil)
	}
	for _, id := range []string{EntityID("acme"), NamesWorkflowID, apikeys.EntityID("beta")} {
		if err := c.TerminateWorkflow(ctx, id, "", "recorded"); err != nil {
			t.Fatal(err)
		}
	}

	histories := map[string]*historypb.History{}
	record := func(name, id string) {
		runs := fetchRuns(t, c, id)
		for i, h := range runs {
			n := name
			if len(runs) > 1 {
				n = fmt.Sprintf("%s.run%d", name, i+1)
			}
			histories[n] = h
		}
	}
	record("entity", EntityID("acme"))
	record("names", NamesWorkflowID)
	record("subscription_approved", SubscriptionIDPrefix+sub.ID)
	record("subscription_cancelled", SubscriptionIDPrefix+pending.ID)
	record("keys", apikeys.EntityID("beta"))
	if len(histories) < 6 {
		t.Fatalf("histories: %d (the entity should have continued as new)", len(histories))
	}

	replayer := newReplayer()
	replayer.RegisterWorkflowWithOptions((&apikeys.Entity{}).Run, workflow.RegisterOptions{Name: apikeys.EntityWorkflow})
	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for name, h := range histories {
		if err := replayer.ReplayWorkflowHistory(quiet, h); err != nil {
			t.Errorf("replay %s: %v", name, err)
		}
	}
	if !*update {
		return
	}
	for _, dir := range []string{historiesDir, keysHistoriesDir} {
		old, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, f := range old {
			_ = os.Remove(f)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, h := range histories {
		dir := historiesDir
		if name == "keys" {
			dir = keysHistoriesDir
		}
		b, err := temporalproto.CustomJSONMarshalOptions{Indent: " "}.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d histories", len(histories))
}

func waitFor(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fetchRuns returns the history of the latest chain of runs of id, first
// run first.
func fetchRuns(t *testing.T, c client.Client, id string) []*historypb.History {
	t.Helper()
	desc, err := c.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	first := desc.WorkflowExecutionInfo.GetFirstRunId()
	var out []*historypb.History
	for runID := first; runID != "" && len(out) < 20; {
		it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		h := &historypb.History{}
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			h.Events = append(h.Events, ev)
		}
		out = append(out, h)
		runID = ""
		if n := len(h.Events); n > 0 {
			if can := h.Events[n-1].GetWorkflowExecutionContinuedAsNewEventAttributes(); can != nil {
				runID = can.GetNewExecutionRunId()
			}
		}
	}
	return out
}
