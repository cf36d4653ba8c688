//go:build integration

package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// BenchmarkTenantFairness measures what a flooding tenant does to a quiet
// one on one worker: the quiet tenant's orchestrations (three calls one
// after the other) are timed one at a time, alone and then while the
// flooding tenant keeps orchestrations that fan out to many calls
// running, on a server with Temporal's task queue fairness off (FIFO
// dispatch) and on (the orchestrator gives every orchestration its tenant
// as fairness key). It reports the quiet tenant's p50 and p99, alone and
// flooded, and their ratios.
//
//	go test -tags integration -run '^$' -bench TenantFairness -benchtime 1x ./worker/
//
// GATEFLOW_BENCH_FAIR (e.g. "slots=32,flood=20,items=50,concurrency=10,
// latency=20ms,samples=40") changes the shape.
func BenchmarkTenantFairness(b *testing.B) {
	p := fairnessParams(b)
	for _, fair := range []bool{false, true} {
		name := "fifo"
		if fair {
			name = "fair"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				runFairness(b, p, fair)
			}
		})
	}
}

type fairParams struct {
	slots, flood, items, concurrency, samples, partitions int
	latency                                               time.Duration
}

func fairnessParams(b *testing.B) fairParams {
	p := fairParams{slots: 32, flood: 20, items: 50, concurrency: 10, samples: 40, latency: 20 * time.Millisecond}
	for _, kv := range strings.Split(os.Getenv("GATEFLOW_BENCH_FAIR"), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			continue
		}
		if k == "latency" {
			d, err := time.ParseDuration(v)
			if err != nil {
				b.Fatal(err)
			}
			p.latency = d
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("GATEFLOW_BENCH_FAIR %s: %v", kv, err)
		}
		switch k {
		case "slots":
			p.slots = n
		case "flood":
			p.flood = n
		case "items":
			p.items = n
		case "concurrency":
			p.concurrency = n
		case "samples":
			p.samples = n
		case "partitions":
			p.partitions = n
		default:
			b.Fatalf("GATEFLOW_BENCH_FAIR: unknown %s", k)
		}
	}
	return p
}

// progress prints each quiet orchestration's latency as it comes
// (GATEFLOW_BENCH_PROGRESS=1).
var progress = os.Getenv("GATEFLOW_BENCH_PROGRESS") != ""

// newFairServer starts a Temporal test server with task queue fairness
// on or off (gateflow dev runs with it on).
func newFairServer(t testing.TB, fair bool, partitions int) *temporaltest.TestServer {
	t.Helper()
	dc := dynamicconfig.StaticClient{
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
		dynamicconfig.TimerProcessorMaxTimeShift.Key():              []dynamicconfig.ConstrainedValue{{Value: 10 * time.Millisecond}},
		dynamicconfig.MatchingEnableFairness.Key():                  []dynamicconfig.ConstrainedValue{{Value: fair}},
	}
	if partitions > 0 {
		dc[dynamicconfig.MatchingNumTaskqueueReadPartitions.Key()] = []dynamicconfig.ConstrainedValue{{Value: partitions}}
		dc[dynamicconfig.MatchingNumTaskqueueWritePartitions.Key()] = []dynamicconfig.ConstrainedValue{{Value: partitions}}
	}
	ts := temporaltest.NewServer(
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}),
		temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dc)))
	t.Cleanup(ts.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := worker.EnsureSearchAttributes(ctx, ts.GetDefaultClient(), ts.GetDefaultNamespace()); err != nil {
		t.Fatal(err)
	}
	return ts
}

