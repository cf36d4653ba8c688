//go:build integration

package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
	ingclient "github.com/gateflow/gateflow/ingress/client"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/registry"
)

// env is a real stack: Temporal (temporaltest), the orchestration worker,
// the registry (with the registry entity workflow) and the ingress served
// on a loopback port.
type env struct {
	t      *testing.T
	c      client.Client
	url    string
	rec    *recordtest.Sink
	orch   *orchestrator.Orchestrator
	defs   orchestrator.Definitions
	ctx    context.Context
	calls  *sync.Map // service hits by path
	cancel context.CancelFunc
}

const orderYAML = `
name: order
version: "1"
description: reserve, approve, charge
input_schema:
  type: object
  properties:
    amount: {type: number, minimum: 0}
  required: [amount]
  additionalProperties: false
steps:
  - id: reserve
    kind: http
    service: inventory
    method: POST
    path: /reserve
    body: {amount: "${{ input.amount }}"}
  - id: approve
    kind: approval
    approvers: {roles: [approver]}
  - id: charge
    kind: http
    service: inventory
    method: POST
    path: /charge
output:
  reserved: "${{ steps.reserve.output.status }}"
  decision: "${{ steps.approve.output.decision }}"
`

const userApprovalYAML = `
name: boss
version: "1"
steps:
  - id: sign
    kind: approval
    approvers: {users: [ceo]}
`

