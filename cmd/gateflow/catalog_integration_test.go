//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/workflows/wire"
)

// childEnv makes the test binary run one part of the stack (an ingress
// replica or a worker) in a process of its own: the catalogue test runs
// two ingress processes and kills a worker.
const childEnv = "GATEFLOW_TEST_CHILD"

// childConfig is what a child part needs.
type childConfig struct {
	Role      string   `json:"role"` // "ingress" or "worker"
	Temporal  string   `json:"temporal"`
	Namespace string   `json:"namespace"`
	TaskQueue string   `json:"task_queue"`
	Brokers   []string `json:"brokers"`
	DSN       string   `json:"dsn"`
	ConfigDir string   `json:"config_dir"`
	KeysFile  string   `json:"keys_file"`
	Spool     string   `json:"spool"`
}

func TestMain(m *testing.M) {
	if raw := os.Getenv(childEnv); raw != "" {
		os.Exit(runTestChild(raw))
	}
	embeddedtest.Main(m)
}

func (c childConfig) ingress() ingressConfig {
	icfg := defaultIngressConfig()
	icfg.Temporal.HostPort, icfg.Temporal.Namespace, icfg.Temporal.TaskQueue = c.Temporal, c.Namespace, c.TaskQueue
	icfg.Kafka.Brokers = c.Brokers
	icfg.ClickHouse.DSN = c.DSN
	icfg.Listen, icfg.ConfigDir, icfg.KeysFile, icfg.SpoolDir = "127.0.0.1:0", c.ConfigDir, c.KeysFile, c.Spool
	icfg.ReloadInterval, icfg.ShutdownTimeout = time.Second, 5*time.Second
	return icfg
}

func (c childConfig) worker() workerConfig {
	wcfg := flagDefaults((*workerConfig).bind)
	wcfg.Temporal.HostPort, wcfg.Temporal.Namespace, wcfg.Temporal.TaskQueue = c.Temporal, c.Namespace, c.TaskQueue
	wcfg.Kafka.Brokers = c.Brokers
	wcfg.ClickHouse.DSN = c.DSN
	wcfg.ConfigDir, wcfg.SpoolDir, wcfg.MetricsListen, wcfg.StopTimeout = c.ConfigDir, c.Spool, "", time.Second
	return wcfg
}

// runTestChild runs runIngress or runWorker (the code of `gateflow
// ingress` and `gateflow worker`) until SIGTERM, printing "child ready" and
// the ingress's address on stdout.
func runTestChild(raw string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var err error
	switch cfg.Role {
	case "ingress":
		icfg := cfg.ingress()
		icfg.OnListen = func(addr string) { fmt.Printf("child ready %s\n", addr) }
		err = runIngress(ctx, icfg, log)
	case "worker":
		fmt.Println("child ready")
		err = runWorker(ctx, cfg.worker(), log)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

type childProc struct {
	cmd    *exec.Cmd
	stderr *lockedWriter
	addr   string
}

func startTestChild(t *testing.T, cfg childConfig) *childProc {
	t.Helper()
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	p := &childProc{cmd: cmd, stderr: &lockedWriter{}}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "child ready"); ok {
				ready <- strings.TrimSpace(rest)
			}
		}
	}()
	select {
	case p.addr = <-ready:
	case <-time.After(90 * time.Second):
		t.Fatalf("%s child not ready:\n%s", cfg.Role, p.stderr)
	}
	return p
}

