//go:build integration

package registry

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/definition"
)

// TestStoreReplicas runs two Stores (two ingress replicas, each with its
// own Temporal client) against a real Temporal server and a worker hosting
// the registry workflow: each sees what the other published.
func TestStoreReplicas(t *testing.T) {
	reg, err := sysconfig.New(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	const queue = "registry-test"
	ts.NewWorker(queue, func(w worker.Registry) { RegisterWorkflows(w, reg) })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	newStore := func() *Store {
		c := ts.NewClientWithOptions(client.Options{})
		t.Cleanup(c.Close)
		return NewStore(c, reg, slog.New(slog.DiscardHandler), WithTaskQueue(queue), WithCacheTTL(0))
	}
	a, b := newStore(), newStore()

	// Nothing published yet: reads do not start the workflow.
	list, err := a.List(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(reg.Current().Definitions()) {
		t.Fatalf("file definitions only: %+v", list)
	}
	if _, err := a.Get(ctx, "dev", "orders", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := a.Get(ctx, "dev", "orders", "1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing version: %v", err)
	}

	// Replica A publishes; replica B reads it (first use starts the workflow).
	e, err := a.Publish(ctx, "dev", testDef("orders", "1", "echo"), "ann")
	if err != nil {
		t.Fatal(err)
	}
	if e.Existing || e.PublishedAt == nil {
		t.Fatalf("entry: %+v", e)
	}
	d, err := b.Get(ctx, "dev", "orders", "")
	if err != nil || d.Version != "1" {
		t.Fatalf("B latest: %+v %v", d, err)
	}

	// Replica B publishes a newer version; A resolves latest to it.
	if _, err := b.Publish(ctx, "dev", testDef("orders", "10", "echo"), "bob"); err != nil {
		t.Fatal(err)
	}
	d, err = a.Get(ctx, "dev", "orders", "")
	if err != nil || d.Version != "10" {
		t.Fatalf("A latest: %+v %v", d, err)
	}

	// Refusals arrive as sentinel errors / validation problems.
	changed := testDef("orders", "1", "echo")
	changed.Description = "changed"
	if _, err := b.Publish(ctx, "dev", changed, "bob"); !errors.Is(err, ErrExists) {
		t.Fatalf("immutable: %v", err)
	}
	same, err := b.Publish(ctx, "dev", testDef("orders", "1", "echo"), "bob")
	if err != nil || !same.Existing {
		t.Fatalf("idempotent: %+v %v", same, err)
	}
	var ve *definition.ValidationError
	if _, err := a.Publish(ctx, "dev", testDef("orders", "11", "nope"), "ann"); !errors.As(err, &ve) {
		t.Fatalf("invalid: %v", err)
	}
	if _, err := a.Publish(ctx, "dev", testDef("hello", "1", "echo"), "ann"); !errors.Is(err, ErrExists) {
		t.Fatalf("file collision: %v", err)
	}

	// Tenants are isolated.
	if _, err := b.Get(ctx, "other", "orders", "1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tenant isolation: %v", err)
	}

	// Concurrent publishes of distinct versions from both replicas all land.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 10; i++ {
		for _, s := range []*Store{a, b} {
			wg.Add(1)
			go func(s *Store, v string) {
				defer wg.Done()
				if _, err := s.Publish(ctx, "dev", testDef("batch", v, "echo"), "x"); err != nil {
					errs <- err
				}
			}(s, string(rune('a'+i))+map[*Store]string{a: "1", b: "2"}[s])
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err = b.List(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list {
		if e.Name == "batch" {
			n++
		}
	}
	if n != 20 {
		t.Fatalf("%d batch versions listed, want 20", n)
	}
}

// TestStoreAcrossContinueAsNew publishes past the continue-as-new point on
// a real server: every version stays readable and immutable.
func TestStoreAcrossContinueAsNew(t *testing.T) {
	reg, err := sysconfig.New(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	const queue = "registry-can"
	e := NewEntity(reg)
	e.ContinueAsNewAfter = 4
	ts.NewWorker(queue, func(w worker.Registry) {
		w.RegisterWorkflowWithOptions(e.Run, workflow.RegisterOptions{Name: RegistryWorkflow})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := ts.GetDefaultClient()
	s := NewStore(c, reg, slog.New(slog.DiscardHandler), WithTaskQueue(queue), WithCacheTTL(0))
	for i := 1; i <= 10; i++ {
		if _, err := s.Publish(ctx, "dev", testDef("orders", strconv.Itoa(i), "echo"), "ann"); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// Published versions are cached by this Store; a fresh one must query.
	fresh := NewStore(c, reg, slog.New(slog.DiscardHandler), WithTaskQueue(queue), WithCacheTTL(0))
	for i := 1; i <= 10; i++ {
		if d, err := fresh.Get(ctx, "dev", "orders", strconv.Itoa(i)); err != nil || d.Version != strconv.Itoa(i) {
			t.Fatalf("get %d: %+v %v", i, d, err)
		}
	}
	if d, err := fresh.Get(ctx, "dev", "orders", ""); err != nil || d.Version != "10" {
		t.Fatalf("latest: %+v %v", d, err)
	}
	changed := testDef("orders", "2", "echo")
	changed.Description = "changed"
	if _, err := fresh.Publish(ctx, "dev", changed, "bob"); !errors.Is(err, ErrExists) {
		t.Fatalf("immutable across runs: %v", err)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, RegistryWorkflowID("dev"), "")
	if err != nil {
		t.Fatal(err)
	}
	if desc.WorkflowExecutionInfo.GetFirstRunId() == desc.WorkflowExecutionInfo.GetExecution().GetRunId() {
		t.Fatal("the registry workflow did not continue as new")
	}
}

// BenchmarkStore compares the Store with the bare Temporal calls it makes,
// on the same server in the same run: reading a published version (cached
// by the Store, a query without it), resolving "latest", and publishing
// (validation + update-with-start vs a bare update).
func BenchmarkStore(b *testing.B) {
	reg, err := sysconfig.New(examplesDir)
	if err != nil {
		b.Fatal(err)
	}
	ts := temporaltest.NewServer()
	defer ts.Stop()
	const queue = "registry-bench"
	ts.NewWorker(queue, func(w worker.Registry) { RegisterWorkflows(w, reg) })
	c := ts.GetDefaultClient()
	ctx := context.Background()
	s := NewStore(c, reg, slog.New(slog.DiscardHandler), WithTaskQueue(queue))
	if _, err := s.Publish(ctx, "bench", testDef("orders", "1", "echo"), "b"); err != nil {
		b.Fatal(err)
	}

	b.Run("Get/store-cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Get(ctx, "bench", "orders", "1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Get/raw-query", func(b *testing.B) {
		for b.Loop() {
			v, err := c.QueryWorkflow(ctx, RegistryWorkflowID("bench"), "", GetQuery, GetRequest{Name: "orders", Version: "1"})
			if err != nil {
				b.Fatal(err)
			}
			var p Published
			if err := v.Get(&p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Latest/store-ttl", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Get(ctx, "bench", "orders", ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	n := 0
	b.Run("Publish/store", func(b *testing.B) {
		for b.Loop() {
			n++
			if _, err := s.Publish(ctx, "bench", testDef("p", "s"+strconv.Itoa(n), "echo"), "b"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Publish/raw-update", func(b *testing.B) {
		for b.Loop() {
			n++
			h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
				WorkflowID: RegistryWorkflowID("bench"), UpdateName: PublishUpdate,
				Args:         []any{PublishRequest{Definition: testDef("p", "r"+strconv.Itoa(n), "echo")}},
				WaitForStage: client.WorkflowUpdateStageCompleted,
			})
			if err != nil {
				b.Fatal(err)
			}
			var e Entry
			if err := h.Get(ctx, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