func newEnv(t *testing.T) *env {
	t.Helper()
	ts := temporaltest.NewServer(
		temporaltest.WithT(t),
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}),
		temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			dynamicconfig.TimerProcessorMaxTimeShift.Key():              []dynamicconfig.ConstrainedValue{{Value: 10 * time.Millisecond}},
		})),
	)
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	if err := worker.EnsureSearchAttributes(ctx, c, ts.GetDefaultNamespace()); err != nil {
		t.Fatal(err)
	}

	calls := &sync.Map{}
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := calls.LoadOrStore(r.URL.Path, new(int))
		*(n.(*int))++
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(svc.Close)

	var defs []*definition.Definition
	for _, y := range []string{orderYAML, userApprovalYAML} {
		d, err := definition.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		defs = append(defs, d)
	}
	reg, err := sysconfig.NewStatic(sysconfig.Config{
		Services: map[string]sysconfig.Service{"inventory": {BaseURL: svc.URL}},
		Tenants: map[string]sysconfig.Tenant{
			"acme": {AllowInlineDefinitions: true, RateLimit: sysconfig.RateLimit{RPS: 1000, Burst: 1000}, KeyRateLimit: sysconfig.RateLimit{RPS: 1000, Burst: 1000},
				Uses: sysconfig.Uses{Services: []string{"inventory"}, Definitions: []string{sysconfig.All}}},
			"other": {RateLimit: sysconfig.RateLimit{RPS: 1000, Burst: 1000}, KeyRateLimit: sysconfig.RateLimit{RPS: 1000, Burst: 1000},
				Uses: sysconfig.Uses{Services: []string{"inventory"}, Definitions: []string{sysconfig.All}}},
			"tiny": {RateLimit: sysconfig.RateLimit{RPS: 5, Burst: 3}, Uses: sysconfig.Uses{Definitions: []string{sysconfig.All}}},
			// scoped may start the config dir's definitions but call no service.
			"scoped": {AllowInlineDefinitions: true, Uses: sysconfig.Uses{Definitions: []string{sysconfig.All}}},
		},
	}, defs...)
	if err != nil {
		t.Fatal(err)
	}

	const tq = "ingress-it"
	w, err := worker.New(c, worker.Options{TaskQueue: tq, StopTimeout: time.Second}, worker.Deps{
		Services: reg,
		Register: []func(sdkworker.Registry){func(r sdkworker.Registry) { registry.RegisterWorkflows(r, reg) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	t.Cleanup(func() { stopWorker(); <-wdone })

	store := registry.NewStore(c, reg, nil, registry.WithTaskQueue(tq), registry.WithCacheTTL(0))
	orch, err := orchestrator.New(orchestrator.Options{
		Client: c, TaskQueue: tq,
		Definitions:        orchestrator.RegistryDefinitions(store),
		Policies:           reg,
		ValidateDefinition: reg.ValidateFor,
		ValidateInput:      func(d *definition.Definition, in json.RawMessage) error { return d.ValidateInput(in) },
		WatchMinInterval:   20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordtest.Sink{}
	keys := testStore(t)
	limits := func(get func(sysconfig.Tenant) sysconfig.RateLimit) func(string) (ratelimit.Limit, bool) {
		return func(tenant string) (ratelimit.Limit, bool) {
			l := get(reg.Current().Tenant(tenant))
			return ratelimit.Limit{RPS: l.RPS, Burst: l.Burst, Unlimited: l.Unlimited}, true
		}
	}
	srv, err := New(Deps{
		Orchestrator: orch, Keys: keys, Recorder: rec,
		TenantLimits: limits(func(t sysconfig.Tenant) sysconfig.RateLimit { return t.RateLimit }),
		KeyLimits:    limits(func(t sysconfig.Tenant) sysconfig.RateLimit { return t.KeyRateLimit }),
	}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopSrv := context.WithCancel(context.Background())
	sdone := make(chan error, 1)
	go func() { sdone <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stopSrv()
		if err := <-sdone; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &env{t: t, c: c, url: "http://" + ln.Addr().String(), rec: rec, orch: orch, defs: orchestrator.RegistryDefinitions(store),
		ctx: ctx, calls: calls, cancel: cancel}
}

func (e *env) client(key string) *ingclient.Client {
	c, err := ingclient.New(e.url, testKeys[key].token)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// eventually polls f until it returns nil or the bound passes.
func (e *env) eventually(what string, f func() error) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPending waits until the workflow waits for an approval of step.
func (e *env) waitPending(c *ingclient.Client, id, step string) {
	e.t.Helper()
	e.eventually("waiting for approval "+step, func() error {
		st, err := c.Status(e.ctx, id)
		if err != nil {
			return err
		}
		for _, p := range st.Pending {
			if p.StepID == step {
				return nil
			}
		}
		return fmt.Errorf("not pending yet: %+v", st.Steps)
	})
}

func TestIntegration(t *testing.T) {
	e := newEnv(t)
	sub, appr, other, admin := e.client("submitter"), e.client("approver"), e.client("other"), e.client("admin")
	ctx := e.ctx

	t.Run("submit watch approve completed", func(t *testing.T) {
		s, err := sub.Submit(ctx, ingclient.SubmitRequest{Definition: "order", Input: map[string]any{"amount": 12.5}, RequestID: "it-req-1"})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var states []string
		type result struct {
			st  ingclient.Status
			err error
		}
		done := make(chan result, 1)
		waiting := make(chan struct{})
		var once sync.Once
		go func() {
			st, err := sub.Watch(ctx, s.ID, func(st ingclient.Status) error {
				mu.Lock()
				states = append(states, string(st.State))
				mu.Unlock()
				if len(st.Pending) > 0 {
					once.Do(func() { close(waiting) })
				}
				return nil
			})
			done <- result{st, err}
		}()
		select {
		case <-waiting:
		case <-time.After(30 * time.Second):
			t.Fatal("the stream never showed the approval waiting")
		}
		e.eventually("approval listed", func() error {
			a, err := appr.Approvals(ctx)
			if err != nil {
				return err
			}
			for _, it := range a.Items {
				if it.WorkflowID == s.ID && it.StepID == "approve" {
					return nil
				}
			}
			return fmt.Errorf("not listed: %+v", a)
		})
		res, err := appr.Decide(ctx, s.ID, "approve", "approve", "looks fine")
		if err != nil || !res.Accepted || !res.Resolved || res.Outcome != "approved" {
			t.Fatalf("decide: %+v %v", res, err)
		}
		// A second vote on the decided step is refused.
		if _, err := appr.Decide(ctx, s.ID, "approve", "approve", ""); ingclient.StatusCode(err) != 409 {
			t.Errorf("second decision: %v", err)
		}
		var r result
		select {
		case r = <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("watch did not end")
		}
		if r.err != nil || r.st.State != workflows.RunSucceeded {
			t.Fatalf("watch: %+v %v", r.st, r.err)
		}
		mu.Lock()
		if len(states) < 2 || states[0] != "running" {
			t.Errorf("watched states %v", states)
		}
		mu.Unlock()
		st, err := sub.Status(ctx, s.ID)
		if err != nil || st.State != workflows.RunSucceeded || len(st.Steps) != 3 || !strings.Contains(string(st.Output), `"approved"`) {
			t.Errorf("final status: %+v %v", st, err)
		}
		for _, step := range st.Steps {
			if step.State != workflows.StepSucceeded {
				t.Errorf("step %s: %s", step.ID, step.State)
			}
		}
		// Visibility is eventually consistent.
		e.eventually("listed as succeeded", func() error {
			p, err := sub.List(ctx, ingclient.ListOptions{Status: "succeeded", Definition: "order"})
			if err != nil {
				return err
			}
			for _, it := range p.Items {
				if it.ID == s.ID {
					return nil
				}
			}
			return fmt.Errorf("not listed: %+v", p)
		})
		// The request id reached the workflow (memo) and the record.
		desc, err := e.c.DescribeWorkflow(ctx, orchestrator.WorkflowID("acme", s.ID), "")
		if err != nil {
			t.Fatal(err)
		}
		var rid string
		if p := desc.Memo.GetFields()[workflows.MemoRequestID]; p == nil || json.Unmarshal(p.GetData(), &rid) != nil || rid != "it-req-1" {
			t.Errorf("memo request id %q", rid)
		}
		found := false
		for _, r := range e.rec.All() {
			if r.Labels["request_id"] == "it-req-1" {
				found = r.WorkflowID == "acme/"+s.ID && r.StatusCode == 201 && r.Kind == calls.KindIngress && r.Definition == "order"
			}
		}
		if !found {
			t.Error("no call record for the submission")
		}
	})

	t.Run("input validated against the schema", func(t *testing.T) {
		_, err := sub.Submit(ctx, ingclient.SubmitRequest{Definition: "order", Input: map[string]any{"amount": -1, "extra": true}})
		var ce *ingclient.Error
		if !errors.As(err, &ce) || ce.StatusCode != 422 || len(ce.Details) == 0 {
			t.Fatalf("%v", err)
		}
		paths := ""
		for _, d := range ce.Details {
			paths += d.Path + " "
		}
		if !strings.Contains(paths, "input.amount") {
			t.Errorf("details %+v", ce.Details)
		}
		if _, err := sub.Submit(ctx, ingclient.SubmitRequest{Definition: "nope"}); ingclient.StatusCode(err) != 404 {
			t.Errorf("unknown definition: %v", err)
		}
	})

	t.Run("idempotent resubmission under concurrency", func(t *testing.T) {
		const n = 50
		var wg sync.WaitGroup
		ids := make([]string, n)
		created := make([]bool, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := sub.Submit(ctx, ingclient.SubmitRequest{Definition: "order", Input: map[string]any{"amount": 1}, IdempotencyKey: "order-42"})
				ids[i], created[i], errs[i] = s.ID, !s.Replayed, err
			}()
		}
		wg.Wait()
		nCreated := 0
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Fatalf("request %d: %v", i, errs[i])
			}
			if ids[i] != ids[0] {
				t.Fatalf("ids differ: %s %s", ids[i], ids[0])
			}
			if created[i] {
				nCreated++
			}
		}
		if nCreated != 1 {
			t.Errorf("%d requests answered 201, want exactly 1", nCreated)
		}
		// Exactly one execution exists under that id.
		e.eventually("one execution", func() error {
			resp, err := e.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf("WorkflowId = '%s'", orchestrator.WorkflowID("acme", ids[0])),
			})
			if err != nil {
				return err
			}
			if len(resp.Executions) != 1 {
				return fmt.Errorf("%d executions", len(resp.Executions))
			}
			return nil
		})
		_, err := sub.Submit(ctx, ingclient.SubmitRequest{Definition: "order", Input: map[string]any{"amount": 2}, IdempotencyKey: "order-42"})
		var ce *ingclient.Error
		if !errors.As(err, &ce) || ce.StatusCode != 409 || ce.Code != "idempotency_conflict" {
			t.Errorf("different body: %v", err)
		}
		// The same key in another tenant is an unrelated workflow.
		s, err := other.Submit(ctx, ingclient.SubmitRequest{Definition: "order", Input: map[string]any{"amount": 1}, IdempotencyKey: "order-42"})
		if err != nil || s.Replayed {
			t.Errorf("other tenant: %+v %v", s, err)
		}
		if err := sub.Cancel(ctx, ids[0]); err != nil {
			t.Errorf("cancel: %v", err)
		}
		if err := other.Cancel(ctx, s.ID); err != nil {
			t.Errorf("cancel other: %v", err)
		}
	})

	t.Run("tenant isolation on every route", func(t *testing.T) {
		s, err := sub.Submit(ctx, ingclient.SubmitRequest{Definition: "order", Input: map[string]any{"amount": 3}})
		if err != nil {
			t.Fatal(err)
		}
		e.waitPending(sub, s.ID, "approve")
		if _, err := other.Status(ctx, s.ID); ingclient.StatusCode(err) != 404 {
			t.Errorf("status: %v", err)
		}
		if _, err := other.Watch(ctx, s.ID, nil); ingclient.StatusCode(err) != 404 {
			t.Errorf("watch: %v", err)
		}
		if _, err := other.Decide(ctx, s.ID, "approve", "approve", ""); ingclient.StatusCode(err) != 404 {
			t.Errorf("decide: %v", err)
		}
		if err := other.Cancel(ctx, s.ID); ingclient.StatusCode(err) != 404 {
			t.Errorf("cancel: %v", err)
		}
		if a, err := other.Approvals(ctx); err != nil || len(a.Items) != 0 {
			t.Errorf("approvals: %+v %v", a, err)
		}
		if _, err := other.Input(ctx, s.ID); ingclient.StatusCode(err) != 404 {
			t.Errorf("input: %v", err)
		}
		// The run's own tenant reads what it was started with, from the
		// start event of its history.
		in, err := sub.Input(ctx, s.ID)
		if err != nil || string(in.Input) != `{"amount":3}` || in.Definition.Name != "order" || len(in.Definition.Steps) == 0 || in.RunID == "" {
			t.Errorf("input: %+v %v", in, err)
		}
		e.eventually("listed for acme", func() error {
			p, err := sub.List(ctx, ingclient.ListOptions{Status: "running"})
			if err != nil {
				return err
			}
			for _, it := range p.Items {
				if it.ID == s.ID {
					return nil
				}
			}
			return errors.New("not yet")
		})
		p, err := other.List(ctx, ingclient.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			if it.ID == s.ID {
				t.Error("another tenant lists the workflow")
			}
		}
		// Cancel runs; the workflow closes as cancelled.
		if err := sub.Cancel(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		e.eventually("cancelled", func() error {
			st, err := sub.Status(ctx, s.ID)
			if err != nil {
				return err
			}
			if st.State != workflows.RunCancelled && st.State != workflows.RunCompensated {
				return fmt.Errorf("state %s", st.State)
			}
			return nil
		})
		if err := sub.Cancel(ctx, s.ID); ingclient.StatusCode(err) != 409 {
			t.Errorf("cancel closed: %v", err)
		}
	})

	t.Run("only the submitter or an admin cancels", func(t *testing.T) {
		sub2, bob1, bob2 := e.client("submitter2"), e.client("bob1"), e.client("bob2")
		start := func(c *ingclient.Client) string {
			t.Helper()
			s, err := c.Submit(ctx, ingclient.SubmitRequest{Definition: "boss"})
			if err != nil {
				t.Fatal(err)
			}
			return s.ID
		}
		// Another submitter of the tenant: refused, the workflow runs on.
		id := start(sub)
		var ce *ingclient.Error
		if err := sub2.Cancel(ctx, id); !errors.As(err, &ce) || ce.StatusCode != 403 || ce.Code != "not_submitter" {
			t.Errorf("another submitter cancelled: %v", err)
		}
		if st, err := sub.Status(ctx, id); err != nil || st.State != workflows.RunRunning {
			t.Errorf("after a refused cancel: %+v %v", st.State, err)
		}
		// An admin of the tenant may.
		if err := admin.Cancel(ctx, id); err != nil {
			t.Errorf("admin: %v", err)
		}
		// The same user with another key may; the same key may.
		if err := bob2.Cancel(ctx, start(bob1)); err != nil {
			t.Errorf("same user, other key: %v", err)
		}
		if err := sub2.Cancel(ctx, start(sub2)); err != nil {
			t.Errorf("same key: %v", err)
		}
	})

	t.Run("watch stops without leaking goroutines", func(t *testing.T) {
		s, err := sub.Submit(ctx, ingclient.SubmitRequest{Definition: "boss"})
		if err != nil {
			t.Fatal(err)
		}
		e.waitPending(sub, s.ID, "sign")
		caller := orchestrator.Caller{Tenant: "acme", KeyID: "k", RequestID: "r"}
		before := runtime.NumGoroutine()
		for i := 0; i < 20; i++ {
			wctx, cancel := context.WithCancel(ctx)
			ch, err := e.orch.Watch(wctx, caller, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if u := <-ch; u.Err != nil || u.Status.ID != s.ID {
				t.Fatalf("first update %+v", u)
			}
			cancel()
			for range ch {
			}
		}
		if _, err := e.orch.Watch(ctx, caller, "no-such-workflow"); !errors.Is(err, orchestrator.ErrNotFound) {
			t.Errorf("unknown: %v", err)
		}
		e.eventually("goroutines back", func() error {
			if n := runtime.NumGoroutine(); n > before+5 {
				return fmt.Errorf("%d goroutines, %d before", n, before)
			}
			return nil
		})
		if err := sub.Cancel(ctx, s.ID); err != nil {
			t.Error(err)
		}
	})

	t.Run("decision errors", func(t *testing.T) {
		s, err := sub.Submit(ctx, ingclient.SubmitRequest{Definition: "boss"})
		if err != nil {
			t.Fatal(err)
		}
		e.waitPending(sub, s.ID, "sign")
		if _, err := appr.Decide(ctx, s.ID, "sign", "approve", ""); ingclient.StatusCode(err) != 403 {
			t.Errorf("not an approver: %v", err)
		}
		if _, err := appr.Decide(ctx, s.ID, "nosuch", "approve", ""); ingclient.StatusCode(err) != 404 {
			t.Errorf("unknown step: %v", err)
		}
		if a, err := appr.Approvals(ctx); err != nil {
			t.Error(err)
		} else {
			for _, it := range a.Items {
				if it.WorkflowID == s.ID {
					t.Error("approvals lists a step the caller may not decide")
				}
			}
		}
		if err := sub.Cancel(ctx, s.ID); err != nil {
			t.Error(err)
		}
	})

	t.Run("list pages with a cursor", func(t *testing.T) {
		all, err := sub.List(ctx, ingclient.ListOptions{Limit: 100})
		if err != nil || len(all.Items) < 3 {
			t.Fatalf("list: %d items, %v", len(all.Items), err)
		}
		seen := map[string]bool{}
		o := ingclient.ListOptions{Limit: 2}
		pages := 0
		for {
			p, err := sub.List(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, it := range p.Items {
				if seen[it.ID] {
					t.Errorf("%s listed twice", it.ID)
				}
				seen[it.ID] = true
			}
			if p.NextCursor == "" || pages > 100 {
				break
			}
			o.Cursor = p.NextCursor
		}
		if len(seen) != len(all.Items) || pages < 2 {
			t.Errorf("paged %d items in %d pages, want %d", len(seen), pages, len(all.Items))
		}
		// A cursor of another filter, another tenant, or garbage is refused
		// at once (Temporal would stall on a foreign page token).
		first, err := sub.List(ctx, ingclient.ListOptions{Limit: 1})
		if err != nil || first.NextCursor == "" {
			t.Fatalf("first page: %+v %v", first, err)
		}
		for _, c := range []struct {
			who *ingclient.Client
			o   ingclient.ListOptions
		}{
			{sub, ingclient.ListOptions{Limit: 1, Status: "running", Cursor: first.NextCursor}},
			{other, ingclient.ListOptions{Limit: 1, Cursor: first.NextCursor}},
			{sub, ingclient.ListOptions{Cursor: "bm90LWEtY3Vyc29y.AAAAAAAAAAAAAAAA"}},
		} {
			start := time.Now()
			if _, err := c.who.List(ctx, c.o); ingclient.StatusCode(err) != 400 || time.Since(start) > 5*time.Second {
				t.Errorf("foreign cursor %+v: %v", c.o, err)
			}
		}
	})

	t.Run("publish and run a definition", func(t *testing.T) {
		def := definition.Definition{Name: "quick", Version: "1", Steps: []definition.Step{{ID: "nap", Kind: definition.KindWait, Duration: "10ms"}},
			Output: map[string]any{"done": true}}
		if _, err := sub.PublishDefinition(ctx, def); ingclient.StatusCode(err) != 403 {
			t.Errorf("publish as submitter: %v", err)
		}
		info, err := admin.PublishDefinition(ctx, def)
		if err != nil || info.Source != "api" {
			t.Fatalf("publish: %+v %v", info, err)
		}
		def.Steps[0].Duration = "20ms"
		if _, err := admin.PublishDefinition(ctx, def); ingclient.StatusCode(err) != 409 {
			t.Errorf("changed republish: %v", err)
		}
		got, err := sub.Definition(ctx, "quick", "latest")
		if err != nil || got.Steps[0].Duration != "10ms" {
			t.Errorf("get: %+v %v", got, err)
		}
		defs, err := sub.Definitions(ctx)
		if err != nil || len(defs) < 3 {
			t.Errorf("definitions: %+v %v", defs, err)
		}
		s, err := sub.Submit(ctx, ingclient.SubmitRequest{Definition: "quick"})
		if err != nil {
			t.Fatal(err)
		}
		final, err := sub.Watch(ctx, s.ID, nil)
		if err != nil || final.State != workflows.RunSucceeded || !strings.Contains(string(final.Output), "true") {
			t.Errorf("run: %+v %v", final, err)
		}
		// Inline definitions where the tenant allows them.
		inline := &definition.Definition{Steps: []definition.Step{{ID: "nap", Kind: definition.KindWait, Duration: "1ms"}}}
		if _, err := sub.Submit(ctx, ingclient.SubmitRequest{Inline: inline}); err != nil {
			t.Errorf("inline: %v", err)
		}
		if _, err := other.Submit(ctx, ingclient.SubmitRequest{Inline: inline}); ingclient.StatusCode(err) != 403 {
			t.Errorf("inline not allowed: %v", err)
		}
	})
}

// TestIntegrationApprovalVisibility: the approvals list finds workflows
// by their GateflowAwaiting search attribute, and, through the fallback
// query, workflows of older workers that keep none; lists show a
// compensated orchestration as compensated.
func TestIntegrationApprovalVisibility(t *testing.T) {
	e := newEnv(t)
	sub, appr := e.client("submitter"), e.client("approver")
	ctx := e.ctx
	// count counts the orchestrations of acme matching a visibility query.
	count := func(query string) (int, error) {
		resp, err := e.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "GateflowTenant = 'acme' AND " + query})
		return len(resp.GetExecutions()), err
	}
	equal := func(what, query string, want int) {
		t.Helper()
		e.eventually(what, func() error {
			n, err := count(query)
			if err == nil && n != want {
				err = fmt.Errorf("%d workflows match %s, want %d", n, query, want)
			}
			return err
		})
	}
	olderRuns := "(TemporalChangeVersion IS NULL OR TemporalChangeVersion != '" + workflows.VisibilityChangeV1 + "')"
	listed := func(c *ingclient.Client, id, step string) error {
		a, err := c.Approvals(ctx)
		if err != nil {
			return err
		}
		for _, it := range a.Items {
			if it.WorkflowID == id && it.StepID == step {
				return nil
			}
		}
		return fmt.Errorf("%s/%s not listed: %+v", id, step, a.Items)
	}

	t.Run("awaiting attribute set while waiting, removed when decided", func(t *testing.T) {
		s, err := sub.Submit(ctx, ingclient.SubmitRequest{Definition: "order", Input: map[string]any{"amount": 3}})
		if err != nil {
			t.Fatal(err)
		}
		byAttr := fmt.Sprintf("WorkflowId = 'acme/%s' AND %s = 'role:approver'", s.ID, workflows.SearchAttrAwaiting)
		equal("awaiting role:approver", byAttr, 1)
		// The fallback query (runs of older workers) does not match it.
		if n, err := count(fmt.Sprintf("WorkflowId = 'acme/%s' AND %s", s.ID, olderRuns)); err != nil || n != 0 {
			t.Errorf("the fallback query matches a current run: %d %v", n, err)
		}
		e.eventually("listed", func() error { return listed(appr, s.ID, "approve") })
		if _, err := appr.Decide(ctx, s.ID, "approve", "approve", ""); err != nil {
			t.Fatal(err)
		}
		equal("awaiting removed", byAttr, 0)
		if final, err := sub.Watch(ctx, s.ID, nil); err != nil || final.State != workflows.RunSucceeded {
			t.Fatalf("final %+v %v", final, err)
		}
	})

	t.Run("fallback finds workflows of older workers", func(t *testing.T) {
		// A worker that takes GetVersion's default version behaves like
		// one from before GateflowAwaiting: it never upserts it.
		const legacyTQ = "ingress-legacy"
		w := sdkworker.New(e.c, legacyTQ, sdkworker.Options{
			PreferredVersionProvider: func(in sdkworker.PreferredVersionProviderInput) *sdkworker.VersionPreference {
				return &sdkworker.VersionPreference{Version: in.MinSupported}
			},
		})
		worker.Register(w, worker.Deps{Services: noServices{}}, activities.HTTPOptions{})
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		legacy := e.orchestrator(legacyTQ)
		caller := orchestrator.Caller{Tenant: "acme", KeyID: "a00000000001", RequestID: "it-legacy"}
		s, err := legacy.Start(ctx, caller, orchestrator.StartRequest{Definition: "boss"})
		if err != nil {
			t.Fatal(err)
		}
		e.waitPending(sub, s.ID, "sign")
		ceo := orchestrator.Caller{Tenant: "acme", KeyID: "k-ceo", User: "ceo", Roles: []string{"approver"}}
		e.eventually("legacy approval listed", func() error {
			a, err := e.orch.PendingApprovals(ctx, ceo)
			if err != nil {
				return err
			}
			for _, it := range a.Items {
				if it.WorkflowID == s.ID && it.StepID == "sign" {
					return nil
				}
			}
			return fmt.Errorf("not listed: %+v", a)
		})
		if n, err := count(fmt.Sprintf("WorkflowId = 'acme/%s' AND %s IS NOT NULL", s.ID, workflows.SearchAttrAwaiting)); err != nil || n != 0 {
			t.Errorf("the legacy run has the attribute: %d %v", n, err)
		}
		if n, err := count(fmt.Sprintf("WorkflowId = 'acme/%s' AND %s", s.ID, olderRuns)); err != nil || n != 1 {
			t.Errorf("the fallback query does not match the legacy run: %d %v", n, err)
		}
		// Another approver still does not see it.
		if a, err := appr.Approvals(ctx); err != nil {
			t.Error(err)
		} else {
			for _, it := range a.Items {
				if it.WorkflowID == s.ID {
					t.Error("alice sees the ceo's approval")
				}
			}
		}
		res, err := e.orch.Decide(ctx, ceo, s.ID, orchestrator.DecideRequest{StepID: "sign", Decision: workflows.Approve})
		if err != nil || !res.Resolved {
			t.Fatalf("decide: %+v %v", res, err)
		}
	})

	t.Run("list shows compensated", func(t *testing.T) {
		saga := &definition.Definition{Steps: []definition.Step{
			{ID: "reserve", Kind: definition.KindHTTP, Service: "inventory", Path: "/reserve",
				Compensate: &definition.Step{ID: "release", Kind: definition.KindHTTP, Service: "inventory", Path: "/release"}},
			{ID: "charge", Kind: definition.KindHTTP, Service: "inventory", Path: "/charge",
				SuccessStatuses: []int{201}, Retry: &definition.RetryPolicy{MaxAttempts: 1}},
		}}
		s, err := sub.Submit(ctx, ingclient.SubmitRequest{Inline: saga})
		if err != nil {
			t.Fatal(err)
		}
		final, err := sub.Watch(ctx, s.ID, nil)
		if err != nil || final.State != workflows.RunCompensated {
			t.Fatalf("final %+v %v", final, err)
		}
		e.eventually("listed as compensated", func() error {
			page, err := sub.List(ctx, ingclient.ListOptions{Status: "failed", Limit: 100})
			if err != nil {
				return err
			}
			for _, it := range page.Items {
				if it.ID == s.ID {
					if it.State != workflows.RunCompensated {
						return fmt.Errorf("listed as %s", it.State)
					}
					return nil
				}
			}
			return fmt.Errorf("not listed")
		})
	})
}

// noServices resolves no service (the legacy worker runs approvals only).
type noServices struct{}

func (noServices) Resolve(_, name string) (activities.Endpoint, error) {
	return activities.Endpoint{}, fmt.Errorf("%w: %s", activities.ErrUnknownService, name)
}

func (noServices) AllowURL(string, string) error { return activities.ErrURLNotAllowed }

// orchestrator returns an orchestrator of the env's Temporal and registry
// that starts workflows on task queue tq.
func (e *env) orchestrator(tq string) *orchestrator.Orchestrator {
	e.t.Helper()
	o, err := orchestrator.New(orchestrator.Options{
		Client: e.c, TaskQueue: tq, Definitions: e.defs,
		ValidateDefinition: func(string, *definition.Definition) error { return nil },
		ValidateInput:      func(*definition.Definition, json.RawMessage) error { return nil },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// TestIntegrationRateLimit uses a tenant with a tiny bucket from the
// registry (rate_limit {rps: 5, burst: 3}): exceeded, then recovered.
func TestIntegrationRateLimit(t *testing.T) {
	e := newEnv(t)
	tc := e.client("tiny")
	limited := 0
	var retryAfter time.Duration
	for i := 0; i < 10; i++ {
		_, err := tc.Definitions(e.ctx)
		var ce *ingclient.Error
		if errors.As(err, &ce) && ce.StatusCode == 429 {
			limited++
			retryAfter = ce.RetryAfter
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if limited == 0 || retryAfter <= 0 {
		t.Fatalf("no 429 (limited %d, retry after %s)", limited, retryAfter)
	}
	// Other tenants are not affected.
	if _, err := e.client("submitter").Definitions(e.ctx); err != nil {
		t.Errorf("other tenant: %v", err)
	}
	e.eventually("recovered", func() error {
		_, err := tc.Definitions(e.ctx)
		return err
	})
}

// TestIntegrationTenantScope: a tenant reaches only the services it owns or
// lists. A definition that calls another service is refused before it runs
// — at start, for an inline submission and at publish — with the path of
// the step, and reads exactly like a service that does not exist.
func TestIntegrationTenantScope(t *testing.T) {
	e := newEnv(t)
	c := e.client("scoped")
	want := `steps[0].service: unknown service "inventory"`
	check := func(what string, err error) {
		t.Helper()
		var ce *ingclient.Error
		if !errors.As(err, &ce) || ce.StatusCode != 422 || !strings.Contains(ce.Error(), want) {
			t.Errorf("%s: %v, want 422 with %q", what, err, want)
		}
	}
	_, err := c.Submit(e.ctx, ingclient.SubmitRequest{Definition: "order", Input: map[string]any{"amount": 3}})
	check("config-dir definition", err)
	inline := definition.Definition{Steps: []definition.Step{{ID: "get", Kind: "http", Service: "inventory", Path: "/stock"}}}
	_, err = c.Submit(e.ctx, ingclient.SubmitRequest{Inline: &inline})
	check("inline definition", err)
	inline.Name, inline.Version = "mine", "1"
	_, err = c.PublishDefinition(e.ctx, inline)
	check("publish", err)
	// The same inline definition naming a service that does not exist
	// reads the same, name aside.
	inline.Steps[0].Service = "nope"
	_, err = c.Submit(e.ctx, ingclient.SubmitRequest{Inline: &inline})
	var ce *ingclient.Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), `steps[0].service: unknown service "nope"`) {
		t.Errorf("missing service: %v", err)
	}
}
