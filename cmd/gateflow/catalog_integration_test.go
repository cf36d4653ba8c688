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
	"net/http/httptest"
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
	upstream   *upstream // service orders, owned by acme
}

// catalogConfig is the stack's gateflow.yaml: acme owns service orders,
// served by the upstream at upstreamURL (its credential is a configured
// header the gateway adds); beta owns service beta-orders, the same
// upstream under /beta.
func catalogConfig(upstreamURL string) string {
	return `
services:
  orders:
    owner: acme
    base_url: "` + upstreamURL + `"
    headers: {X-Upstream-Token: orders-credential}
  beta-orders:
    owner: beta
    base_url: "` + upstreamURL + `/beta"
tenants:
  acme:
    uses: {definitions: ["invoice", "ping"]}
    rate_limit: {rps: 1000, burst: 1000}
    key_rate_limit: {rps: 1000, burst: 1000}
  beta:
    rate_limit: {rps: 1000, burst: 1000}
    key_rate_limit: {rps: 1000, burst: 1000}
`
}

func invoiceDefinition(version string) string {
	return `{"name": "invoice", "version": "` + version + `", "description": "Bill an amount",
		"input_schema": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}},
		"steps": [{"id": "nap", "kind": "wait", "duration": "10ms"}],
		"output": {"billed": "${{ input.amount }}", "version": "` + version + `"}}`
}

const pingDefinition = `{"name": "ping", "version": "1", "steps": [{"id": "nap", "kind": "wait", "duration": "1ms"}]}`

// catalogStackOptions trims the stack for tests that need less of it.
type catalogStackOptions struct {
	// NoReplicaB leaves out the second ingress process (s.b stays empty).
	NoReplicaB bool
}

func startCatalogStack(t *testing.T, opts ...catalogStackOptions) *catalogStack {
	t.Helper()
	var opt catalogStackOptions
	if len(opts) > 0 {
		opt = opts[0]
	}
	s := &catalogStack{t: t}
	dir := t.TempDir()
	confDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(filepath.Join(confDir, "definitions"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.upstream = startUpstream(t)
	files := map[string]string{"gateflow.yaml": catalogConfig(s.upstream.srv.URL + "/v1"), "definitions/invoice-1.json": invoiceDefinition("1"),
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
	bases := []string{s.a}
	if !opt.NoReplicaB {
		b := s.child
		b.Role, b.Spool = "ingress", filepath.Join(dir, "spool-b")
		s.replicaB = startTestChild(t, b)
		s.b = "http://" + s.replicaB.addr
		bases = append(bases, s.b)
	}
	for _, base := range bases {
		s.poll("replica "+base+" ready", 60*time.Second, func() bool {
			status, _, _ := s.do(base, "", http.MethodGet, "/readyz", nil)
			return status == http.StatusOK
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker stderr:\n%s", s.worker.stderr)
			if s.replicaB != nil {
				t.Logf("replica B stderr:\n%s", s.replicaB.stderr)
			}
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

	// A model-only key of beta may not start the orchestration (and the
	// refusal does not count against the quota).
	var modelKey wire.CreatedKey
	s.must(http.StatusCreated, s.a, s.beta, http.MethodPost, "/v1/keys", wire.CreateKeyRequest{Roles: []string{"model"}, Note: "model only"}, &modelKey)
	if e, _ := s.errorOf(http.StatusForbidden, s.a, modelKey.Key, http.MethodPost, "/v1/catalog/invoices/call", call); e.Code != "forbidden" {
		t.Fatalf("a model key calling an orchestration API: %+v", e)
	}

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
	if len(keys.Items) != n+2 { // the file key, the model key, n created here
		t.Fatalf("beta's keys: %+v", keys)
	}
	a50, amax := quantiles(accepted)
	r50, rmax := quantiles(refused)
	t.Logf("keys on replica B (another process), %d keys: accepted after the create answer p50 %s max %s; refused after the disable answer p50 %s max %s",
		n, a50.Round(time.Millisecond), amax.Round(time.Millisecond), r50.Round(time.Millisecond), rmax.Round(time.Millisecond))
}

// upstream is service orders of the catalogue stack: an HTTP server of
// the test process on loopback (both ingress replicas reach it) that
// remembers every request it was sent.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []upstreamRequest
}

// upstreamRequest is what the upstream was sent.
type upstreamRequest struct {
	Method, Path, Query string
	Header              http.Header
}

func startUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, upstreamRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone()})
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"served": r.URL.Path, "tenant": r.Header.Get("Gateflow-Tenant")})
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// host is the instance's host:port, as call records name it.
func (u *upstream) host() string { return strings.TrimPrefix(u.srv.URL, "http://") }

// marked returns the requests carrying X-Test-Call: mark.
func (u *upstream) marked(mark string) []upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []upstreamRequest
	for _, r := range u.seen {
		if r.Header.Get("X-Test-Call") == mark {
			out = append(out, r)
		}
	}
	return out
}

