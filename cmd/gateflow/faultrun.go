package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/demo"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/workflows/definition"
)

// faultRunConfig drives `gateflow faultrun` (hidden): the whole system as
// separate processes on this machine, under load, with parts killed and
// restarted, then checked from the clients' own log.
type faultRunConfig struct {
	Dir      string
	Keep     bool
	Duration time.Duration
	// CallRate is plain API calls per second (a definition read: each is
	// a call record); SubmitRate orchestrations submitted per second.
	CallRate   int
	SubmitRate float64
	// KillEvery is the pause between SIGKILLs of a random ingress, worker
	// or sink.
	KillEvery time.Duration
	// Faults are the kinds injected (faultKinds).
	Faults []string
	// Brokers in the Kafka-protocol cluster.
	Brokers int
	Seed    uint64
	// Settle bounds the wait, after the load, for every orchestration to
	// close and every record to reach ClickHouse.
	Settle time.Duration
	// Lib is libchdb.so (empty: the cache, fetched if missing).
	Lib string
	// Isolate keeps the faults apart: no ingress, worker or sink is
	// killed while an infrastructure fault is under way, within
	// isolateQuiet after ClickHouse recovered or isolateQuietOther after
	// another part did (the next infrastructure fault keeps to its
	// schedule: the quiet is for the applications). Compound faults are
	// what the long run is for; the short (CI) run checks each kind alone,
	// so that its verdict does not depend on a race between two faults.
	Isolate bool
}

// isolateQuiet is how long after ClickHouse recovered an isolated run
// waits before it kills an application part again: long enough for a
// sink's retry of an insert cut by a ClickHouse death. After the other
// infrastructure faults it waits isolateQuietOther: their recovery is
// waited for already, and 10 s after each left a short run under load
// (average 16-25) time for only two application kills.
const (
	isolateQuiet      = 10 * time.Second
	isolateQuietOther = 3 * time.Second
)

// Fault kinds.
const (
	faultIngress    = "ingress"    // SIGKILL an ingress, restart it
	faultWorker     = "worker"     // SIGKILL a worker, restart it
	faultSink       = "sink"       // SIGKILL a sink, restart it
	faultBroker     = "broker"     // one Kafka broker away and back (SIGUSR1)
	faultKafka      = "kafka"      // SIGKILL the whole Kafka process, restart it
	faultClickHouse = "clickhouse" // SIGKILL ClickHouse, restart it
	faultTemporal   = "temporal"   // SIGKILL the Temporal server, restart it
)

// faultNone alone in --faults runs the load without faults: the CPU
// figures per unit of work are then those of a steady state (docs/SCALING.md).
const faultNone = "none"

var faultKinds = []string{faultIngress, faultWorker, faultSink, faultBroker, faultKafka, faultClickHouse, faultTemporal}

