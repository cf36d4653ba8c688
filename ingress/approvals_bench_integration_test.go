//go:build integration

package ingress

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// BenchmarkPendingApprovals compares, in the same run on one in-memory
// Temporal server, the approvals list as it is now (a visibility query on
// GateflowAwaiting, then a status query of the matches) with the scan it
// replaced (list every running workflow of the tenant, query each one's
// status, keep what the caller may decide). The tenant has
// GATEFLOW_BENCH_APPROVALS_OTHERS (default 400) running orchestrations
// waiting for someone else and 10 waiting for the caller.
//
//	go test -tags integration -run '^$' -bench PendingApprovals -benchtime 20x ./ingress/
func BenchmarkPendingApprovals(b *testing.B) {
	others := 400
	if v, err := strconv.Atoi(os.Getenv("GATEFLOW_BENCH_APPROVALS_OTHERS")); err == nil && v > 0 {
		others = v
	}
	const mine = 10
	ts := temporaltest.NewServer(
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}),
		temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
		})),
	)
	b.Cleanup(ts.Stop)
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := worker.EnsureSearchAttributes(ctx, c, ts.GetDefaultNamespace()); err != nil {
		b.Fatal(err)
	}
	var defs []*definition.Definition
	for _, y := range []string{
		"name: mine\nversion: \"1\"\nsteps:\n  - {id: ok, kind: approval, approvers: {roles: [finance]}}\n",
		"name: theirs\nversion: \"1\"\nsteps:\n  - {id: ok, kind: approval, approvers: {users: [ceo]}}\n",
	} {
		d, err := definition.Parse([]byte(y))
		if err != nil {
			b.Fatal(err)
		}
		defs = append(defs, d)
	}
	reg, err := sysconfig.NewStatic(sysconfig.Config{Tenants: map[string]sysconfig.Tenant{"acme": {}}}, defs...)
	if err != nil {
		b.Fatal(err)
	}
	const tq = "bench-approvals"
	w, err := worker.New(c, worker.Options{TaskQueue: tq, StopTimeout: time.Second}, worker.Deps{Services: reg})
	if err != nil {
		b.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	b.Cleanup(func() { stop(); <-wdone })
	orch, err := orchestrator.New(orchestrator.Options{
		Client: c, TaskQueue: tq, Definitions: staticDefinitions{reg},
		ValidateDefinition: func(string, *definition.Definition) error { return nil },
		ValidateInput:      func(*definition.Definition, json.RawMessage) error { return nil },
		ApprovalScanLimit:  others + mine + 1,
	})
	if err != nil {
		b.Fatal(err)
	}
	submitter := orchestrator.Caller{Tenant: "acme", KeyID: "k-sub", RequestID: "bench"}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range others + mine {
		name := "theirs"
		if i%(others/mine+1) == 0 {
			name = "mine"
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := orch.Start(ctx, submitter, orchestrator.StartRequest{Definition: name}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	// Every run waits on its approval and says so in visibility.
	query := fmt.Sprintf("GateflowTenant = 'acme' AND ExecutionStatus = 'Running' AND %s IS NOT NULL", workflows.SearchAttrAwaiting)
	for {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err != nil {
			b.Fatal(err)
		}
		if int(resp.GetCount()) == others+mine {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("%d of %d waiting", resp.GetCount(), others+mine)
		}
		time.Sleep(100 * time.Millisecond)
	}
	alice := orchestrator.Caller{Tenant: "acme", KeyID: "k-alice", User: "alice", Roles: []string{"approver", "finance"}}
	check := func(b *testing.B, items, scanned int) {
		if items != mine {
			b.Fatalf("%d approvals listed, want %d", items, mine)
		}
		b.ReportMetric(float64(scanned), "queried/op")
	}
	b.Run("awaiting-attribute", func(b *testing.B) {
		for b.Loop() {
			a, err := orch.PendingApprovals(ctx, alice)
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(a.Items), a.Scanned)
		}
	})
	b.Run("scan-every-running", func(b *testing.B) {
		for b.Loop() {
			items, scanned, err := scanEveryRunning(ctx, c, alice)
			if err != nil {
				b.Fatal(err)
			}
			check(b, items, scanned)
		}
	})
}

// scanEveryRunning is the approvals list as it was before GateflowAwaiting:
// every running orchestration of the tenant (100 per visibility call),
// each one's status queried with 8 in flight.
func scanEveryRunning(ctx context.Context, c client.Client, caller orchestrator.Caller) (items, scanned int, err error) {
	type target struct{ id, runID string }
	var targets []target
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 100, NextPageToken: token,
			Query: "WorkflowType = 'gateflow.Orchestration' AND GateflowTenant = 'acme' AND ExecutionStatus = 'Running'"})
		if err != nil {
			return 0, 0, err
		}
		for _, ex := range resp.Executions {
			targets = append(targets, target{ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId()})
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, 8)
	)
	for _, t := range targets {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			v, err := c.QueryWorkflow(ctx, t.id, t.runID, workflows.StatusQuery)
			var st workflows.Status
			if err == nil {
				err = v.Get(&st)
			}
			if err != nil {
				return
			}
			n := 0
			for _, p := range st.Pending {
				if orchestrator.MayDecide(caller, p, "") {
					n++
				}
			}
			mu.Lock()
			items += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	return items, len(targets), nil
}

// staticDefinitions serves the registry's config-dir definitions.
type staticDefinitions struct{ reg *sysconfig.Registry }

func (s staticDefinitions) Get(_ context.Context, _, name, version string) (definition.Definition, error) {
	d, ok := s.reg.Current().Definition(name, version)
	if !ok {
		return definition.Definition{}, fmt.Errorf("%s: %w", name, orchestrator.ErrNotFound)
	}
	return *d, nil
}

func (staticDefinitions) List(context.Context, string) ([]orchestrator.DefinitionInfo, error) {
	return nil, nil
}

func (staticDefinitions) Publish(context.Context, string, definition.Definition, string) (orchestrator.DefinitionInfo, error) {
	return orchestrator.DefinitionInfo{}, orchestrator.ErrForbidden
}
