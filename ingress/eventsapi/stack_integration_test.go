//go:build integration

package eventsapi_test

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
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/callback"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/eventsapi"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/events"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/registry"
	"github.com/gateflow/gateflow/workflows/schedules"
	"github.com/gateflow/gateflow/workflows/triggers"
)

// One stack for the package: an in-process Temporal server, a worker, and
// a real ingress serving the events API over the real orchestrator,
// schedules manager, hooks, events and callbacks. The topic test adds a
// kfake broker and trigger processes (this test binary, re-executed).

func TestMain(m *testing.M) {
	if raw := os.Getenv(childEnv); raw != "" {
		os.Exit(runChild(raw))
	}
	code := m.Run()
	if st != nil {
		st.close()
	}
	os.Exit(code)
}

// Test secrets, read through secret references like in production.
const (
	hookSecretEnv = "GATEFLOW_IT_HOOK_SECRET"
	hookSecret    = "it-hook-secret"
	stdSecretEnv  = "GATEFLOW_IT_STANDARD_SECRET"
	// stdSecret is a Standard Webhooks secret (whsec_ + base64).
	stdSecret = "whsec_aXQtc3RhbmRhcmQtc2VjcmV0LWtleQ=="
	taskQueue = "gateflow"
)

var testDefinitions = []string{
	`{"name": "sched-it", "version": "1", "steps": [{"id": "nap", "kind": "wait", "duration": "1ms"}], "output": "${{ input }}"}`,
	`{"name": "hook-it", "version": "1",
	  "input_schema": {"type": "object", "required": ["ref"], "properties": {"ref": {"type": "string"}}},
	  "steps": [{"id": "nap", "kind": "wait", "duration": "1ms"}], "output": "${{ input }}"}`,
	`{"name": "order-wait", "version": "1", "steps": [
	    {"id": "shipped", "kind": "event", "event": "shipping.shipped", "match": "${{ input.order }}", "timeout": "2m"}
	  ], "output": {"tracking": "${{ steps.shipped.output.tracking }}"}}`,
	`{"name": "async-it", "version": "1", "steps": [
	    {"id": "render", "kind": "http", "service": "svc", "method": "POST", "path": "/jobs", "body": {"job": "${{ input.job }}"},
	     "callback": {"timeout": "2m", "body_field": "callback_url"}, "retry": {"max_attempts": 1}}
	  ], "output": "${{ steps.render.output.body }}"}`,
	`{"name": "topic-it", "version": "1", "steps": [{"id": "nap", "kind": "wait", "duration": "1ms"}]}`,
}

type stack struct {
	ts    *temporaltest.TestServer
	ns    string
	c     client.Client
	reg   *sysconfig.Registry
	orch  *orchestrator.Orchestrator
	url   string
	recs  *recordtest.Sink
	svc   *httptest.Server
	jobs  chan jobCall
	key   []byte
	stopW func()
	stopI func()
}

// jobCall is a call the async service received.
type jobCall struct {
	header http.Header
	body   map[string]any
}

var (
	stackOnce sync.Once
	st        *stack
	stackErr  error
)

// getStack starts the shared stack on first use.
func getStack(t *testing.T) *stack {
	t.Helper()
	stackOnce.Do(func() { st, stackErr = startStack(t) })
	if stackErr != nil {
		t.Fatalf("stack: %v", stackErr)
	}
	return st
}