// servedFor counts the requests forwarded for a consumer tenant to an API.
func (u *upstream) servedFor(tenant, api string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, r := range u.seen {
		if r.Header.Get("Gateflow-Tenant") == tenant && r.Header.Get("Gateflow-Api") == api {
			n++
		}
	}
	return n
}

// gw sends one GET through the gateway, marked with X-Test-Call: mark so
// that the upstream's copy can be found; extra holds more header fields
// (name, value pairs).
func (s *catalogStack) gw(base, key, path, mark string, extra ...string) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Test-Call", mark)
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// gwOK sends a gateway call that must reach the upstream once, and returns
// the answer's header and what the upstream was sent.
func (s *catalogStack) gwOK(base, key, path, mark string, extra ...string) (http.Header, upstreamRequest) {
	s.t.Helper()
	status, h, b := s.gw(base, key, path, mark, extra...)
	if status != http.StatusOK {
		s.t.Fatalf("GET %s (%s): %d: %s", path, mark, status, b)
	}
	seen := s.upstream.marked(mark)
	if len(seen) != 1 {
		s.t.Fatalf("GET %s (%s): the upstream got it %d times", path, mark, len(seen))
	}
	return h, seen[0]
}

// gwError sends a gateway call that must fail with status in the one
// error shape without reaching the upstream, and returns the error.
func (s *catalogStack) gwError(status int, base, key, path, mark string) (apiError, http.Header) {
	s.t.Helper()
	got, h, b := s.gw(base, key, path, mark)
	var shape map[string]json.RawMessage
	var e struct {
		Error apiError `json:"error"`
	}
	if got != status || json.Unmarshal(b, &shape) != nil || len(shape) != 1 || shape["error"] == nil ||
		json.Unmarshal(b, &e) != nil || e.Error.Code == "" || e.Error.Message == "" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		s.t.Fatalf("GET %s (%s): %d %s, want %d in the one error shape", path, mark, got, b, status)
	}
	if n := len(s.upstream.marked(mark)); n != 0 {
		s.t.Fatalf("GET %s (%s): refused, yet the upstream got it %d times", path, mark, n)
	}
	return e.Error, h
}

// checkForwarded checks what the upstream was sent for a consumer's call:
// the gateway's identity fields and the service's credential, never the
// caller's key.
func checkForwarded(t *testing.T, r upstreamRequest, tenant, consumer, version string, keys ...string) {
	t.Helper()
	h := r.Header
	if h.Get("Gateflow-Tenant") != tenant || h.Get("Gateflow-Consumer") != consumer || h.Get("Gateflow-Api") != "orders-api" ||
		h.Get("Gateflow-Api-Version") != version || h.Get("X-Upstream-Token") != "orders-credential" || h.Get("X-Request-Id") == "" {
		t.Fatalf("forwarded for %s: %+v", consumer, h)
	}
	if _, ok := h["Authorization"]; ok {
		t.Fatalf("the caller's Authorization reached the upstream: %+v", h)
	}
	for name, vs := range h {
		for _, v := range vs {
			for _, k := range keys {
				if strings.Contains(v, k) {
					t.Fatalf("the caller's key reached the upstream in %s", name)
				}
			}
		}
	}
}