func newFaultRunCmd() *cobra.Command {
	var cfg faultRunConfig
	var short bool
	cmd := &cobra.Command{
		Use:   "faultrun",
		Short: "Run every part as its own process under load while killing parts; check nothing is lost or duplicated",
		Long: `Starts a Temporal server, a Kafka-protocol cluster, ClickHouse, two ingress,
two worker and two sink processes (this binary), loads them with API calls and
orchestrations of every step kind (approvals decided by a bot through the API,
submissions retried with Idempotency-Key), kills and restarts parts during the
load, then checks from the clients' own log that every accepted orchestration
finished once with the right output, no approval was lost or counted twice, and
every call the clients saw answered is in ClickHouse exactly once (raw, FINAL
and the per-minute rollups). Exits non-zero on any loss or duplicate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if short {
				cfg.applyShort(cmd)
			}
			if err := cfg.validate(); err != nil {
				return err
			}
			return runFaultRun(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Dir, "dir", "", "working directory (default: a new temporary one, removed after a clean run)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the working directory after a clean run")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long the load and the faults last")
	fs.IntVar(&cfg.CallRate, "call-rate", 500, "plain API and gateway calls per second")
	fs.Float64Var(&cfg.SubmitRate, "submit-rate", 2, "orchestrations submitted per second (the defaults fit a 2-core machine, whose single SQLite-backed Temporal server closes a few of these a second)")
	fs.DurationVar(&cfg.KillEvery, "kill-every", 5*time.Second, "pause between SIGKILLs of a random ingress, worker or sink")
	fs.StringSliceVar(&cfg.Faults, "faults", faultKinds, "fault kinds: "+strings.Join(faultKinds, ", ")+" (or none)")
	fs.IntVar(&cfg.Brokers, "brokers", 3, "brokers of the Kafka-protocol cluster")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed (0: from the clock)")
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Minute, "bound of the wait for orchestrations to close and records to arrive after the load")
	fs.StringVar(&cfg.Lib, "libchdb", "", "libchdb.so (default: the cache dir, fetched with npm if missing)")
	fs.BoolVar(&cfg.Isolate, "isolate-faults", false, "never overlap an ingress, worker or sink kill with an infrastructure fault (and 10 s after ClickHouse's, 3 s after another's); --short turns it on")
	fs.BoolVar(&short, "short", false, "the CI version: 60 s of light load, every fault kind once or more (flags given explicitly win)")
	return cmd
}

// applyShort sets the CI version's values for flags not given.
func (c *faultRunConfig) applyShort(cmd *cobra.Command) {
	set := func(name string, apply func()) {
		if !cmd.Flags().Changed(name) {
			apply()
		}
	}
	set("duration", func() { c.Duration = 60 * time.Second })
	set("call-rate", func() { c.CallRate = 100 })
	set("submit-rate", func() { c.SubmitRate = 1 })
	set("kill-every", func() { c.KillEvery = 6 * time.Second })
	set("settle", func() { c.Settle = 2 * time.Minute })
	set("isolate-faults", func() { c.Isolate = true })
}

func (c faultRunConfig) validate() error {
	var errs []error
	if c.Duration < 10*time.Second {
		errs = append(errs, errors.New("--duration: at least 10s"))
	}
	if c.CallRate < 1 || c.SubmitRate <= 0 {
		errs = append(errs, errors.New("--call-rate and --submit-rate: positive"))
	}
	if c.KillEvery < time.Second {
		errs = append(errs, errors.New("--kill-every: at least 1s"))
	}
	if c.Brokers < 1 || c.Brokers > 5 {
		errs = append(errs, errors.New("--brokers: 1..5"))
	}
	for _, f := range c.Faults {
		if f == faultNone && len(c.Faults) == 1 {
			continue
		}
		if !slices.Contains(faultKinds, f) {
			errs = append(errs, fmt.Errorf("--faults %q: want some of %s", f, strings.Join(faultKinds, ", ")))
		}
	}
	return errors.Join(errs...)
}

// faultRun is one run: its parts and what happened.
type faultRun struct {
	cfg  faultRunConfig
	dir  string
	rng  *rand.Rand
	out  io.Writer
	logf func(format string, args ...any)

	ch, temporal, kafka *part
	ingress, workers    []*part
	sinks               []*part
	ingressURLs         []string
	temporalHost        string
	chDSN, chHTTP       string
	brokers             []string

	keys struct{ client, bot string }

	faultMu sync.Mutex
	faults  []faultEvent
	// missed are the planned infrastructure faults the load ended before
	// (under CPU load, isolated faults and their quiet times take longer
	// than the short run's minute): reported, so that a pass says what it
	// did not cover.
	missed []string
	// infraBusy is held by an infrastructure fault when the run isolates
	// faults; application kills take it too, and wait until quietUntil
	// (isolateQuiet or isolateQuietOther after the last infrastructure
	// fault), which it guards.
	// The quiet once held infraBusy itself, so that under load the
	// infrastructure faults and their quiet times filled a short run's
	// minute and the last ones were never injected.
	infraBusy  sync.Mutex
	quietUntil time.Time
}

// faultEvent is one injected fault and how long its part took to serve
// again.
type faultEvent struct {
	kind     string
	part     string
	at       time.Time
	recovery time.Duration
	err      error
}

func runFaultRun(ctx context.Context, cfg faultRunConfig, out io.Writer) (err error) {
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	began := time.Now()
	r := &faultRun{cfg: cfg, rng: rand.New(rand.NewPCG(seed, seed>>1|1)), out: out}
	r.logf = func(format string, args ...any) {
		fmt.Fprintf(out, "[%6.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	r.dir = cfg.Dir
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "gateflow-faultrun-"); err != nil {
			return err
		}
	}
	r.logf("fault run: seed %d, dir %s, load %s at %d calls/s and %.1f orchestrations/s, faults %s",
		seed, r.dir, cfg.Duration, cfg.CallRate, cfg.SubmitRate, strings.Join(cfg.Faults, ","))
	defer func() {
		if err == nil && !cfg.Keep && cfg.Dir == "" {
			_ = os.RemoveAll(r.dir)
		} else {
			fmt.Fprintf(out, "working directory kept: %s (logs of every part under it)\n", r.dir)
		}
	}()

	services, err := startFaultRunServices(ctx, r.rng)
	if err != nil {
		return err
	}
	defer services.stop()
	if err := r.writeConfig(services); err != nil {
		return err
	}
	if err := r.buildParts(); err != nil {
		return err
	}
	defer r.stopAll()
	if err := r.startAll(ctx); err != nil {
		return err
	}
	r.logf("all parts ready: %d ingress, %d workers, %d sinks, %d Kafka brokers", len(r.ingress), len(r.workers), len(r.sinks), len(r.brokers))
	// Ten idle seconds first: the parts' CPU without load (tails of the
	// replicated topics, probes, metrics), taken off the per-unit figures.
	idleFrom, idleStart := r.cpuByKind(), time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
	}
	cpuBefore := r.cpuByKind()
	idle := cpuIdle{wall: time.Since(idleStart), used: map[string]time.Duration{}}
	for k, d := range cpuBefore {
		idle.used[k] = d - idleFrom[k]
	}
	loadStart := time.Now()

	load := newFaultLoad(r)
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := load.run(loadCtx)
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		r.injectFaults(loadCtx)
	}()
	select {
	case <-ctx.Done():
	case <-time.After(cfg.Duration):
	}
	stopLoad()
	<-faultsDone
	<-loadDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.logf("load stopped: %d calls answered, %d orchestrations accepted; every part running again", load.calls.answered(), load.accepted())
	if err := r.ensureAllRunning(ctx); err != nil {
		return err
	}
	res, err := load.settleAndCheck(ctx, cfg.Settle)
	if err != nil {
		return err
	}
	r.report(res, load)
	r.reportCPU(ctx, load, res, idle, cpuBefore, time.Since(loadStart))
	if res.failed() {
		return fmt.Errorf("fault run failed: %s", strings.Join(res.problems, "; "))
	}
	return nil
}

// faultRunServices are the services the orchestrations call (the demo
// stand-ins) with a flaky front on the inventory, so that HTTP steps retry.
type faultRunServices struct {
	demo      *demo.Demo
	inventory string // base URL of the flaky front
	flaky     *http.Server
	failed    atomic.Int64
}

func startFaultRunServices(ctx context.Context, rng *rand.Rand) (*faultRunServices, error) {
	ports, err := freePorts(9)
	if err != nil {
		return nil, err
	}
	d, err := demo.Start(ctx, demo.Options{Ports: demo.Ports{Echo: ports[0], Inventory: ports[1], Payments: ports[2],
		Shipping: ports[3], Notifications: ports[4], Catalog: ports[5], Model: ports[6], EchoB: ports[8]}, StreamDelay: -1})
	if err != nil {
		return nil, err
	}
	s := &faultRunServices{demo: d}
	target, _ := url.Parse("http://" + d.Addr(demo.Inventory))
	proxy := httputil.NewSingleHostReverseProxy(target)
	// Failures are drawn at random (seeded by the run): every 4th request
	// failing, as before, let retries that fell into step with other
	// clients' requests land on the failing slot every time, so a step
	// exhausted its ten attempts (found by CI).
	var mu sync.Mutex
	flakes := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ports[7]))
	if err != nil {
		d.Close()
		return nil, err
	}
	s.inventory = "http://" + ln.Addr().String()
	s.flaky = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A quarter of the requests fail: steps with retries succeed
		// later (ten attempts all failing: one in a million).
		mu.Lock()
		fail := flakes.IntN(4) == 0
		mu.Unlock()
		if fail {
			s.failed.Add(1)
			http.Error(w, `{"error":{"code":"unavailable","message":"flaky on purpose"}}`, http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = s.flaky.Serve(ln) }()
	return s, nil
}

func (s *faultRunServices) stop() {
	_ = s.flaky.Close()
	s.demo.Close()
}

// faultRunTenant is the tenant of every client of the run.
const faultRunTenant = "faultrun"

// faultRunDefinition covers every step kind: HTTP with retries (a flaky
// inventory) and compensations, a payment with an idempotency key, a
// foreach of parallel branches (HTTP and model), an approval for large
// amounts (decided by the bot), an MCP tool call, and a wait.
const faultRunDefinition = `
name: fr-order
version: "1"
description: The fault run's orchestration (every step kind).
input_schema:
  type: object
  required: [n, amount, items]
  properties:
    n: {type: integer}
    amount: {type: number}
    items:
      type: array
      minItems: 1
      items:
        type: object
        required: [sku, qty]
        properties:
          sku: {type: string}
          qty: {type: integer}
steps:
  - id: reserve
    kind: http
    service: inventory
    method: POST
    path: /reservations
    body:
      reference: "fr-${{ input.n }}"
      items: ${{ input.items }}
    retry:
      max_attempts: 10
      initial_interval: 100ms
      backoff_coefficient: 2
      max_interval: 1s
      non_retryable_statuses: [400, 409]
    compensate:
      id: release
      kind: http
      service: inventory
      method: DELETE
      path: /reservations/${{ steps.reserve.output.body.id }}
      retry:
        max_attempts: 10
        initial_interval: 100ms
        max_interval: 1s
  - id: charge
    kind: http
    service: payments
    method: POST
    path: /charges
    headers:
      Idempotency-Key: "fr-${{ input.n }}"
    body:
      amount: ${{ input.amount }}
      customer: "c${{ input.n }}@example.com"
    success_statuses: [200, 201]
    retry:
      max_attempts: 5
      initial_interval: 100ms
      non_retryable_statuses: [400, 401, 402, 409]
    compensate:
      id: refund
      kind: http
      service: payments
      method: POST
      path: /refunds
      body:
        charge: ${{ steps.charge.output.body.id }}
  - id: enrich
    kind: foreach
    items: input.items
    concurrency: 2
    steps:
      - id: lookup
        kind: parallel
        branches:
          - name: stock
            steps:
              - id: stock
                kind: http
                service: inventory
                path: /stock/${{ item.sku }}
                retry:
                  max_attempts: 10
                  initial_interval: 100ms
                  max_interval: 1s
          - name: tags
            steps:
              - id: tags
                kind: model
                model: default
                response_format: json
                messages:
                  - role: system
                    content: 'Answer with JSON: {"tags": [string]}'
                  - role: user
                    content: "Tags for ${{ item.sku }}"
                retry:
                  max_attempts: 5
  - id: review
    kind: switch
    cases:
      - when: input.amount >= 1000
        steps:
          - id: manager_approval
            kind: approval
            approvers:
              roles: [manager]
            timeout: 1h
    default:
      - id: auto_approved
        kind: wait
        duration: 10ms
  - id: publish
    kind: mcp
    server: catalog
    tool: publish_products
    arguments:
      products: "${{ map(input.items, ({sku: #.sku})) }}"
  - id: ship
    kind: http
    service: shipping
    method: POST
    path: /shipments
    body:
      reference: "fr-${{ input.n }}"
output:
  reference: "fr-${{ input.n }}"
  charge: ${{ steps.charge.output.body.id }}
  shipment: ${{ steps.ship.output.body.id }}
  published: ${{ steps.publish.output.structured.published }}
  enriched: ${{ len(steps.enrich.output) }}
`

// writeConfig writes the config dir (services, model, MCP server, tenant,
// the definition) and the keys file with the client's and the bot's keys.
func (r *faultRun) writeConfig(s *faultRunServices) error {
	if _, err := definition.Parse([]byte(faultRunDefinition)); err != nil {
		return fmt.Errorf("the fault run's definition: %w", err)
	}
	cfgDir := filepath.Join(r.dir, "config")
	if err := os.MkdirAll(filepath.Join(cfgDir, "definitions"), 0o750); err != nil {
		return err
	}
	d := s.demo
	yaml := fmt.Sprintf(`services:
  inventory: {base_url: %s, timeout: 5s}
  payments:
    base_url: http://%s
    headers: {Authorization: "Bearer faultrun"}
    timeout: 5s
  shipping: {base_url: http://%s, timeout: 5s}
  # The proxied calls' service (/gw/fr-echo/...): two instances, balanced.
  fr-echo:
    owner: %s
    instances: [{base_url: http://%s}, {base_url: http://%s}]
    timeout: 5s
models:
  providers:
    demo:
      kind: openai
      base_url: http://%s/v1
      timeout: 10s
      models:
        echo: {context_tokens: 32768, input_per_mtok: 0.10, output_per_mtok: 0.40}
  aliases:
    default: [demo/echo]
mcp_servers:
  catalog: {url: http://%s/mcp, timeout: 30s}
tenants:
  %s:
    uses: {services: ["*"], mcp_servers: ["*"], models: ["*"], definitions: ["*"]}
    rate_limit: {rps: 1000000, burst: 1000000}
    key_rate_limit: {rps: 1000000, burst: 1000000}
`, s.inventory, d.Addr(demo.Payments), d.Addr(demo.Shipping), faultRunTenant, d.Addr(demo.Echo), d.Addr(demo.EchoB), d.Addr(demo.Model), d.Addr(demo.Catalog), faultRunTenant)
	if err := os.WriteFile(filepath.Join(cfgDir, "gateflow.yaml"), []byte(yaml), 0o640); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "definitions", "fr-order.yaml"), []byte(faultRunDefinition), 0o640); err != nil {
		return err
	}
	keysFile := filepath.Join(cfgDir, "keys.yaml")
	for _, k := range []struct {
		token *string
		roles []string
		user  string
	}{
		{&r.keys.client, []string{"submitter", "analyst"}, "client"},
		{&r.keys.bot, []string{"approver", "manager"}, "bot"},
	} {
		tok, err := auth.NewToken()
		if err != nil {
			return err
		}
		*k.token = tok
		if err := auth.AddKey(keysFile, auth.EntryFor(tok, faultRunTenant, k.roles, k.user)); err != nil {
			return err
		}
		// For a look at a kept run with the CLI (GATEFLOW_API_KEY).
		if err := os.WriteFile(filepath.Join(r.dir, k.user+".key"), []byte(tok+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// buildParts lays out every process: ports, data dirs, arguments.
func (r *faultRun) buildParts() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	lib := r.cfg.Lib
	if lib == "" {
		cache, err := embedded.DefaultCacheDir()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if lib, err = embedded.EnsureLibCHDB(ctx, cache, r.out); err != nil {
			return err
		}
	}
	tports, err := portBlock(r.rng, 4)
	if err != nil {
		return err
	}
	nIngress, nWorkers, nSinks := 2, 2, 2
	ports, err := freePorts(2 + r.cfg.Brokers + nIngress + nWorkers + nSinks)
	if err != nil {
		return err
	}
	next := func() int { p := ports[0]; ports = ports[1:]; return p }
	mk := func(name, kind string, args ...string) *part {
		dir := partsDir(r.dir, name)
		_ = os.MkdirAll(dir, 0o750)
		return &part{name: name, kind: kind, exe: exe, args: args, log: filepath.Join(dir, "out.log")}
	}
	chTCP, chHTTP := next(), next()
	r.chDSN = fmt.Sprintf("clickhouse://127.0.0.1:%d/default", chTCP)
	r.chHTTP = fmt.Sprintf("http://127.0.0.1:%d", chHTTP)
	r.ch = mk("clickhouse", faultClickHouse, "clickhouse-child", "--lib", lib, "--path", partsDir(r.dir, "clickhouse"),
		"--tcp-port", strconv.Itoa(chTCP), "--http-port", strconv.Itoa(chHTTP))
	r.ch.ready = httpReady(r.chHTTP + "/?query=SELECT%201")

	temporalHost := fmt.Sprintf("127.0.0.1:%d", tports[0])
	r.temporalHost = temporalHost
	r.temporal = mk("temporal", faultTemporal, "temporal-server", "--data-dir", partsDir(r.dir, "temporal"),
		"--port", strconv.Itoa(tports[0]), "--history-port", strconv.Itoa(tports[1]),
		"--matching-port", strconv.Itoa(tports[2]), "--worker-port", strconv.Itoa(tports[3]), "--log-level", "warn")
	r.temporal.ready = tcpReady(temporalHost)

	var bports []string
	for range r.cfg.Brokers {
		p := next()
		bports = append(bports, strconv.Itoa(p))
		r.brokers = append(r.brokers, fmt.Sprintf("127.0.0.1:%d", p))
	}
	r.kafka = mk("kafka", faultKafka, "kafka-broker", "--data-dir", partsDir(r.dir, "kafka"), "--ports", strings.Join(bports, ","),
		"--partitions", "6", "--log-level", "warn")
	r.kafka.ready = func(ctx context.Context) error {
		for _, b := range r.brokers {
			if err := tcpReady(b)(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	brokers := strings.Join(r.brokers, ",")
	cfgDir := filepath.Join(r.dir, "config")
	common := func(kind string) []string {
		return []string{"--kafka-brokers", brokers, "--clickhouse-dsn", r.chDSN, "--log-level", "warn"}
	}
	for i := range nSinks {
		name := fmt.Sprintf("sink-%d", i+1)
		mp := next()
		p := mk(name, faultSink, append([]string{"sink", "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mp),
			"--batch-interval", "200ms"}, common("sink")...)...)
		p.ready = httpReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", mp))
		r.sinks = append(r.sinks, p)
	}
	for i := range nWorkers {
		name := fmt.Sprintf("worker-%d", i+1)
		mp := next()
		p := mk(name, faultWorker, append([]string{"worker", "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mp),
			"--temporal-host", temporalHost, "--config-dir", cfgDir, "--spool-dir", partsDir(r.dir, name+"/spool"),
			"--stop-timeout", "2s"}, common("worker")...)...)
		p.ready = httpReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", mp))
		r.workers = append(r.workers, p)
	}
	for i := range nIngress {
		name := fmt.Sprintf("ingress-%d", i+1)
		lp := next()
		u := fmt.Sprintf("http://127.0.0.1:%d", lp)
		p := mk(name, faultIngress, append([]string{"ingress", "--listen", fmt.Sprintf("127.0.0.1:%d", lp),
			"--temporal-host", temporalHost, "--config-dir", cfgDir, "--keys-file", filepath.Join(cfgDir, "keys.yaml"),
			"--spool-dir", partsDir(r.dir, name+"/spool"), "--shutdown-timeout", "2s"}, common("ingress")...)...)
		p.ready = httpReady(u + "/readyz")
		r.ingress = append(r.ingress, p)
		r.ingressURLs = append(r.ingressURLs, u)
	}
	return nil
}

// all lists the parts in start order.
func (r *faultRun) all() []*part {
	out := []*part{r.ch, r.temporal, r.kafka}
	out = append(out, r.sinks...)
	out = append(out, r.workers...)
	return append(out, r.ingress...)
}

// startAll starts the parts, infrastructure first, each waited for.
func (r *faultRun) startAll(ctx context.Context) error {
	infra := []*part{r.ch, r.temporal, r.kafka}
	for _, p := range infra {
		if err := p.start(); err != nil {
			return err
		}
	}
	for _, p := range infra {
		if err := p.waitReady(ctx, 2*time.Minute); err != nil {
			return err
		}
	}
	apps := r.all()[3:]
	for _, p := range apps {
		if err := p.start(); err != nil {
			return err
		}
	}
	for _, p := range apps {
		if err := p.waitReady(ctx, 2*time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// stopAll stops the applications, then the infrastructure.
func (r *faultRun) stopAll() {
	parts := r.all()
	var wg sync.WaitGroup
	for _, p := range parts[3:] {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(15 * time.Second) }()
	}
	wg.Wait()
	for _, p := range parts[:3] {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(15 * time.Second) }()
	}
	wg.Wait()
}

// ensureAllRunning restarts a part that is down (a crash the run did not
// cause is reported by the checks, not hidden: it is logged here).
func (r *faultRun) ensureAllRunning(ctx context.Context) error {
	for _, p := range r.all() {
		if p.exited() {
			r.logf("WARNING: %s had exited on its own; restarting it (see %s)", p.name, p.log)
			if err := p.start(); err != nil {
				return err
			}
		}
		if err := p.waitReady(ctx, 2*time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// injectFaults kills a random ingress, worker or sink every KillEvery, and
// the infrastructure faults at fixed points of the run, until ctx ends.
func (r *faultRun) injectFaults(ctx context.Context) {
	enabled := func(k string) bool { return slices.Contains(r.cfg.Faults, k) }
	var apps []*part
	for _, p := range r.all()[3:] {
		if enabled(p.kind) {
			apps = append(apps, p)
		}
	}
	// Infrastructure faults, spread over the run (fractions of Duration).
	// Every kind comes once before the second broker bounce: when isolated
	// faults and their quiet times fill a short run under load, the one
	// left out is a repeat.
	type planned struct {
		at   time.Duration
		kind string
	}
	var plan []planned
	for _, f := range []struct {
		kind string
		at   []float64
	}{
		{faultBroker, []float64{0.15, 0.7}},
		{faultClickHouse, []float64{0.3}},
		{faultTemporal, []float64{0.45}},
		{faultKafka, []float64{0.55}},
	} {
		if !enabled(f.kind) {
			continue
		}
		for _, at := range f.at {
			plan = append(plan, planned{time.Duration(float64(r.cfg.Duration) * at), f.kind})
		}
	}
	slices.SortFunc(plan, func(a, b planned) int { return int(a.at - b.at) })
	start := time.Now()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, f := range plan {
			select {
			case <-ctx.Done():
				r.faultMu.Lock()
				for _, m := range plan[i:] {
					r.missed = append(r.missed, m.kind)
				}
				r.faultMu.Unlock()
				return
			case <-time.After(time.Until(start.Add(f.at))):
			}
			if r.cfg.Isolate {
				r.infraBusy.Lock()
			}
			r.infraFault(ctx, f.kind)
			if r.cfg.Isolate {
				quiet := isolateQuietOther
				if f.kind == faultClickHouse {
					quiet = isolateQuiet
				}
				r.quietUntil = time.Now().Add(quiet)
				r.infraBusy.Unlock()
			}
		}
	}()
	if len(apps) == 0 {
		return
	}
	// The kinds take turns (the part of a kind is random): a short run
	// whose kills are few, when isolation holds them back, still kills
	// each kind.
	var kinds []string
	for _, p := range apps {
		if !slices.Contains(kinds, p.kind) {
			kinds = append(kinds, p.kind)
		}
	}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.KillEvery):
		}
		kind := kinds[i%len(kinds)]
		of := slices.DeleteFunc(slices.Clone(apps), func(p *part) bool { return p.kind != kind })
		p := of[r.rng.IntN(len(of))]
		if r.cfg.Isolate && !r.lockQuiet(ctx) {
			return
		}
		r.killAndRestart(ctx, p, p.kind, 500*time.Millisecond)
		if r.cfg.Isolate {
			r.infraBusy.Unlock()
		}
	}
}

// lockQuiet takes infraBusy once no infrastructure fault is under way and
// its quiet time is over; false when ctx ended first (not held then).
func (r *faultRun) lockQuiet(ctx context.Context) bool {
	for {
		r.infraBusy.Lock()
		wait := time.Until(r.quietUntil)
		if wait <= 0 {
			return true
		}
		r.infraBusy.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// killAndRestart SIGKILLs p, waits pause, starts it again and records how
// long it took until it served.
func (r *faultRun) killAndRestart(ctx context.Context, p *part, kind string, pause time.Duration) {
	at := time.Now()
	p.signal(syscall.SIGKILL)
	time.Sleep(pause)
	ev := faultEvent{kind: kind, part: p.name, at: at}
	if err := p.start(); err != nil {
		ev.err = err
	} else {
		ev.err = p.waitReady(context.WithoutCancel(ctx), 2*time.Minute)
	}
	ev.recovery = time.Since(at)
	r.record(ev)
}

func (r *faultRun) record(ev faultEvent) {
	r.faultMu.Lock()
	r.faults = append(r.faults, ev)
	r.faultMu.Unlock()
	if ev.err != nil {
		r.logf("fault %-10s %-10s: NOT recovered: %v", ev.kind, ev.part, ev.err)
		return
	}
	r.logf("fault %-10s %-10s: serving again after %s", ev.kind, ev.part, ev.recovery.Round(time.Millisecond))
}

// infraFault injects one infrastructure fault.
func (r *faultRun) infraFault(ctx context.Context, kind string) {
	switch kind {
	case faultBroker:
		// One broker away for 2 s (kafka-broker's --bounce-down), then
		// back: recovered when every broker accepts again.
		at := time.Now()
		r.kafka.signal(syscall.SIGUSR1)
		time.Sleep(100 * time.Millisecond)
		err := r.kafka.waitReady(context.WithoutCancel(ctx), time.Minute)
		r.record(faultEvent{kind: kind, part: "kafka broker", at: at, recovery: time.Since(at), err: err})
	case faultClickHouse:
		r.killAndRestart(ctx, r.ch, kind, time.Second)
	case faultKafka:
		r.killAndRestart(ctx, r.kafka, kind, time.Second)
	case faultTemporal:
		// Recovered when the ingresses answer /readyz (they check Temporal).
		at := time.Now()
		r.temporal.signal(syscall.SIGKILL)
		time.Sleep(time.Second)
		ev := faultEvent{kind: kind, part: "temporal", at: at}
		if ev.err = r.temporal.start(); ev.err == nil {
			ev.err = r.temporal.waitReady(context.WithoutCancel(ctx), 2*time.Minute)
			for _, p := range r.ingress {
				if ev.err == nil {
					ev.err = p.waitReady(context.WithoutCancel(ctx), 2*time.Minute)
				}
			}
		}
		ev.recovery = time.Since(at)
		r.record(ev)
	}
}

// cpuByKind sums the CPU time of the parts by kind.
func (r *faultRun) cpuByKind() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range r.all() {
		out[p.kind] += p.cpu()
	}
	return out
}

// cpuIdle is the CPU the parts used, by kind, over wall without load.
type cpuIdle struct {
	wall time.Duration
	used map[string]time.Duration
}

// reportCPU prints the CPU each kind of part spent from the start of the
// load to the end of the checks, per unit of its work, net of what the
// parts use idle over the same time: the per-core figures of
// docs/SCALING.md. With faults, restarts' start-up CPU is in it.
func (r *faultRun) reportCPU(ctx context.Context, load *faultLoad, res *faultResult, idle cpuIdle, before map[string]time.Duration, wall time.Duration) {
	after := r.cpuByKind()
	scale := float64(wall) / float64(idle.wall)
	used := func(kind string) time.Duration { return after[kind] - before[kind] }
	net := func(kind string) time.Duration {
		return max(0, used(kind)-time.Duration(float64(idle.used[kind])*scale))
	}
	records := int64(0)
	if out, err := r.chQuery(ctx, "SELECT count() FROM calls FORMAT TSV"); err == nil {
		records, _ = strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	}
	requests := load.seq.Load()
	per := func(d time.Duration, n int64, unit time.Duration) float64 {
		if n <= 0 {
			return 0
		}
		return float64(d) / float64(n) / float64(unit)
	}
	tw := tabwriter.NewWriter(r.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "CPU over %s\tseconds\tidle, %% of a core\tper unit of work, net of idle\n", wall.Round(time.Second))
	row := func(kind, what string, n int64, unit time.Duration, unitName string) {
		fmt.Fprintf(tw, "  %s\t%.1f\t%.1f\t%.1f %s per %s (%d)\n", kind, used(kind).Seconds(),
			100*float64(idle.used[kind])/float64(idle.wall), per(net(kind), n, unit), unitName, what, n)
	}
	row(faultIngress, "client request", requests, time.Microsecond, "µs")
	row(faultWorker, "orchestration", int64(res.accepted), time.Millisecond, "ms")
	row(faultSink, "record", records, time.Microsecond, "µs")
	row(faultTemporal, "orchestration", int64(res.accepted), time.Millisecond, "ms")
	row(faultKafka, "record", records, time.Microsecond, "µs")
	row(faultClickHouse, "record", records, time.Microsecond, "µs")
	_ = tw.Flush()
}

// report prints the run's table.
func (r *faultRun) report(res *faultResult, load *faultLoad) {
	fmt.Fprintln(r.out)
	tw := tabwriter.NewWriter(r.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "load held\t%.0f calls/s answered (%d; %d sent through the gateway), %.2f orchestrations/s closed (%d accepted, %d submit retries)\n",
		res.callRate, res.answered, load.proxyCalls.Load(), res.orchRate, res.accepted, load.submitRetries.Load())
	r.faultMu.Lock()
	byKind := map[string][]faultEvent{}
	for _, ev := range r.faults {
		byKind[ev.kind] = append(byKind[ev.kind], ev)
	}
	r.faultMu.Unlock()
	for _, k := range faultKinds {
		evs := byKind[k]
		if len(evs) == 0 {
			continue
		}
		var rec []time.Duration
		failed := 0
		for _, ev := range evs {
			if ev.err != nil {
				failed++
				continue
			}
			rec = append(rec, ev.recovery)
		}
		line := fmt.Sprintf("%d", len(evs))
		if len(rec) > 0 {
			slices.Sort(rec)
			line += fmt.Sprintf("\trecovery median %s, max %s", medianOf(rec).Round(10*time.Millisecond), rec[len(rec)-1].Round(10*time.Millisecond))
		}
		if failed > 0 {
			line += fmt.Sprintf(", %d NOT recovered", failed)
		}
		fmt.Fprintf(tw, "faults: %s\t%s\n", k, line)
	}
	r.faultMu.Lock()
	if len(r.missed) > 0 {
		fmt.Fprintf(tw, "faults not injected\t%s (the load ended first: isolated faults and their quiet times took longer)\n", strings.Join(r.missed, ", "))
	}
	r.faultMu.Unlock()
	for _, l := range res.lines {
		fmt.Fprintln(tw, l)
	}
	_ = tw.Flush()
	if res.failed() {
		fmt.Fprintf(r.out, "FAILED: %s\n", strings.Join(res.problems, "; "))
	} else {
		fmt.Fprintln(r.out, "PASS: lost 0, duplicated 0")
	}
}
