package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/temporalserver"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// benchIngressConfig drives `gateflow ingress bench` (hidden): submissions
// per second through the ingress beside the same number of starts made
// directly with the Temporal client, against the same server in one run.
// The ingress runs as deployed: its tenant and key rate limits on (from the
// system configuration, set high enough never to refuse) and its call
// records going through the analytics producer to Kafka (an embedded kfake
// broker).
type benchIngressConfig struct {
	Temporal    temporalConfig
	Embedded    bool
	Count       int
	Concurrency int
	Timeout     time.Duration
}

func newBenchIngressCmd() *cobra.Command {
	var cfg benchIngressConfig
	cmd := &cobra.Command{
		Use:    "bench",
		Short:  "Measure submissions/s through the ingress against direct Temporal starts",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Count < 100 || cfg.Count > 200_000 || cfg.Concurrency < 1 || cfg.Concurrency > 1024 {
				return errors.New("--count 100..200000, --concurrency 1..1024")
			}
			if !cfg.Embedded {
				if err := cfg.Temporal.validate(); err != nil {
					return err
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cfg.Timeout)
			defer cancel()
			return runBenchIngress(ctx, cfg, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	cfg.Temporal.bind(fs)
	fs.BoolVar(&cfg.Embedded, "embedded", true, "start an embedded Temporal server (SQLite WAL in a temp dir) instead of using --temporal-host")
	fs.IntVar(&cfg.Count, "count", 2000, "starts per path (ingress and direct), after a warm-up")
	fs.IntVar(&cfg.Concurrency, "concurrency", 32, "requests in flight")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "bound of the whole run")
	return cmd
}

// benchDefinition is started on a task queue no worker polls: both paths
// measure the start itself, not the run.
const benchDefinition = `
name: bench
version: "1"
input_schema:
  type: object
  properties: {n: {type: integer}}
steps:
  - id: nap
    kind: wait
    duration: 1s
`

func runBenchIngress(ctx context.Context, cfg benchIngressConfig, out io.Writer) error {
	log := slog.New(slog.DiscardHandler)
	hostPort, ns := cfg.Temporal.HostPort, cfg.Temporal.Namespace
	if cfg.Embedded {
		dir, err := os.MkdirTemp("", "gateflow-bench-ingress-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		ports, err := freePorts(4)
		if err != nil {
			return err
		}
		sa := workflows.SearchAttributeTypes()
		srv, err := temporalserver.Start(ctx, temporalserver.Options{
			DBPath: filepath.Join(dir, "temporal.db"), FrontendPort: ports[0], HistoryPort: ports[1],
			MatchingPort: ports[2], WorkerPort: ports[3], SearchAttributes: sa,
		})
		if err != nil {
			return err
		}
		defer srv.Stop()
		hostPort, ns = srv.FrontendAddr(), srv.Namespace()
		fmt.Fprintf(out, "embedded Temporal at %s (SQLite WAL in %s)\n", hostPort, dir)
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: hostPort, Namespace: ns, Logger: tlog.NewStructuredLogger(log)})
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", hostPort, err)
	}
	defer c.Close()
	if err := worker.EnsureSearchAttributes(ctx, c, ns); err != nil {
		return err
	}

	def, err := definition.Parse([]byte(benchDefinition))
	if err != nil {
		return err
	}
	// Limits on, as deployed, but far above what the run can reach: the
	// token buckets are consulted on every request and never refuse.
	never := sysconfig.RateLimit{RPS: 1e6, Burst: 1_000_000}
	reg, err := sysconfig.NewStatic(sysconfig.Config{Tenants: map[string]sysconfig.Tenant{
		"bench": {RateLimit: never, KeyRateLimit: never, Uses: sysconfig.Uses{Definitions: []string{def.Name}}}}}, def)
	if err != nil {
		return err
	}
	kafkaDir, err := os.MkdirTemp("", "gateflow-bench-ingress-kafka-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(kafkaDir)
	k, err := embedded.StartKafka(embedded.KafkaOptions{DataDir: filepath.Join(kafkaDir, "kafka"),
		Topics: []embedded.Topic{{Name: "gateflow.calls", Partitions: 6}}})
	if err != nil {
		return err
	}
	defer k.Close()
	metrics := prometheus.NewRegistry()
	prod, closeProd, err := openProducer(kafkaConfig{Brokers: []string{k.Addr()}, Topic: "gateflow.calls"}, nil,
		filepath.Join(kafkaDir, "spool"), flagDefaults((*recordLogConfig).bind), metrics, log)
	if err != nil {
		return err
	}
	prodClosed := false
	defer func() {
		if !prodClosed {
			closeProd()
		}
	}()
	taskQueue := fmt.Sprintf("bench-ingress-%d", time.Now().UnixNano())
	orch, err := newOrchestrator(c, reg, taskQueue, nil, log)
	if err != nil {
		return err
	}
	token, err := auth.NewToken()
	if err != nil {
		return err
	}
	keys, err := auth.NewStore("", auth.EntryFor(token, "bench", []string{"submitter"}, ""))
	if err != nil {
		return err
	}
	srv, err := ingress.New(ingress.Deps{
		Orchestrator: orch, Keys: keys, Recorder: prod,
		// As cmd/gateflow's ingress wires them.
		TenantLimits: func(t string) (ratelimit.Limit, bool) {
			l := reg.Current().Tenant(t).RateLimit
			return ratelimit.Limit{RPS: l.RPS, Burst: l.Burst, Unlimited: l.Unlimited}, true
		},
		KeyLimits: func(t string) (ratelimit.Limit, bool) {
			l := reg.Current().Tenant(t).KeyRateLimit
			return ratelimit.Limit{RPS: l.RPS, Burst: l.Burst, Unlimited: l.Unlimited}, true
		},
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), // access logs formatted, then dropped
	}, ingress.Config{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stopSrv := context.WithCancel(context.Background())
	sdone := make(chan error, 1)
	go func() { sdone <- srv.Serve(sctx, ln) }()
	defer func() { stopSrv(); <-sdone }()
	url := "http://" + ln.Addr().String() + "/v1/workflows"
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: cfg.Concurrency, MaxIdleConnsPerHost: cfg.Concurrency, MaxConnsPerHost: cfg.Concurrency}}

	viaIngress := func(ctx context.Context, i int) error {
		body := fmt.Sprintf(`{"definition":"bench","input":{"n":%d}}`, i)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("ingress answered %d: %s", resp.StatusCode, b)
		}
		return nil
	}
	// The direct path starts the same workflow with the same options the
	// orchestrator uses (id, reuse policy, search attributes, memo, input
	// with the definition copied in).
	tenantKey := temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrTenant)
	defKey := temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrDefinition)
	verKey := temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrVersion)
	direct := func(ctx context.Context, i int) error {
		input := json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
		id := orchestrator.NewID()
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: orchestrator.WorkflowID("bench", id), TaskQueue: taskQueue,
			WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			WorkflowExecutionErrorWhenAlreadyStarted: true,
			TypedSearchAttributes:                    temporal.NewSearchAttributes(tenantKey.ValueSet("bench"), defKey.ValueSet(def.Name), verKey.ValueSet(def.Version)),
			Memo:                                     map[string]any{workflows.MemoRequestID: id, workflows.MemoBodyHash: "-", workflows.MemoSubmittedBy: "bench"},
		}, workflows.OrchestrationWorkflow, workflows.OrchestrationInput{
			Definition: *def, Input: input,
			Meta: activities.RunMeta{Tenant: "bench", RequestID: id, Definition: def.Name, Version: def.Version},
		})
		return err
	}

	// The orchestrator alone (no HTTP, no gateway) splits the difference
	// between Temporal and the ingress.
	caller := orchestrator.Caller{Tenant: "bench", KeyID: "bench", RequestID: "bench"}
	viaOrchestrator := func(ctx context.Context, i int) error {
		_, err := orch.Start(ctx, caller, orchestrator.StartRequest{Definition: "bench", Input: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
		return err
	}

	warm := min(200, cfg.Count/4)
	for _, f := range []func(context.Context, int) error{direct, viaOrchestrator, viaIngress} {
		if _, err := loadPhase(ctx, warm, cfg.Concurrency, f); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	// ABCCBA order cancels drift (the database grows during the run).
	half := cfg.Count / 2
	var d, o, g phaseResult
	for _, step := range []struct {
		f   func(context.Context, int) error
		acc *phaseResult
	}{{direct, &d}, {viaOrchestrator, &o}, {viaIngress, &g}, {viaIngress, &g}, {viaOrchestrator, &o}, {direct, &d}} {
		r, err := loadPhase(ctx, half, cfg.Concurrency, step.f)
		if err != nil {
			return err
		}
		step.acc.add(r)
	}
	fmt.Fprintf(out, "%d starts per path, %d in flight, Temporal %s, CPUs %d\n", 2*half, cfg.Concurrency, hostPort, runtime.NumCPU())
	fmt.Fprintf(out, "| path | starts/s | p50 ms | p99 ms |\n|---|---|---|---|\n")
	for _, row := range []struct {
		name string
		r    phaseResult
	}{{"direct Temporal client (ExecuteWorkflow)", d}, {"orchestrator.Start (no HTTP)", o}, {"ingress POST /v1/workflows", g}} {
		fmt.Fprintf(out, "| %s | %.0f | %.2f | %.2f |\n", row.name, row.r.rate(), row.r.pct(0.50), row.r.pct(0.99))
	}
	closeProd()
	prodClosed = true
	fmt.Fprintf(out, "ingress keeps %.0f%% of direct throughput (call records: %.0f emitted, %.0f written to Kafka, %.0f spooled)\n",
		100*g.rate()/d.rate(), counterValue(metrics, "gateflow_producer_records_emitted_total"),
		counterValue(metrics, "gateflow_producer_records_sent_total"), counterValue(metrics, "gateflow_producer_records_spooled_total"))
	return nil
}

// counterValue reads a counter without labels from reg (0 when absent).
func counterValue(reg prometheus.Gatherer, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// phaseResult accumulates latencies and wall time of load phases.
type phaseResult struct {
	lat  []time.Duration
	wall time.Duration
}

func (p *phaseResult) add(o phaseResult) { p.lat = append(p.lat, o.lat...); p.wall += o.wall }

func (p *phaseResult) rate() float64 { return float64(len(p.lat)) / p.wall.Seconds() }

func (p *phaseResult) pct(q float64) float64 {
	if len(p.lat) == 0 {
		return 0
	}
	s := slices.Clone(p.lat)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds()) / 1000
}

// loadPhase runs n calls of f with conc in flight and times each.
func loadPhase(ctx context.Context, n, conc int, f func(context.Context, int) error) (phaseResult, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t := time.Now()
				if err := f(ctx, i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return phaseResult{lat: lat, wall: time.Since(start)}, firstErr
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