// TestCatalogGateway drives the catalogue's service APIs through the
// gateway data plane (/gw/{api}/...) of the real stack: acme publishes its
// service orders as a shared API and calls it at once (owner); beta is
// refused until acme approves its subscriptions, then reaches the upstream
// on both replicas as itself (never with its key), within its plan's daily
// quota; a deprecated version's answers carry the lifecycle headers; acme's
// private API is not found for beta; an API of beta named like acme's
// service takes neither acme's route nor its analytics; the proxy records
// reach ClickHouse and the catalogue rollup; a retired version is 410, an
// orchestration API is not served, and a revocation reaches replica B.
func TestCatalogGateway(t *testing.T) {
	s := startCatalogStack(t)
	up := s.upstream
	openAPI := json.RawMessage(`{"openapi": "3.1.0", "info": {"title": "Orders", "version": "1"},
		"paths": {"/orders/{id}": {"get": {"responses": {"200": {"description": "An order."}}}}}}`)
	spec := func(version string) wire.APIVersionSpec {
		return wire.APIVersionSpec{Version: version, Target: wire.APITarget{Service: "orders"}, OpenAPI: openAPI}
	}

	// A service API needs its OpenAPI document.
	create := wire.CreateAPIRequest{Name: "orders-api", Kind: wire.APIKindService, Title: "Orders", Visibility: wire.VisibilityShared,
		Plans:    []wire.Plan{{Name: "trial", Quota: wire.Quota{Daily: 3}}, {Name: "standard"}},
		Approval: &wire.SubscriptionApproval{Approvers: wire.Approvers{Roles: []string{"approver"}}, Timeout: "1h"},
		Version:  wire.APIVersionSpec{Version: "1", Target: wire.APITarget{Service: "orders"}}}
	if e, _ := s.errorOf(http.StatusUnprocessableEntity, s.a, s.acme, http.MethodPost, "/v1/catalog", create); len(e.Details) == 0 || !strings.Contains(e.Details[0].Path, "openapi") {
		t.Fatalf("service API without OpenAPI: %+v", e)
	}
	create.Version = spec("1")
	s.must(http.StatusCreated, s.a, s.acme, http.MethodPost, "/v1/catalog", create, nil)

	// The owner calls its draft at once; beta does not see it.
	_, fwd := s.gwOK(s.a, s.acme, "/gw/orders-api/orders/1?x=1", "acme-draft")
	checkForwarded(t, fwd, "acme", "acme/", "1", s.acme)
	if fwd.Path != "/v1/orders/1" || fwd.Query != "x=1" {
		t.Fatalf("forwarded path: %+v", fwd)
	}
	if e, _ := s.gwError(http.StatusNotFound, s.a, s.beta, "/gw/orders-api/orders/1", "beta-draft"); strings.Contains(e.Message, "acme") {
		t.Fatalf("draft for beta: %+v", e)
	}
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/catalog/orders-api/versions/1/lifecycle", wire.TransitionRequest{State: wire.StatePublished}, nil)

	// A private API of acme over the same service.
	private := wire.CreateAPIRequest{Name: "orders-internal", Kind: wire.APIKindService, Title: "Orders (internal)", Visibility: wire.VisibilityPrivate,
		Plans: []wire.Plan{{Name: "internal"}}, Approval: &wire.SubscriptionApproval{None: true}, Version: spec("1")}
	s.must(http.StatusCreated, s.a, s.acme, http.MethodPost, "/v1/catalog", private, nil)
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/catalog/orders-internal/versions/1/lifecycle", wire.TransitionRequest{State: wire.StatePublished}, nil)
	s.gwOK(s.a, s.acme, "/gw/orders-internal/orders/1", "acme-private")
	s.gwOK(s.a, s.acme, "/gw/orders/orders/1", "acme-service") // the service itself, by its owner

	// Beta sees the shared API but has no subscription: 403 saying how to
	// get one. Acme's private API, its service and an unknown name are all
	// simply not found.
	s.poll("beta sees orders-api on replica A", 10*time.Second, func() bool {
		status, _, _ := s.do(s.a, s.beta, http.MethodGet, "/v1/catalog/orders-api", nil)
		return status == http.StatusOK
	})
	if e, _ := s.gwError(http.StatusForbidden, s.a, s.beta, "/gw/orders-api/orders/1", "beta-no-grant"); e.Code != "subscription_required" ||
		!strings.Contains(e.Message, "POST /v1/catalog/orders-api/subscriptions") || len(e.Details) == 0 {
		t.Fatalf("no grant: %+v", e)
	}
	unknown, _ := s.gwError(http.StatusNotFound, s.a, s.beta, "/gw/no-such-api/orders/1", "beta-unknown")
	for _, path := range []string{"/gw/orders-internal/orders/1", "/gw/orders/orders/1"} {
		if e, _ := s.gwError(http.StatusNotFound, s.a, s.beta, path, "beta-hidden"); e.Code != unknown.Code || strings.Contains(e.Message, "acme") {
			t.Fatalf("%s for beta: %+v, want as an unknown name (%+v)", path, e, unknown)
		}
	}

	// Catalogue names and service names share /gw/: beta publishing an API
	// named orders does not take acme's route to its own service orders.
	shadow := wire.CreateAPIRequest{Name: "orders", Kind: wire.APIKindService, Title: "Beta's orders", Visibility: wire.VisibilityShared,
		Plans: []wire.Plan{{Name: "open"}}, Approval: &wire.SubscriptionApproval{None: true},
		Version: wire.APIVersionSpec{Version: "1", Target: wire.APITarget{Service: "beta-orders"}, OpenAPI: openAPI}}
	s.must(http.StatusCreated, s.a, s.beta, http.MethodPost, "/v1/catalog", shadow, nil)
	s.must(http.StatusOK, s.a, s.beta, http.MethodPost, "/v1/catalog/orders/versions/1/lifecycle", wire.TransitionRequest{State: wire.StatePublished}, nil)
	if _, fwd := s.gwOK(s.a, s.acme, "/gw/orders/orders/1", "acme-service-shadowed"); fwd.Path != "/v1/orders/1" || fwd.Header.Get("Gateflow-Tenant") != "acme" {
		t.Fatalf("acme's service orders after beta published an API orders: %+v", fwd)
	}
	if _, fwd := s.gwOK(s.a, s.beta, "/gw/orders/orders/1", "beta-own-orders"); fwd.Path != "/v1/beta/orders/1" || fwd.Header.Get("Gateflow-Api-Version") != "1" {
		t.Fatalf("beta's API orders: %+v", fwd)
	}

	// Beta's app mobile subscribes to the trial plan, its tenant to the
	// standard one; acme's approver approves both.
	var mobile wire.CreatedKey
	s.must(http.StatusCreated, s.a, s.beta, http.MethodPost, "/v1/keys", wire.CreateKeyRequest{Roles: []string{"submitter"}, App: "mobile"}, &mobile)
	var trial, standard wire.Subscription
	s.must(http.StatusCreated, s.a, s.beta, http.MethodPost, "/v1/catalog/orders-api/subscriptions", wire.SubscribeRequest{Plan: "trial", App: "mobile"}, &trial)
	s.must(http.StatusCreated, s.a, s.beta, http.MethodPost, "/v1/catalog/orders-api/subscriptions", wire.SubscribeRequest{Plan: "standard"}, &standard)
	if e, _ := s.gwError(http.StatusForbidden, s.a, mobile.Key, "/gw/orders-api/orders/1", "beta-pending"); e.Code != "subscription_required" || !strings.Contains(e.Message, "waiting") {
		t.Fatalf("pending: %+v", e)
	}
	for _, sub := range []wire.Subscription{trial, standard} {
		s.poll("the approval of "+sub.ID+" listed", 30*time.Second, func() bool {
			var approvals wire.Approvals
			status, _, b := s.do(s.a, s.acme, http.MethodGet, "/v1/approvals", nil)
			return status == http.StatusOK && json.Unmarshal(b, &approvals) == nil &&
				slices.ContainsFunc(approvals.Items, func(a wire.Approval) bool { return a.WorkflowID == sub.WorkflowID })
		})
		s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/workflows/"+sub.WorkflowID+"/approvals/approve", map[string]string{"decision": "approve"}, nil)
		s.poll("the grant "+sub.ID+" active on replica A", 30*time.Second, func() bool { return s.subscriptionState(s.a, s.beta, sub.ID) == wire.SubscriptionActive })
	}

	// Beta's app reaches the upstream as beta/mobile, within its daily
	// quota of 3 calls (replica A alone counts them: exact).
	for i := range 3 {
		_, fwd := s.gwOK(s.a, mobile.Key, fmt.Sprintf("/gw/orders-api/orders/%d", i), fmt.Sprint("mobile-", i))
		checkForwarded(t, fwd, "beta", "beta/mobile", "1", mobile.Key, s.beta)
	}
	e, h := s.gwError(http.StatusTooManyRequests, s.a, mobile.Key, "/gw/orders-api/orders/9", "mobile-over")
	if e.Code != "quota_exceeded" || !strings.Contains(e.Message, "resets at") || h.Get("Retry-After") == "" {
		t.Fatalf("over quota: %+v %v", e, h)
	}
	// Beta's other keys use its tenant's grant (no quota).
	_, fwd = s.gwOK(s.a, s.beta, "/gw/orders-api/orders/10", "beta-standard")
	checkForwarded(t, fwd, "beta", "beta/", "1", s.beta)

	// Replica B (another process) serves beta once the grant replicated
	// (until then: 403, or 404 while even the API has not arrived).
	refused := 2 // subscription_required answers so far
	s.poll("replica B serving beta's call", 30*time.Second, func() bool {
		status, _, b := s.gw(s.b, s.beta, "/gw/orders-api/orders/11", "beta-on-b")
		if status != http.StatusOK && status != http.StatusForbidden && status != http.StatusNotFound {
			t.Fatalf("replica B: %d %s", status, b)
		}
		if status == http.StatusForbidden {
			refused++
		}
		return status == http.StatusOK
	})
	if seen := up.marked("beta-on-b"); len(seen) != 1 {
		t.Fatalf("replica B's call reached the upstream %d times", len(seen))
	} else {
		checkForwarded(t, seen[0], "beta", "beta/", "1", s.beta)
	}

	// Acme deprecates version 1 for version 2: proxied answers of version
	// 1 carry Deprecation, Sunset and Link; version 2 is the default.
	s.must(http.StatusCreated, s.a, s.acme, http.MethodPost, "/v1/catalog/orders-api/versions", spec("2"), nil)
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/catalog/orders-api/versions/2/lifecycle", wire.TransitionRequest{State: wire.StatePublished}, nil)
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/catalog/orders-api/versions/1/lifecycle", wire.TransitionRequest{State: wire.StateDeprecated, Successor: "2", Reason: "v2 pages"}, nil)
	deprecated := func(h http.Header) bool {
		return strings.HasPrefix(h.Get("Deprecation"), "@") && h.Get("Sunset") != "" &&
			strings.Contains(strings.Join(h.Values("Link"), ","), `version=2>; rel="successor-version"`) &&
			strings.Contains(strings.Join(h.Values("Link"), ","), `rel="deprecation"`)
	}
	h, fwd = s.gwOK(s.a, s.beta, "/gw/orders-api/orders/12?version=1&y=2", "beta-v1-query")
	if !deprecated(h) {
		t.Fatalf("deprecated answer headers: %v", h)
	}
	if checkForwarded(t, fwd, "beta", "beta/", "1", s.beta); fwd.Query != "y=2" {
		t.Fatalf("the gateway's version parameter was forwarded: %+v", fwd)
	}
	h, fwd = s.gwOK(s.a, s.beta, "/gw/orders-api/orders/13", "beta-v1-header", "Gateflow-Api-Version", "1")
	if !deprecated(h) {
		t.Fatalf("deprecated answer headers (version header): %v", h)
	}
	checkForwarded(t, fwd, "beta", "beta/", "1", s.beta)
	h, fwd = s.gwOK(s.a, s.beta, "/gw/orders-api/orders/14", "beta-default")
	if h.Get("Deprecation") != "" || h.Get("Sunset") != "" {
		t.Fatalf("version 2's answer: %v", h)
	}
	checkForwarded(t, fwd, "beta", "beta/", "2", s.beta)
	var n int
	s.poll("replica B's answers of version 1 deprecated", 30*time.Second, func() bool {
		n++
		status, h, b := s.gw(s.b, s.beta, "/gw/orders-api/orders/15?version=1", fmt.Sprint("beta-v1-on-b-", n))
		if status != http.StatusOK {
			t.Fatalf("replica B: %d %s", status, b)
		}
		return deprecated(h)
	})

	s.checkGatewayRecords(up.servedFor("beta", "orders-api"), refused)
	s.checkShadowedAnalytics()

	// Version 1 retired: 410 naming the successor. Other kinds of API are
	// not served through /gw.
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/catalog/orders-api/versions/1/lifecycle", wire.TransitionRequest{State: wire.StateRetired, Reason: "sunset"}, nil)
	if e, h := s.gwError(http.StatusGone, s.a, s.beta, "/gw/orders-api/orders/1?version=1", "beta-retired"); e.Code != "api_retired" ||
		!strings.Contains(e.Message, "use version 2") || !strings.Contains(h.Get("Link"), `version=2>; rel="successor-version"`) {
		t.Fatalf("retired: %+v %v", e, h)
	}
	billing := wire.CreateAPIRequest{Name: "billing", Kind: wire.APIKindOrchestration, Title: "Billing", Visibility: wire.VisibilityPrivate,
		Plans: []wire.Plan{{Name: "internal"}}, Approval: &wire.SubscriptionApproval{None: true},
		Version: wire.APIVersionSpec{Version: "1", Target: wire.APITarget{Definition: "invoice", DefinitionVersion: "1"}}}
	s.must(http.StatusCreated, s.a, s.acme, http.MethodPost, "/v1/catalog", billing, nil)
	if e, _ := s.gwError(http.StatusNotFound, s.a, s.acme, "/gw/billing/run", "acme-orchestration"); e.Code != "not_a_service_api" || !strings.Contains(e.Message, "/v1/catalog/billing/call") {
		t.Fatalf("an orchestration API through /gw: %+v", e)
	}

	// Acme revokes beta's tenant grant: replica B refuses beta's calls.
	s.must(http.StatusOK, s.a, s.acme, http.MethodPost, "/v1/subscriptions/"+standard.ID+"/revoke", wire.EndSubscriptionRequest{Reason: "contract ended"}, nil)
	n = 0
	s.poll("the revocation refusing beta on replica B", 30*time.Second, func() bool {
		n++
		status, _, b := s.gw(s.b, s.beta, "/gw/orders-api/orders/16", fmt.Sprint("beta-revoking-on-b-", n))
		if status != http.StatusOK && status != http.StatusForbidden {
			t.Fatalf("replica B: %d %s", status, b)
		}
		return status == http.StatusForbidden
	})
	if e, _ := s.gwError(http.StatusForbidden, s.b, s.beta, "/gw/orders-api/orders/16", "beta-revoked-on-b"); e.Code != "subscription_required" {
		t.Fatalf("revoked on replica B: %+v", e)
	}
}

