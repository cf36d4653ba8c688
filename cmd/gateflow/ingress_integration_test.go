//go:build integration

// Integration-tagged although fast: the gateflow binary links the Temporal
// server, whose -race build is too slow for the unit test run.

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"

	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/gateflow/gateflow/ingress"
)

func TestIngressConfig(t *testing.T) {
	c := defaultIngressConfig()
	if err := c.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	c.Listen, c.MaxJSONDepth, c.RequestTimeout = "nope", 1, 0
	err := c.validate()
	for _, want := range []string{"--listen", "--max-json-depth", "--request-timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want it to name %s", err, want)
		}
	}
}

func TestKeysCreateCmd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	cmd := newKeysCmd()
	var out, errOut strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"create", "--tenant", "acme", "--roles", "submitter,approver", "--user", "alice", "--keys-file", path})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out.String())
	if !strings.HasPrefix(token, "gf_") {
		t.Fatalf("printed %q", token)
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.Contains(string(b), strings.SplitN(token, "_", 3)[2]) || !strings.Contains(string(b), "tenant: acme") {
		t.Fatalf("keys file: %s %v", b, err)
	}
	cmd = newKeysCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"create", "--roles", "submitter", "--keys-file", path})
	if err := cmd.Execute(); err == nil {
		t.Error("create without --tenant accepted")
	}
}

const smokeConfig = `
tenants:
  acme:
    allow_inline_definitions: true
    uses: {definitions: ["*"]}
    rate_limit: {rps: 100, burst: 100}
    key_rate_limit: {rps: 100, burst: 100}
`

const smokeDefinition = `
name: expense
version: "1"
input_schema:
  type: object
  required: [amount]
  properties: {amount: {type: number}}
steps:
  - id: nap
    kind: wait
    duration: 10ms
  - id: manager
    kind: approval
    approvers: {roles: [approver]}
output:
  approved: "${{ steps.manager.output.decision }}"
`

// runCLI runs one API client subcommand and returns its stdout.
func runCLI(t *testing.T, mk func() *cobra.Command, args ...string) (string, error) {
	t.Helper()
	cmd := mk()
	var out, errOut strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SetContext(context.Background())
	err := cmd.Execute()
	return out.String(), err
}

