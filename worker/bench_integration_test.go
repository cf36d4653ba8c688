//go:build integration

package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/analytics/producer"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
)

// benchInFlight is how many orchestrations the load generator keeps
// running at once.
const benchInFlight = 50

// BenchmarkOrchestrations compares, on one server in one run, a
// definition with one http step run by the interpreter against the same
// work written as a plain Temporal workflow and activity: orchestrations/s
// with 50 in flight (b.N per mode), the interpreter's overhead in percent,
// and the latency from the start call to the first step reaching the
// service, one orchestration at a time (p50, p99 of 100 per mode).
//
// The interpreter's worker records its calls as deployed: through the
// analytics producer (Emit, then batches to Kafka, an in-process kfake
// broker here); the hand-written workflow, the bare alternative, records
// nothing. interpreter_records/orch reports how many records each
// interpreted orchestration emitted (1: its http attempt).
//
//	go test -tags integration -run '^$' -bench Orchestrations -benchtime 400x ./worker/
func BenchmarkOrchestrations(b *testing.B) {
	ts := newServer(b)
	c := ts.GetDefaultClient()
	metrics := prometheus.NewRegistry()
	prod := benchProducer(b, metrics)
	var arrivals sync.Map // id -> time.Time
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var body struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		arrivals.LoadOrStore(body.ID, now)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok": true, "id": %q}`, body.ID)
	}))
	defer svc.Close()

	plain := &plainHTTP{url: svc.URL + "/work", client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	startWorker(b, c, "bench", worker.Deps{
		Services: staticServices{"svc": svc.URL},
		Recorder: prod,
		Register: []func(sdkworker.Registry){func(r sdkworker.Registry) {
			r.RegisterWorkflowWithOptions(handWritten, workflow.RegisterOptions{Name: "bench.HandWritten"})
			r.RegisterActivityWithOptions(plain.Call, activity.RegisterOptions{Name: "bench.PlainHTTP"})
		}},
	})
	def := mustDef(b, `{"name": "bench", "version": "1", "steps": [
		{"id": "work", "kind": "http", "service": "svc", "method": "POST", "path": "/work", "body": {"id": "${{ input.id }}"}}
	], "output": "${{ steps.work.output.body }}"}`)

	var seq, interpreted atomic.Int64
	starters := map[string]func(ctx context.Context, id string) (client.WorkflowRun, error){
		"handwritten": func(ctx context.Context, id string) (client.WorkflowRun, error) {
			return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "bench"}, "bench.HandWritten", id)
		},
		"interpreter": func(ctx context.Context, id string) (client.WorkflowRun, error) {
			interpreted.Add(1)
			in := orchestration(def, fmt.Sprintf(`{"id": %q}`, id))
			return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "bench"}, workflows.OrchestrationWorkflow, in)
		},
	}
	load := func(b *testing.B, mode string, n, inFlight int) (elapsed time.Duration, lat []time.Duration) {
		startFn := starters[mode]
		sem := make(chan struct{}, inFlight)
		var wg sync.WaitGroup
		var mu sync.Mutex
		begin := time.Now()
		for range n {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				id := fmt.Sprintf("%s-%d", mode, seq.Add(1))
				t0 := time.Now()
				run, err := startFn(context.Background(), id)
				if err != nil {
					b.Error(err)
					return
				}
				if err := run.Get(context.Background(), nil); err != nil {
					b.Error(err)
					return
				}
				if at, ok := arrivals.Load(id); ok {
					mu.Lock()
					lat = append(lat, at.(time.Time).Sub(t0))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return time.Since(begin), lat
	}
	// Warm both paths (connections, caches) before measuring.
	load(b, "handwritten", 50, benchInFlight)
	load(b, "interpreter", 50, benchInFlight)
	b.ResetTimer()

	// Throughput: b.N orchestrations per mode with benchInFlight running,
	// in alternating rounds so that a change of load on the machine hits
	// both modes alike.
	// CPU time of this process (server, worker and client together) is
	// measured too: on a shared machine it varies much less than wall time.
	const rounds = 10
	elapsed := map[string]time.Duration{}
	cpu := map[string]time.Duration{}
	for r := range rounds {
		n := b.N / rounds
		if r == rounds-1 {
			n = b.N - n*(rounds-1)
		}
		for _, mode := range modes(r) {
			c0 := processCPU()
			d, _ := load(b, mode, n, benchInFlight)
			cpu[mode] += processCPU() - c0
			elapsed[mode] += d
		}
	}
	// Latency from the start call to the first step reaching the service,
	// one orchestration at a time (no queueing behind other work).
	lat := map[string][]time.Duration{}
	for i := range benchLatencyRuns {
		for _, mode := range modes(i) {
			_, l := load(b, mode, 1, 1)
			lat[mode] = append(lat[mode], l...)
		}
	}
	b.StopTimer()
	for _, mode := range []string{"handwritten", "interpreter"} {
		b.ReportMetric(float64(b.N)/elapsed[mode].Seconds(), mode+"_orch/s")
		l := lat[mode]
		slices.Sort(l)
		if len(l) > 0 {
			b.ReportMetric(ms(l[len(l)/2]), mode+"_p50_first_step_ms")
			b.ReportMetric(ms(l[min(len(l)-1, len(l)*99/100)]), mode+"_p99_first_step_ms")
		}
	}
	hw, in := float64(b.N)/elapsed["handwritten"].Seconds(), float64(b.N)/elapsed["interpreter"].Seconds()
	b.ReportMetric(100*(hw-in)/hw, "interpreter_overhead_%")
	for _, mode := range []string{"handwritten", "interpreter"} {
		b.ReportMetric(ms(cpu[mode])/float64(b.N), mode+"_cpu_ms/orch")
	}
	b.ReportMetric(100*(cpu["interpreter"].Seconds()-cpu["handwritten"].Seconds())/cpu["handwritten"].Seconds(), "interpreter_cpu_overhead_%")
	emitted := counterValue(b, metrics, "gateflow_producer_records_emitted_total")
	b.ReportMetric(emitted/float64(interpreted.Load()), "interpreter_records/orch")
	if emitted == 0 {
		b.Error("the interpreter emitted no call records: the benchmark does not measure the recording path")
	}
}

// benchProducer is the call-record path of a deployed worker: the analytics
// producer with a spool directory, writing to an in-process kfake broker,
// its metrics in reg. It is closed (flushing its queue) after the worker
// stops, since cleanups run last-registered first.
func benchProducer(b *testing.B, reg prometheus.Registerer) *producer.Producer {
	b.Helper()
	broker := embeddedtest.StartKafka(b, embedded.Topic{Name: "gateflow.calls", Partitions: 6})
	p, err := producer.New(producer.Config{Brokers: []string{broker}, Topic: "gateflow.calls", SpoolDir: b.TempDir(), Registerer: reg}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			b.Error(err)
		}
	})
	return p
}

// counterValue reads a counter without labels from reg.
func counterValue(b *testing.B, reg prometheus.Gatherer, name string) float64 {
	b.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	b.Fatalf("no counter %s", name)
	return 0
}

// processCPU is the user and system CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLatencyRuns is how many single orchestrations per mode measure the
// start-to-first-step latency.
const benchLatencyRuns = 100

// modes alternates which mode goes first.
func modes(i int) []string {
	if i%2 == 0 {
		return []string{"handwritten", "interpreter"}
	}
	return []string{"interpreter", "handwritten"}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// handWritten is the bare alternative: one activity making the same call.
func handWritten(ctx workflow.Context, id string) (map[string]any, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3, InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	})
	var out map[string]any
	err := workflow.ExecuteActivity(ctx, "bench.PlainHTTP", id).Get(ctx, &out)
	return out, err
}

// plainHTTP posts {"id": id} and returns the decoded answer.
type plainHTTP struct {
	url    string
	client *http.Client
}

func (p *plainHTTP) Call(ctx context.Context, id string) (map[string]any, error) {
	body, _ := json.Marshal(map[string]string{"id": id})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var out map[string]any
	err = json.Unmarshal(data, &out)
	return out, err
}