// kill sends SIGKILL and reaps the process.
func (p *childProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// catalogStack is the real stack of the catalogue test: an in-process
// Temporal server, kfake and a ClickHouse child; a sink and ingress
// replica A in this process; a worker and ingress replica B in processes
// of their own.
type catalogStack struct {
	t          *testing.T
	child      childConfig
	chDSN      string
	a, b       string // base URLs of the two replicas
	acme, beta string // admin keys of the owner and the consumer
	worker     *childProc
	replicaB   *childProc
	clockShift atomic.Int64
}

const catalogConfig = `
tenants:
  acme:
    uses: {definitions: ["invoice", "ping"]}
    rate_limit: {rps: 1000, burst: 1000}
    key_rate_limit: {rps: 1000, burst: 1000}
  beta:
    rate_limit: {rps: 1000, burst: 1000}
    key_rate_limit: {rps: 1000, burst: 1000}
`

func invoiceDefinition(version string) string {
	return `{"name": "invoice", "version": "` + version + `", "description": "Bill an amount",
		"input_schema": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}},
		"steps": [{"id": "nap", "kind": "wait", "duration": "10ms"}],
		"output": {"billed": "${{ input.amount }}", "version": "` + version + `"}}`
}

const pingDefinition = `{"name": "ping", "version": "1", "steps": [{"id": "nap", "kind": "wait", "duration": "1ms"}]}`

func startCatalogStack(t *testing.T) *catalogStack {
	t.Helper()
	s := &catalogStack{t: t}
	dir := t.TempDir()
	confDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(filepath.Join(confDir, "definitions"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"gateflow.yaml": catalogConfig, "definitions/invoice-1.json": invoiceDefinition("1"),
		"definitions/invoice-2.json": invoiceDefinition("2"), "definitions/ping.json": pingDefinition}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(confDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keysFile := filepath.Join(confDir, "keys.yaml")
	for _, k := range []struct {
		tenant, user string
		roles        []string
		token        *string
	}{{"acme", "ann", []string{"admin", "approver", "submitter"}, &s.acme}, {"beta", "bob", []string{"admin", "submitter"}, &s.beta}} {
		tok, _ := auth.NewToken()
		if err := auth.AddKey(keysFile, auth.EntryFor(tok, k.tenant, k.roles, k.user)); err != nil {
			t.Fatal(err)
		}
		*k.token = tok
	}

	ts := temporaltest.NewServer(
		temporaltest.WithT(t),
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}),
		temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			dynamicconfig.TimerProcessorMaxTimeShift.Key():              []dynamicconfig.ConstrainedValue{{Value: 10 * time.Millisecond}},
		})),
	)
	kafkaAddr := embeddedtest.StartKafka(t, embedded.Topic{Name: "gateflow.calls", Partitions: 3}, embedded.Topic{Name: "gateflow.calls.dlq", Partitions: 1})
	dsn, _ := embeddedtest.StartClickHouse(t)
	s.chDSN = dsn
	s.child = childConfig{Temporal: ts.GetFrontendHostPort(), Namespace: ts.GetDefaultNamespace(), TaskQueue: "catalog-e2e",
		Brokers: []string{kafkaAddr}, DSN: dsn, ConfigDir: confDir, KeysFile: keysFile}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	scfg := flagDefaults((*sinkConfig).bind)
	scfg.Kafka.Brokers, scfg.ClickHouse.DSN, scfg.MetricsListen, scfg.BatchInterval = []string{kafkaAddr}, dsn, "", 200*time.Millisecond
	wg.Add(1)
	go func() { defer wg.Done(); _ = runSink(ctx, scfg, log) }()

	w := s.child
	w.Role, w.Spool = "worker", filepath.Join(dir, "spool-worker")
	s.worker = startTestChild(t, w)

	icfg := s.child.ingress()
	icfg.SpoolDir = filepath.Join(dir, "spool-a")
	icfg.QuotaClock = func() time.Time { return time.Now().Add(time.Duration(s.clockShift.Load())) }
	listening := make(chan string, 1)
	icfg.OnListen = func(addr string) { listening <- addr }
	wg.Add(1)
	go func() { defer wg.Done(); _ = runIngress(ctx, icfg, log) }()
	select {
	case addr := <-listening:
		s.a = "http://" + addr
	case <-time.After(60 * time.Second):
		t.Fatal("replica A did not listen")
	}
	b := s.child
	b.Role, b.Spool = "ingress", filepath.Join(dir, "spool-b")
	s.replicaB = startTestChild(t, b)
	s.b = "http://" + s.replicaB.addr
	for _, base := range []string{s.a, s.b} {
		s.poll("replica "+base+" ready", 60*time.Second, func() bool {
			status, _, _ := s.do(base, "", http.MethodGet, "/readyz", nil)
			return status == http.StatusOK
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker stderr:\n%s\nreplica B stderr:\n%s", s.worker.stderr, s.replicaB.stderr)
		}
	})
	return s
}