// TestIngressEndToEnd runs runIngress and runWorker (the code paths of
// `gateflow ingress`, `gateflow worker` and `gateflow dev`) on a real
// Temporal server, with Kafka and ClickHouse unreachable (records spool),
// and drives them with the CLI client subcommands.
func TestIngressEndToEnd(t *testing.T) {
	ts := temporaltest.NewServer(
		temporaltest.WithT(t),
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}),
		temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			dynamicconfig.TimerProcessorMaxTimeShift.Key():              []dynamicconfig.ConstrainedValue{{Value: 10 * time.Millisecond}},
		})),
	)
	dir := t.TempDir()
	confDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(filepath.Join(confDir, "definitions"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "gateflow.yaml"), []byte(smokeConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "definitions", "expense.yaml"), []byte(smokeDefinition), 0o644); err != nil {
		t.Fatal(err)
	}
	keysFile := filepath.Join(confDir, "keys.yaml")
	token, err := runCLI(t, newKeysCmd, "create", "--tenant", "acme", "--roles", "submitter,approver", "--user", "alice", "--keys-file", keysFile)
	if err != nil {
		t.Fatal(err)
	}
	token = strings.TrimSpace(token)
	// Bob approves alice's submissions: the submitter may not decide its
	// own approval steps (separation of duties).
	bobToken, err := runCLI(t, newKeysCmd, "create", "--tenant", "acme", "--roles", "approver", "--user", "bob", "--keys-file", keysFile)
	if err != nil {
		t.Fatal(err)
	}
	bobToken = strings.TrimSpace(bobToken)

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	icfg := defaultIngressConfig()
	icfg.Temporal.HostPort, icfg.Temporal.Namespace, icfg.Temporal.TaskQueue = ts.GetFrontendHostPort(), ts.GetDefaultNamespace(), "e2e"
	icfg.Kafka.Brokers = []string{"127.0.0.1:1"}
	icfg.ClickHouse.DSN = "clickhouse://127.0.0.1:1/default"
	icfg.Listen, icfg.ConfigDir, icfg.KeysFile = "127.0.0.1:0", confDir, keysFile
	icfg.SpoolDir = filepath.Join(dir, "spool-ingress")
	icfg.ShutdownTimeout = 5 * time.Second
	// Payloads are encrypted (issue 10): the whole flow below, memo-based
	// states in lists included, must work through the codec.
	keyFile := filepath.Join(dir, "payload-keys.yaml")
	if err := os.WriteFile(keyFile, []byte("keys:\n  - id: e2e\n    key: "+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	icfg.Temporal.PayloadKeyFile = keyFile
	listening := make(chan string, 1)
	icfg.OnListen = func(addr string) { listening <- addr }
	if err := icfg.validate(); err != nil {
		t.Fatal(err)
	}

	var wcfg workerConfig
	wcfg.bind(pflag.NewFlagSet("worker", pflag.ContinueOnError))
	wcfg.Temporal, wcfg.Kafka, wcfg.ClickHouse, wcfg.ConfigDir = icfg.Temporal, icfg.Kafka, icfg.ClickHouse, confDir
	wcfg.SpoolDir, wcfg.StopTimeout = filepath.Join(dir, "spool-worker"), time.Second
	wcfg.MetricsListen = ""

	idone := make(chan error, 1)
	wdone := make(chan error, 1)
	go func() { idone <- runIngress(ctx, icfg, log) }()
	go func() { wdone <- runWorker(ctx, wcfg, log) }()
	var addr string
	select {
	case addr = <-listening:
	case err := <-idone:
		t.Fatalf("runIngress: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("ingress did not listen")
	}
	api := []string{"--api-url", "http://" + addr, "--api-key", token}
	bob := []string{"--api-url", "http://" + addr, "--api-key", bobToken}

	// Readiness names each dependency: Temporal up, Kafka and ClickHouse not
	// (optional: the API serves degraded; strict readiness wants them all).
	resp, err := http.Get("http://" + addr + "/readyz?strict=true")
	if err != nil {
		t.Fatal(err)
	}
	var ready ingress.ReadyResponse
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if resp.StatusCode != 503 || !ready.Checks["temporal"].OK || ready.Checks["kafka"].OK || ready.Checks["clickhouse"].OK {
		t.Errorf("readyz %d %+v", resp.StatusCode, ready)
	}

	out, err := runCLI(t, newSubmitCmd, append([]string{"expense", "--input", `{"amount": 42}`, "-o", "json"}, api...)...)
	if err != nil {
		t.Fatal(err)
	}
	var sub struct{ ID string }
	if err := json.Unmarshal([]byte(out), &sub); err != nil || sub.ID == "" {
		t.Fatalf("submit output %q: %v", out, err)
	}
	if _, err := runCLI(t, newSubmitCmd, append([]string{"expense", "--input", `{"amount": "x"}`}, api...)...); err == nil || !strings.Contains(err.Error(), "input.amount") {
		t.Errorf("invalid input: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err = runCLI(t, newApprovalsCmd, bob...)
		if err == nil && strings.Contains(out, sub.ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("approval never listed: %q %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err = runCLI(t, func() *cobra.Command { return newDecideCmd("approve") }, append([]string{sub.ID, "manager"}, api...)...); err == nil || !strings.Contains(err.Error(), "self_approval") {
		t.Fatalf("the submitter approving its own run: %v", err)
	}
	if out, err = runCLI(t, func() *cobra.Command { return newDecideCmd("approve") }, append([]string{sub.ID, "manager", "--comment", "ok"}, bob...)...); err != nil || !strings.Contains(out, "approved") {
		t.Fatalf("approve: %q %v", out, err)
	}
	if out, err = runCLI(t, newWatchCmd, append([]string{sub.ID}, api...)...); err != nil || !strings.Contains(out, "closed: succeeded") {
		t.Fatalf("watch: %q %v", out, err)
	}
	if out, err = runCLI(t, newStatusCmd, append([]string{sub.ID}, api...)...); err != nil || !strings.Contains(out, "manager") || !strings.Contains(out, "succeeded") {
		t.Errorf("status: %q %v", out, err)
	}
	if out, err = runCLI(t, newDefinitionsCmd, api...); err != nil || !strings.Contains(out, "expense") {
		t.Errorf("definitions: %q %v", out, err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		out, err = runCLI(t, newListCmd, append([]string{"--status", "succeeded"}, api...)...)
		if err == nil && strings.Contains(out, sub.ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list: %q %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := runCLI(t, newStatusCmd, append([]string{"nope"}, api...)...); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown workflow: %v", err)
	}

	cancel()
	for name, ch := range map[string]chan error{"ingress": idone, "worker": wdone} {
		select {
		case err := <-ch:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not stop", name)
		}
	}
	// The call records of the requests waited in the spool for Kafka.
	segments, _ := filepath.Glob(filepath.Join(icfg.SpoolDir, "seg-*.log"))
	if len(segments) == 0 {
		t.Error("no spooled call records")
	}
}
