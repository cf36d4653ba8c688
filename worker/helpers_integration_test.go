//go:build integration

package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
)

// childEnv, when set, turns the test binary into a worker process (see
// TestMain): its value is the JSON childConfig.
const childEnv = "GATEFLOW_TEST_WORKER"

// childConfig is what a worker child process needs.
type childConfig struct {
	HostPort  string            `json:"host_port"`
	Namespace string            `json:"namespace"`
	TaskQueue string            `json:"task_queue"`
	Services  map[string]string `json:"services"`
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	os.Exit(m.Run())
}

// runChild is the worker process: the same worker.New/Run the gateflow
// binary uses, until SIGTERM (or SIGKILL, which is the point).
func runChild(raw string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := client.DialContext(ctx, client.Options{HostPort: cfg.HostPort, Namespace: cfg.Namespace, Logger: tlog.NewStructuredLogger(log)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 2
	}
	defer c.Close()
	w, err := worker.New(c, worker.Options{TaskQueue: cfg.TaskQueue, Logger: log}, worker.Deps{Services: staticServices(cfg.Services)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 2
	}
	fmt.Fprintln(os.Stdout, "worker ready")
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

// staticServices resolves service names to base URLs and allows loopback
// URLs (like dev mode).
type staticServices map[string]string

func (s staticServices) Resolve(_, name string) (activities.Endpoint, error) {
	base, ok := s[name]
	if !ok {
		return activities.Endpoint{}, fmt.Errorf("%q: %w", name, activities.ErrUnknownService)
	}
	return activities.Endpoint{Name: name, BaseURL: base}, nil
}

func (s staticServices) AllowURL(_, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: %w", u.Host, activities.ErrURLNotAllowed)
	}
	return nil
}

// newServer starts an in-memory Temporal server whose timers fire on time
// (the default lets them fire up to ~1 s late).
func newServer(t testing.TB) *temporaltest.TestServer {
	t.Helper()
	var opts []temporaltest.TestServerOption
	if tt, ok := t.(*testing.T); ok {
		opts = append(opts, temporaltest.WithT(tt))
	}
	opts = append(opts,
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}),
		temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			dynamicconfig.TimerProcessorMaxTimeShift.Key():              []dynamicconfig.ConstrainedValue{{Value: 10 * time.Millisecond}},
		})))
	ts := temporaltest.NewServer(opts...)
	if _, ok := t.(*testing.T); !ok {
		t.Cleanup(ts.Stop)
	}
	// Orchestrations upsert GateflowAwaiting at approval steps: without it
	// registered, Temporal refuses their workflow tasks.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := worker.EnsureSearchAttributes(ctx, ts.GetDefaultClient(), ts.GetDefaultNamespace()); err != nil {
		t.Fatal(err)
	}
	return ts
}

// startWorker runs a worker in this process until the test ends.
func startWorker(t testing.TB, c client.Client, tq string, deps worker.Deps) {
	t.Helper()
	startWorkerWith(t, c, worker.Options{TaskQueue: tq, StopTimeout: time.Second}, deps)
}

// startWorkerWith is startWorker with options.
func startWorkerWith(t testing.TB, c client.Client, opts worker.Options, deps worker.Deps) {
	t.Helper()
	w, err := worker.New(c, opts, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
}

// child is a worker process started from the test binary.
type child struct {
	t   *testing.T
	cmd *exec.Cmd
	out *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startChild(t *testing.T, ts *temporaltest.TestServer, tq string, services map[string]string) *child {
	t.Helper()
	cfg, _ := json.Marshal(childConfig{HostPort: ts.GetFrontendHostPort(), Namespace: ts.GetDefaultNamespace(), TaskQueue: tq, Services: services})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	out := &syncBuffer{}
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{t: t, cmd: cmd, out: out}
	t.Cleanup(ch.kill)
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		n, _ := io.ReadAtLeast(stdout, buf, len("worker ready"))
		if strings.Contains(string(buf[:n]), "worker ready") {
			close(ready)
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("worker child not ready; stderr:\n%s", out.String())
	}
	return ch
}

// kill sends SIGKILL and reaps the process.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// byStep returns the records of one step.
func byStep(s *recordtest.Sink, step string) []record.Record {
	var out []record.Record
	for _, rec := range s.All() {
		if rec.StepID == step {
			out = append(out, rec)
		}
	}
	return out
}

func mustDef(t testing.TB, src string) definition.Definition {
	t.Helper()
	var d definition.Definition
	if err := json.Unmarshal([]byte(src), &d); err != nil {
		t.Fatalf("definition: %v", err)
	}
	if d.Name == "" {
		d.Name = "it"
	}
	if d.Version == "" {
		d.Version = "1"
	}
	return d
}

func orchestration(d definition.Definition, input string) workflows.OrchestrationInput {
	return workflows.OrchestrationInput{Definition: d, Input: json.RawMessage(input), Meta: activities.RunMeta{Tenant: "acme", KeyID: "k1"}}
}

func start(t testing.TB, c client.Client, tq, id string, in workflows.OrchestrationInput) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: tq}, workflows.OrchestrationWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func resultOf(t testing.TB, run client.WorkflowRun, timeout time.Duration) (map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var raw json.RawMessage
	if err := run.Get(ctx, &raw); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("workflow %s did not finish within %s", run.GetID(), timeout)
		}
		return nil, err
	}
	var out map[string]any
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("output %s: %v", raw, err)
		}
	}
	return out, nil
}

func queryStatus(t testing.TB, c client.Client, id string) workflows.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(ctx, id, "", workflows.StatusQuery)
	if err != nil {
		t.Fatalf("query %s: %v", id, err)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func stepStatus(st workflows.Status, id string) workflows.StepStatus {
	for _, s := range st.Steps {
		if s.ID == id {
			return s
		}
	}
	return workflows.StepStatus{}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