func startStack(t *testing.T) (*stack, error) {
	os.Setenv(hookSecretEnv, hookSecret)
	os.Setenv(stdSecretEnv, stdSecret)
	s := &stack{recs: &recordtest.Sink{}, jobs: make(chan jobCall, 16), key: []byte("it-callback-signing-key")}
	s.svc = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		s.jobs <- jobCall{header: r.Header.Clone(), body: body}
		w.WriteHeader(http.StatusAccepted)
	}))
	s.ts = temporaltest.NewServer(
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}),
		temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			dynamicconfig.TimerProcessorMaxTimeShift.Key():              []dynamicconfig.ConstrainedValue{{Value: 10 * time.Millisecond}},
		})))
	s.c, s.ns = s.ts.GetDefaultClient(), s.ts.GetDefaultNamespace()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := worker.EnsureSearchAttributes(ctx, s.c, s.ts.GetDefaultNamespace()); err != nil {
		return nil, err
	}
	var defs []*definition.Definition
	for _, src := range testDefinitions {
		d, err := definition.Load([]byte(src), nil)
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	reg, err := sysconfig.NewStatic(sysconfig.Config{
		// Tenant acme may run every definition and call every service.
		Tenants:  map[string]sysconfig.Tenant{"acme": {Uses: sysconfig.Uses{Definitions: []string{sysconfig.All}, Services: []string{sysconfig.All}}}},
		Services: map[string]sysconfig.Service{"svc": {BaseURL: s.svc.URL}},
		Webhooks: map[string]sysconfig.Webhook{
			"gh": {Tenant: "acme", Scheme: "github", Secret: "${env:" + hookSecretEnv + "}", MaxBodyBytes: 4096,
				Start: &sysconfig.StartAction{Definition: "hook-it", Input: map[string]any{"ref": "${{ input.body.ref }}"}}},
			"std": {Tenant: "acme", Scheme: "standard", Secret: "${env:" + stdSecretEnv + "}",
				Event: &sysconfig.EventAction{Name: "shipping.shipped", Key: "${{ input.body.order }}"}},
		},
	}, defs...)
	if err != nil {
		return nil, err
	}
	s.reg = reg
	store := registry.NewStore(s.c, reg, slog.New(slog.DiscardHandler), registry.WithTaskQueue(taskQueue))
	s.orch, err = orchestrator.New(orchestrator.Options{
		Client: s.c, TaskQueue: taskQueue, Definitions: orchestrator.RegistryDefinitions(store), Policies: reg,
		ValidateDefinition: reg.ValidateFor,
		ValidateInput:      func(d *definition.Definition, in json.RawMessage) error { return d.ValidateInput(in) },
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.url = "http://" + ln.Addr().String()
	src := func() (callback.Settings, error) {
		return callback.Settings{BaseURL: s.url, Keys: [][]byte{s.key}}, nil
	}
	s.stopW = s.startWorker(src)

	srv, err := ingress.New(ingress.Deps{Orchestrator: s.orch, Keys: gwtest.KeyStore(t), Recorder: s.recs, Log: slog.New(slog.DiscardHandler)},
		ingress.Config{KeyLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}, TenantLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}})
	if err != nil {
		return nil, err
	}
	sender := events.NewSender(s.c, taskQueue)
	if err := srv.Mount(eventsapi.Routes(eventsapi.Deps{
		Schedules: schedules.New(s.c, orchestrator.RegistryDefinitions(store), schedules.Options{TaskQueue: taskQueue}),
		Events:    triggers.NewEvents(sender, s.recs),
		Hooks:     triggers.NewHooks(reg, s.orch, sender, s.recs),
		Callbacks: callback.NewCompleter(s.c, src, s.recs),
		Config:    reg,
	})); err != nil {
		return nil, err
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	s.stopI = func() { stop(); <-done }
	return s, nil
}

// startWorker runs a worker on the task queue until the returned stop.
func (s *stack) startWorker(src callback.Source) func() {
	w, err := worker.New(s.c, worker.Options{TaskQueue: taskQueue, StopTimeout: time.Second,
		HTTP: activities.HTTPOptions{Callbacks: callback.NewIssuer(src)}},
		worker.Deps{Services: s.reg, Recorder: s.recs})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() { cancel(); <-done }
}

func (s *stack) close() {
	if s.stopI != nil {
		s.stopI()
	}
	if s.stopW != nil {
		s.stopW()
	}
	s.svc.Close()
	s.ts.Stop()
}

// do sends a request with the named test key ("" for none).
func (s *stack) do(t *testing.T, key, method, path string, body any, hdr http.Header) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header[k] = v
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+gwtest.Token(key))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// result waits for a workflow (Temporal id) and decodes its output.
func (s *stack) result(t *testing.T, id string, timeout time.Duration) (map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var raw json.RawMessage
	if err := s.c.GetWorkflow(ctx, id, "").Get(ctx, &raw); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("workflow %s did not finish within %s", id, timeout)
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

// count counts workflows matching a visibility query.
func (s *stack) count(t *testing.T, query string) int64 {
	t.Helper()
	n, err := s.tryCount(query)
	if err != nil {
		t.Fatalf("count %q: %v", query, err)
	}
	return n
}

// tryCount counts workflows matching a visibility query; a busy server may
// make it time out.
func (s *stack) tryCount(query string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: s.ns, Query: query})
	return resp.GetCount(), err
}

func (s *stack) status(t *testing.T, id string) workflows.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := s.c.QueryWorkflow(ctx, id, "", workflows.StatusQuery)
	if err != nil {
		t.Fatalf("query %s: %v", id, err)
	}
	var out workflows.Status
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
}

func mustf(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}

var _ = fmt.Sprintf