// checkGatewayRecords waits for the proxy records of beta's calls to
// orders-api (served: how many reached the upstream) in ClickHouse and in
// the catalogue rollup, and the ingress records of the refused calls
// (refused: how many got subscription_required).
func (s *catalogStack) checkGatewayRecords(served, refusedWant int) {
	t := s.t
	ctx := context.Background()
	opts, err := clickhouse.ParseDSN(s.chDSN)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Every admitted call is one record of kind proxy under the owner's
	// tenant, naming the consumer, its app, the version and the instance.
	var total, mobile, upstream, owner, versioned, ok, withID uint64
	s.poll("the proxy records in ClickHouse", 60*time.Second, func() bool {
		err := conn.QueryRow(ctx, `SELECT count(), countIf(consumer_app = 'mobile' AND api_version = '1'), countIf(upstream = ?),
			countIf(tenant = 'acme'), countIf(api_version IN ('1', '2') AND version = api_version), countIf(status_code = 200 AND outcome = 'ok'),
			countIf(labels['request_id'] != '' AND key_id != '')
			FROM calls WHERE kind = 'proxy' AND api = 'orders-api' AND target = 'orders-api' AND consumer = 'beta'`, s.upstream.host()).
			Scan(&total, &mobile, &upstream, &owner, &versioned, &ok, &withID)
		return err == nil && total >= uint64(served)
	})
	if total != uint64(served) || mobile != 3 || upstream != total || owner != total || versioned != total || ok != total || withID != total {
		t.Fatalf("proxy records of beta: %d (served %d), app mobile %d (want 3), upstream %s %d, tenant acme %d, versioned %d, ok %d, with request and key id %d",
			total, served, mobile, s.upstream.host(), upstream, owner, versioned, ok, withID)
	}
	// Refused calls are the ingress's records (the caller's tenant, no
	// consumer); admitted ones have none besides the proxy's.
	var refused, quota, doubled uint64
	s.poll("the refusals in ClickHouse", 60*time.Second, func() bool {
		err := conn.QueryRow(ctx, `SELECT countIf(error_class = 'subscription_required'), countIf(error_class = 'quota_exceeded'), countIf(consumer != '')
			FROM calls WHERE kind = 'ingress' AND api = 'orders-api' AND tenant = 'beta'`).Scan(&refused, &quota, &doubled)
		return err == nil && refused >= uint64(refusedWant) && quota >= 1
	})
	if refused != uint64(refusedWant) || quota != 1 || doubled != 0 {
		t.Fatalf("ingress records of beta's calls to orders-api: subscription_required %d (want %d), quota_exceeded %d (want 1), with a consumer %d (want 0)", refused, refusedWant, quota, doubled)
	}
	// The catalogue rollup counts them (what quotas read), per app.
	var perConsumer, perApp uint64
	s.poll("the catalogue rollup", 30*time.Second, func() bool {
		err := conn.QueryRow(ctx, `SELECT sum(calls), sumIf(calls, consumer_app = 'mobile') FROM api_calls_1m
			WHERE api = 'orders-api' AND consumer = 'beta' AND kind = 'proxy'`).Scan(&perConsumer, &perApp)
		return err == nil && perConsumer == total && perApp == mobile
	})
	t.Logf("beta's calls through /gw/orders-api: %d proxy records (%d of app mobile), all with upstream %s; %d subscription_required and %d quota_exceeded ingress records; api_calls_1m: %d",
		total, mobile, s.upstream.host(), refused, quota, perConsumer)
	// The owner sees its API's consumers and instances through the API.
	var top struct{ Items []struct{ Group string } }
	s.must(http.StatusOK, s.a, s.acme, http.MethodGet, "/v1/analytics/top?by=consumer&from=2h&api=orders-api", nil, &top)
	if !slices.ContainsFunc(top.Items, func(i struct{ Group string }) bool { return i.Group == "beta" }) {
		t.Fatalf("owner's top consumers of orders-api: %+v", top)
	}
	s.must(http.StatusOK, s.a, s.acme, http.MethodGet, "/v1/analytics/top?by=upstream&kind=proxy&from=2h&target=orders-api", nil, &top)
	if len(top.Items) != 1 || top.Items[0].Group != s.upstream.host() {
		t.Fatalf("owner's top upstreams of orders-api: %+v", top)
	}
}

// checkShadowedAnalytics: acme's calls to its own service orders are
// acme's to see, not beta's, though beta owns the catalogue API orders.
func (s *catalogStack) checkShadowedAnalytics() {
	t := s.t
	type top struct{ Items []struct{ Group string } }
	s.poll("acme's calls to its service orders in its analytics", 60*time.Second, func() bool {
		var own top
		status, _, b := s.do(s.a, s.acme, http.MethodGet, "/v1/analytics/top?by=consumer&from=2h&api=orders", nil)
		return status == http.StatusOK && json.Unmarshal(b, &own) == nil && len(own.Items) == 1 && own.Items[0].Group == "acme"
	})
	var beta top
	s.must(http.StatusOK, s.a, s.beta, http.MethodGet, "/v1/analytics/top?by=consumer&from=2h&api=orders", nil, &beta)
	if len(beta.Items) != 1 || beta.Items[0].Group != "beta" {
		t.Fatalf("beta's analytics of its API orders: %+v, want only its own calls", beta)
	}
}