// do sends one request and returns the status, headers and body.
func (s *catalogStack) do(base, key, method, path string, body any) (int, http.Header, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// must sends a request that must answer want, decoding the body into out.
func (s *catalogStack) must(want int, base, key, method, path string, body, out any) http.Header {
	s.t.Helper()
	status, h, b := s.do(base, key, method, path, body)
	if status != want {
		s.t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return h
}

// apiError is the one error shape.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"details"`
}

// errorOf sends a request that must fail with status, and returns the error.
func (s *catalogStack) errorOf(status int, base, key, method, path string, body any) (apiError, http.Header) {
	s.t.Helper()
	var e struct {
		Error apiError `json:"error"`
	}
	h := s.must(status, base, key, method, path, body, &e)
	return e.Error, h
}

func (s *catalogStack) poll(what string, limit time.Duration, ok func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// subscriptionState reads a subscription's state on a replica.
func (s *catalogStack) subscriptionState(base, key, id string) string {
	var sub wire.Subscription
	if status, _, b := s.do(base, key, http.MethodGet, "/v1/subscriptions/"+id, nil); status == http.StatusOK {
		_ = json.Unmarshal(b, &sub)
	}
	return sub.State
}

func quantiles(ds []time.Duration) (p50, max time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// TestCatalogEndToEnd is issue 11's test through the real stack: tenant
// acme publishes a shared API; beta is refused (403), requests a
// subscription, the worker is killed while it waits and another one takes
// over, acme's approver approves through /v1/approvals, beta's call
// succeeds and its record names the API and the consumer; the quota gives
// 429 and resets the next day; acme deprecates (headers) and retires (410);
// revocations reach the second ingress process (measured), and so do keys
// created and disabled through the API (measured).
func TestCatalogEndToEnd(t *testing.T) {
	s := startCatalogStack(t)
	ctx := context.Background()

	// Acme publishes a shared orchestration API.
	create := wire.CreateAPIRequest{Name: "invoices", Kind: wire.APIKindOrchestration, Title: "Invoices", Visibility: wire.VisibilityShared,
		Tags: []string{"billing"}, Docs: "# Invoices\nBill an amount.",
		Plans:    []wire.Plan{{Name: "free", Quota: wire.Quota{Daily: 3}}, {Name: "gold"}},
		Approval: &wire.SubscriptionApproval{Approvers: wire.Approvers{Roles: []string{"approver"}}, Timeout: "1h"},
		Version:  wire.APIVersionSpec{Version: "1", Target: wire.APITarget{Definition: "invoice", DefinitionVersion: "1"}}}
	var api wire.API
	s.must(http.StatusCreated, s.a, s.acme, http.MethodPost, "/v1/catalog", create, &api)
	if api.Owner != "acme" || len(api.Versions[0].OpenAPI) == 0 || api.Versions[0].State != wire.StateDraft {
		t.Fatalf("created: %+v", api)
	}
	if e, _ := s.errorOf(http.StatusConflict, s.a, s.beta, http.MethodPost, "/v1/catalog", create); e.Code != "name_taken" {
		t.Fatalf("name taken by another tenant: %+v", e)
	}
	// A draft is invisible to other tenants; a move from draft to
	// deprecated is refused naming the state.
	s.errorOf(http.StatusNotFound, s.a, s.beta, http.MethodGet, "/v1/catalog/invoices", nil)
	if e, _ := s.errorOf(http.StatusConflict, s.a, s.acme, http.MethodPost, "/v1/catalog/invoices/versions/1/lifecycle", wire.TransitionRequest{State: wire.StateDeprecated}); !strings.Contains(e.Message, "is draft") {
		t.Fatalf("invalid move: %+v", e)
	}
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/catalog/invoices/versions/1/lifecycle", wire.TransitionRequest{State: wire.StatePublished, Reason: "GA"}, &api)

	// Beta finds it (on either replica), is refused, subscribes.
	s.poll("the API on replica B", 10*time.Second, func() bool {
		var list wire.APIList
		status, _, b := s.do(s.b, s.beta, http.MethodGet, "/v1/catalog?q=invoice&tag=billing", nil)
		return status == http.StatusOK && json.Unmarshal(b, &list) == nil && len(list.Items) == 1
	})
	call := map[string]any{"amount": 42}
	if e, _ := s.errorOf(http.StatusForbidden, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/call", call); e.Code != "subscription_required" || !strings.Contains(e.Message, "/v1/catalog/invoices/subscriptions") {
		t.Fatalf("no grant: %+v", e)
	}
	if e, _ := s.errorOf(http.StatusUnprocessableEntity, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/subscriptions", wire.SubscribeRequest{Plan: "platinum"}); !strings.Contains(e.Message, "plan") {
		t.Fatalf("plan not offered: %+v", e)
	}
	var sub wire.Subscription
	s.must(http.StatusCreated, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/subscriptions", wire.SubscribeRequest{Plan: "free", Reason: "billing integration"}, &sub)
	if sub.State != wire.SubscriptionPending || sub.WorkflowID == "" {
		t.Fatalf("requested: %+v", sub)
	}
	if e, _ := s.errorOf(http.StatusConflict, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/subscriptions", wire.SubscribeRequest{Plan: "gold"}); e.Code != "subscription_pending" {
		t.Fatalf("second request: %+v", e)
	}

	// The worker dies while the subscription waits; another takes over.
	var approvals wire.Approvals
	s.poll("the approval listed", 30*time.Second, func() bool {
		status, _, b := s.do(s.a, s.acme, http.MethodGet, "/v1/approvals", nil)
		return status == http.StatusOK && json.Unmarshal(b, &approvals) == nil && len(approvals.Items) == 1
	})
	s.worker.kill()
	w := s.child
	w.Role, w.Spool = "worker", filepath.Join(t.TempDir(), "spool-worker-2")
	s.worker = startTestChild(t, w)
	if approvals.Items[0].WorkflowID != sub.WorkflowID || approvals.Items[0].StepID != "approve" {
		t.Fatalf("approval: %+v", approvals.Items[0])
	}
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/workflows/"+sub.WorkflowID+"/approvals/approve", map[string]string{"decision": "approve", "comment": "welcome"}, nil)
	s.poll("the grant active on replica A", 30*time.Second, func() bool { return s.subscriptionState(s.a, s.beta, sub.ID) == wire.SubscriptionActive })

	// Beta's call runs the owner's orchestration; beta follows it.
	var started wire.CatalogCall
	s.must(http.StatusAccepted, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/call", call, &started)
	s.poll("the call's run to succeed", 30*time.Second, func() bool {
		var st wire.RunStatus
		status, _, b := s.do(s.a, s.beta, http.MethodGet, started.StatusURL, nil)
		return status == http.StatusOK && json.Unmarshal(b, &st) == nil && st.State == wire.RunSucceeded
	})
	s.errorOf(http.StatusNotFound, s.a, s.beta, http.MethodGet, "/v1/catalog/invoices/calls/cat-acme.0000", nil)

	// Quota: free allows 3 calls a day.
	s.must(http.StatusAccepted, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/call", call, nil)
	s.must(http.StatusAccepted, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/call", call, nil)
	e, h := s.errorOf(http.StatusTooManyRequests, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/call", call)
	if e.Code != "quota_exceeded" || !strings.Contains(e.Message, "resets at") || h.Get("Retry-After") == "" {
		t.Fatalf("over quota: %+v %v", e, h)
	}
	s.clockShift.Store(int64(24 * time.Hour)) // the next UTC day
	s.must(http.StatusAccepted, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/call", call, nil)

	// Deprecate version 1 for version 2: answers carry the headers.
	s.must(http.StatusCreated, s.a, s.acme, http.MethodPost, "/v1/catalog/invoices/versions", wire.APIVersionSpec{Version: "2", Target: wire.APITarget{Definition: "invoice", DefinitionVersion: "2"}}, nil)
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/catalog/invoices/versions/2/lifecycle", wire.TransitionRequest{State: wire.StatePublished}, nil)
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/catalog/invoices/versions/1/lifecycle", wire.TransitionRequest{State: wire.StateDeprecated, Successor: "2", Reason: "v2 bills in cents"}, nil)
	h = s.must(http.StatusAccepted, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/call?version=1", call, nil)
	if !strings.HasPrefix(h.Get("Deprecation"), "@") || h.Get("Sunset") == "" || !strings.Contains(strings.Join(h.Values("Link"), ","), `version=2>; rel="successor-version"`) {
		t.Fatalf("deprecated answer headers: %v", h)
	}
	// Retire it: 410 naming the successor.
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/catalog/invoices/versions/1/lifecycle", wire.TransitionRequest{State: wire.StateRetired, Reason: "sunset"}, nil)
	if e, _ := s.errorOf(http.StatusGone, s.a, s.beta, http.MethodPost, "/v1/catalog/invoices/call?version=1", call); e.Code != "api_retired" || !strings.Contains(e.Message, "use version 2") {
		t.Fatalf("retired: %+v", e)
	}
	var detail wire.APIDetail
	s.must(http.StatusOK, s.a, s.beta, http.MethodGet, "/v1/catalog/invoices", nil, &detail)
	if len(detail.History) < 5 || detail.History[len(detail.History)-1].By != "ann" || len(detail.Subscriptions) != 1 {
		t.Fatalf("history and subscriptions as the consumer sees them: %+v", detail)
	}

	// The records name the API, its version and the consumer.
	s.checkRecords(ctx)
	s.checkCLI()

	// Revocations reach replica B: measured over several grants of an API
	// granted at once (approval: none).
	s.measureRevocations()
	s.measureKeys()
}

// checkRecords waits for the ingress records of beta's calls in ClickHouse.
func (s *catalogStack) checkRecords(ctx context.Context) {
	t := s.t
	opts, err := clickhouse.ParseDSN(s.chDSN)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var admitted, deprecated, refused uint64
	s.poll("the call records in ClickHouse", 60*time.Second, func() bool {
		err := conn.QueryRow(ctx, `SELECT countIf(consumer = 'beta' AND consumer_app = '' AND api_version != ''),
			countIf(labels['api_state'] = 'deprecated' AND api_version = '1' AND consumer = 'beta'),
			countIf(consumer = '' AND error_class = 'subscription_required')
			FROM calls WHERE api = 'invoices' AND tenant = 'beta' AND kind = 'ingress'`).Scan(&admitted, &deprecated, &refused)
		return err == nil && admitted >= 5 && deprecated == 1 && refused == 1
	})
	// The rollup is written by a materialized view in the same insert, but
	// its part may become visible a moment after the raw one.
	var perConsumer uint64
	s.poll("the catalogue rollup", 30*time.Second, func() bool {
		err := conn.QueryRow(ctx, `SELECT sum(calls) FROM api_calls_1m WHERE api = 'invoices' AND consumer = 'beta'`).Scan(&perConsumer)
		return err == nil && perConsumer == admitted
	})
	// The owner sees its API's usage by consumer through the API.
	var top struct{ Items []struct{ Group string } }
	s.must(http.StatusOK, s.a, s.acme, http.MethodGet, "/v1/analytics/top?by=consumer&from=2h&api=invoices", nil, &top)
	if len(top.Items) == 0 || top.Items[0].Group != "beta" {
		t.Fatalf("owner's top consumers: %+v", top)
	}
}

// measureRevocations revokes N grants on replica A and times how long
// replica B (another process) takes to refuse the consumer.
func (s *catalogStack) measureRevocations() {
	t := s.t
	create := wire.CreateAPIRequest{Name: "pings", Kind: wire.APIKindOrchestration, Title: "Pings", Visibility: wire.VisibilityShared,
		Plans: []wire.Plan{{Name: "open"}}, Approval: &wire.SubscriptionApproval{None: true},
		Version: wire.APIVersionSpec{Version: "1", Target: wire.APITarget{Definition: "ping", DefinitionVersion: "1"}}}
	s.must(http.StatusCreated, s.a, s.acme, http.MethodPost, "/v1/catalog", create, nil)
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/catalog/pings/versions/1/lifecycle", wire.TransitionRequest{State: wire.StatePublished}, nil)
	const n = 10
	var fromAnswer, fromRequest []time.Duration
	for i := range n {
		var sub wire.Subscription
		if i == 0 {
			// The first request through the MCP tools an agent uses.
			sub = s.mcpSubscribe("pings", "open")
		} else {
			s.must(http.StatusCreated, s.a, s.beta, http.MethodPost, "/v1/catalog/pings/subscriptions", wire.SubscribeRequest{Plan: "open"}, &sub)
		}
		s.poll("the grant on replica B", 10*time.Second, func() bool { return s.subscriptionState(s.b, s.beta, sub.ID) == wire.SubscriptionActive })
		if i == 0 {
			s.must(http.StatusAccepted, s.b, s.beta, http.MethodPost, "/v1/catalog/pings/call", map[string]any{}, nil)
		}
		began := time.Now()
		s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/subscriptions/"+sub.ID+"/revoke", wire.EndSubscriptionRequest{Reason: fmt.Sprint("round ", i)}, nil)
		answered := time.Now()
		s.poll("the revocation on replica B", 10*time.Second, func() bool { return s.subscriptionState(s.b, s.beta, sub.ID) == wire.SubscriptionRevoked })
		seen := time.Now()
		fromAnswer, fromRequest = append(fromAnswer, seen.Sub(answered)), append(fromRequest, seen.Sub(began))
		if i == 0 {
			if e, _ := s.errorOf(http.StatusForbidden, s.b, s.beta, http.MethodPost, "/v1/catalog/pings/call", map[string]any{}); e.Code != "subscription_required" {
				t.Fatalf("replica B after the revocation: %+v", e)
			}
		}
	}
	p50, mx := quantiles(fromAnswer)
	rp50, rmx := quantiles(fromRequest)
	t.Logf("revocation reaches replica B (another process), %d revocations: after the revoke answer p50 %s max %s; after the revoke request p50 %s max %s (20 ms polling)",
		n, p50.Round(time.Millisecond), mx.Round(time.Millisecond), rp50.Round(time.Millisecond), rmx.Round(time.Millisecond))
}

// checkCLI runs the CLI commands of the catalogue against replica A.
func (s *catalogStack) checkCLI() {
	t := s.t
	acme := []string{"--api-url", s.a, "--api-key", s.acme}
	beta := []string{"--api-url", s.a, "--api-key", s.beta}
	if out, err := runCLI(t, newCatalogCmd, append([]string{"invoice", "--tag", "billing"}, beta...)...); err != nil || !strings.Contains(out, "invoices") || !strings.Contains(out, "active (free)") {
		t.Fatalf("catalog search: %q %v", out, err)
	}
	if out, err := runCLI(t, newCatalogCmd, append([]string{"show", "invoices"}, beta...)...); err != nil || !strings.Contains(out, "retired") || !strings.Contains(out, "v2 bills in cents") {
		t.Fatalf("catalog show: %q %v", out, err)
	}
	if out, err := runCLI(t, newSubscriptionsCmd, append([]string{"--as", "owner"}, acme...)...); err != nil || !strings.Contains(out, "beta") || !strings.Contains(out, "active") {
		t.Fatalf("subscriptions --as owner: %q %v", out, err)
	}
	if _, err := runCLI(t, newSubscribeCmd, append([]string{"invoices", "--plan", "gold"}, beta...)...); err == nil || !strings.Contains(err.Error(), "subscription_active") {
		t.Fatalf("subscribe while active: %v", err)
	}
	if out, err := runCLI(t, newAPIKeysCmd, beta...); err != nil || !strings.Contains(out, "file") {
		t.Fatalf("api-keys: %q %v", out, err)
	}
}

// mcpSubscribe requests a subscription through the MCP tools, as beta.
func (s *catalogStack) mcpSubscribe(api, plan string) wire.Subscription {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agent := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	session, err := agent.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.a + "/mcp",
		HTTPClient: &http.Client{Transport: bearerTransport(s.beta)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	call := func(tool string, args map[string]any, out any) {
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(res.StructuredContent)
		if res.IsError {
			t.Fatalf("%s: %s", tool, b)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
	var list wire.APIList
	call("catalog_search", map[string]any{"text": api}, &list)
	if len(list.Items) != 1 || list.Items[0].Name != api {
		t.Fatalf("catalog_search: %+v", list)
	}
	var sub wire.Subscription
	call("catalog_subscribe", map[string]any{"api": api, "plan": plan, "reason": "agent"}, &sub)
	if sub.State != wire.SubscriptionActive {
		t.Fatalf("catalog_subscribe: %+v", sub)
	}
	return sub
}

type bearerTransport string

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// measureKeys creates keys through the API on replica A and disables them,
// timing when replica B accepts and then refuses them.
func (s *catalogStack) measureKeys() {
	t := s.t
	const n = 5
	var accepted, refused []time.Duration
	for i := range n {
		var created wire.CreatedKey
		s.must(http.StatusCreated, s.a, s.beta, http.MethodPost, "/v1/keys", wire.CreateKeyRequest{Roles: []string{"submitter"}, App: "mobile", Note: fmt.Sprint("key ", i)}, &created)
		answered := time.Now()
		if created.Key == "" || created.App != "mobile" || created.Source != wire.KeySourceAPI {
			t.Fatalf("created key: %+v", created)
		}
		if status, _, _ := s.do(s.a, created.Key, http.MethodGet, "/v1/catalog", nil); status != http.StatusOK {
			t.Fatalf("the new key on replica A: %d", status)
		}
		s.poll("the key on replica B", 10*time.Second, func() bool {
			status, _, _ := s.do(s.b, created.Key, http.MethodGet, "/v1/catalog", nil)
			return status == http.StatusOK
		})
		accepted = append(accepted, time.Since(answered))
		s.must(http.StatusOK, s.a, s.beta, http.MethodPost, "/v1/keys/"+created.ID+"/disable", wire.DisableKeyRequest{Reason: "rotated"}, nil)
		answered = time.Now()
		s.poll("the disabled key refused on replica B", 10*time.Second, func() bool {
			status, _, _ := s.do(s.b, created.Key, http.MethodGet, "/v1/catalog", nil)
			return status == http.StatusUnauthorized
		})
		refused = append(refused, time.Since(answered))
		if status, _, _ := s.do(s.a, created.Key, http.MethodGet, "/v1/catalog", nil); status != http.StatusUnauthorized {
			t.Fatalf("the disabled key on replica A: %d", status)
		}
	}
	var keys wire.APIKeys
	s.must(http.StatusOK, s.b, s.beta, http.MethodGet, "/v1/keys", nil, &keys)
	if len(keys.Items) != n+1 {
		t.Fatalf("beta's keys: %+v", keys)
	}
	a50, amax := quantiles(accepted)
	r50, rmax := quantiles(refused)
	t.Logf("keys on replica B (another process), %d keys: accepted after the create answer p50 %s max %s; refused after the disable answer p50 %s max %s",
		n, a50.Round(time.Millisecond), amax.Round(time.Millisecond), r50.Round(time.Millisecond), rmax.Round(time.Millisecond))
}