// newInlineOrchestrator is an orchestrator that starts inline definitions
// of any tenant on task queue tq: the real start path (fairness key, run
// limits).
func newInlineOrchestrator(t testing.TB, c client.Client, tq string) *orchestrator.Orchestrator {
	t.Helper()
	o, err := orchestrator.New(orchestrator.Options{
		Client: c, TaskQueue: tq, Definitions: noDefinitions{}, Policies: inlineForAll{},
		ValidateDefinition: func(_ string, d *definition.Definition) error { return d.ValidateWithin(nil, definition.RunLimits{}) },
		ValidateInput:      func(*definition.Definition, json.RawMessage) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestTenantFairnessDispatch: with a backlog of one tenant's
// orchestrations queued before any worker runs, another tenant's
// orchestration started last is served among the first, not after the
// backlog: the orchestrator gives each orchestration its tenant as
// Temporal fairness key (inherited by its activities), and the server
// dispatches the keys in turn. The worker runs one task at a time, so the
// order in which calls reach the service is the dispatch order.
func TestTenantFairnessDispatch(t *testing.T) {
	ts := newFairServer(t, true, 1)
	c := ts.GetDefaultClient()
	var mu sync.Mutex
	var order []string
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		order = append(order, r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok": true}`)
	}))
	defer svc.Close()
	const tq, backlog = "fair-dispatch", 60
	o := newInlineOrchestrator(t, c, tq)
	ctx := context.Background()
	start := func(tenant string) {
		d := mustDef(t, `{"name": "one", "version": "1", "steps": [{"id": "a", "kind": "http", "service": "svc", "path": "/`+tenant+`"}]}`)
		if _, err := o.Start(ctx, orchestrator.Caller{Tenant: tenant, KeyID: "k-" + tenant}, orchestrator.StartRequest{Inline: &d}); err != nil {
			t.Fatal(err)
		}
	}
	for range backlog {
		start("flood")
	}
	start("quiet")
	w, err := worker.New(c, worker.Options{TaskQueue: tq, MaxConcurrentActivities: 1, MaxConcurrentWorkflowTasks: 2, Pollers: 2, StopTimeout: time.Second},
		worker.Deps{Services: staticServices{"svc": svc.URL}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); <-done }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		pos := slices.Index(order, "/quiet")
		n := len(order)
		mu.Unlock()
		if pos >= 0 {
			t.Logf("the quiet tenant's call came %d of %d", pos+1, n)
			// FIFO would serve it after the 60 queued before it.
			if pos > 10 {
				t.Errorf("the quiet tenant's call came %d of %d, after the backlog of another tenant", pos+1, n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the quiet tenant's call never came (%d calls)", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runFairness(b *testing.B, p fairParams, fair bool) {
	ts := newFairServer(b, fair, p.partitions)
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(p.latency)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok": true}`)
	}))
	defer svc.Close()
	const tq = "fairness"
	w, err := worker.New(c, worker.Options{TaskQueue: tq, MaxConcurrentActivities: p.slots, StopTimeout: time.Second},
		worker.Deps{Services: staticServices{"svc": svc.URL}})
	if err != nil {
		b.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(ctx)
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	defer func() { stopWorker(); <-wdone }()

	o := newInlineOrchestrator(b, c, tq)
	quietDef := mustDef(b, `{"name": "quiet", "version": "1", "steps": [
		{"id": "a", "kind": "http", "service": "svc", "path": "/a"},
		{"id": "b", "kind": "http", "service": "svc", "path": "/b"},
		{"id": "c", "kind": "http", "service": "svc", "path": "/c"}]}`)
	floodDef := mustDef(b, fmt.Sprintf(`{"name": "flood", "version": "1", "steps": [
		{"id": "each", "kind": "foreach", "items": "1..%d", "concurrency": %d, "steps": [
			{"id": "call", "kind": "http", "service": "svc", "path": "/flood"}]}]}`, p.items, p.concurrency))
	run := func(tenant string, d definition.Definition) (time.Duration, error) {
		t0 := time.Now()
		res, err := o.Start(ctx, orchestrator.Caller{Tenant: tenant, KeyID: "k-" + tenant}, orchestrator.StartRequest{Inline: &d})
		if err != nil {
			return 0, err
		}
		if err := c.GetWorkflow(ctx, orchestrator.WorkflowID(tenant, res.ID), res.RunID).Get(ctx, nil); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}
	quiet := func(phase string) []time.Duration {
		var lat []time.Duration
		for i := range p.samples {
			d, err := run("quiet", quietDef)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, d)
			if progress {
				fmt.Fprintf(os.Stderr, "fairness=%v %s %d/%d: %s\n", fair, phase, i+1, p.samples, d.Round(time.Millisecond))
			}
		}
		return lat
	}
	quiet("warm-up") // connections, caches, the worker's sticky cache
	load0 := loadAvg()
	alone := quiet("alone")

	fctx, stopFlood := context.WithCancel(ctx)
	var fwg sync.WaitGroup
	var floodMu sync.Mutex
	floods := 0
	for range p.flood {
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			for fctx.Err() == nil {
				if _, err := run("flood", floodDef); err != nil {
					if fctx.Err() == nil && ctx.Err() == nil {
						b.Error(err)
					}
					return
				}
				floodMu.Lock()
				floods++
				floodMu.Unlock()
			}
		}()
	}
	time.Sleep(3 * time.Second) // let the backlog build
	t0 := time.Now()
	flooded := quiet("flooded")
	elapsed := time.Since(t0)
	floodMu.Lock()
	done := floods
	floodMu.Unlock()
	stopFlood()
	fwg.Wait()
	load1 := loadAvg()

	a50, a99 := quantile(alone, 0.5), quantile(alone, 0.99)
	f50, f99 := quantile(flooded, 0.5), quantile(flooded, 0.99)
	b.ReportMetric(float64(a50.Milliseconds()), "alone_p50_ms")
	b.ReportMetric(float64(a99.Milliseconds()), "alone_p99_ms")
	b.ReportMetric(float64(f50.Milliseconds()), "flooded_p50_ms")
	b.ReportMetric(float64(f99.Milliseconds()), "flooded_p99_ms")
	b.ReportMetric(float64(f50)/float64(a50), "p50_ratio")
	b.ReportMetric(float64(f99)/float64(a99), "p99_ratio")
	b.Logf("fairness=%v %+v: quiet alone p50 %s p99 %s; flooded p50 %s p99 %s (%.1fx, %.1fx); flood orchestrations finished meanwhile: %d (%d calls) in %s; load average %s -> %s",
		fair, p, a50, a99, f50, f99, float64(f50)/float64(a50), float64(f99)/float64(a99), done, done*p.items, elapsed.Round(time.Millisecond), load0, load1)
}

// quantile is the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// noDefinitions resolves no published definition (the benchmark submits
// inline ones).
type noDefinitions struct{}

func (noDefinitions) Get(context.Context, string, string, string) (definition.Definition, error) {
	return definition.Definition{}, orchestrator.ErrNotFound
}

func (noDefinitions) List(context.Context, string) ([]orchestrator.DefinitionInfo, error) {
	return nil, nil
}

func (noDefinitions) Publish(context.Context, string, definition.Definition, string) (orchestrator.DefinitionInfo, error) {
	return orchestrator.DefinitionInfo{}, orchestrator.ErrConflict
}

// inlineForAll lets every tenant submit inline definitions.
type inlineForAll struct{}

func (inlineForAll) AllowInline(string) bool { return true }
