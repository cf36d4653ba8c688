//go:build integration

package temporalserver_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/deploy/embedded/temporalserver"
)

func greet(_ context.Context, name string) (string, error) { return "hello " + name, nil }

// waitThenGreet blocks on a signal, so that it is still running across a
// server restart.
func waitThenGreet(ctx workflow.Context, name string) (string, error) {
	var suffix string
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, &suffix)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, greet, name).Get(ctx, &out)
	return out + suffix, err
}

var tenantAttr = temporal.NewSearchAttributeKeyKeyword("GateflowTestTenant")

func freePort(t *testing.T) int {
	t.Helper()
	// Four consecutive free ports are needed (frontend, history, matching,
	// worker); try a few random bases.
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for i := 1; i < 4; i++ {
			l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no four consecutive free ports")
	return 0
}

func start(t *testing.T, db string, port int) *temporalserver.Server {
	t.Helper()
	return startUI(t, db, port, 0)
}

func startUI(t *testing.T, db string, port, uiPort int) *temporalserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	s, err := temporalserver.Start(ctx, temporalserver.Options{
		DBPath:           db,
		FrontendPort:     port,
		UIPort:           uiPort,
		SearchAttributes: map[string]enumspb.IndexedValueType{tenantAttr.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	})
	if err != nil {
		t.Fatalf("start Temporal: %v", err)
	}
	t.Logf("Temporal ready in %s", time.Since(begin))
	return s
}

func TestTemporalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "temporal.db")
	port := freePort(t)
	s := start(t, db, port)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: s.FrontendAddr(), Namespace: s.Namespace()})
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(c, "tq", worker.Options{})
	w.RegisterWorkflow(waitThenGreet)
	w.RegisterActivity(greet)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "wf-1", TaskQueue: "tq",
		TypedSearchAttributes: temporal.NewSearchAttributes(tenantAttr.ValueSet("acme")),
	}, waitThenGreet, "world")
	if err != nil {
		t.Fatalf("start workflow: %v", err)
	}
	// Visibility on the custom attribute (SQLite Keyword column).
	waitFor(t, func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: s.Namespace(), Query: tenantAttr.GetName() + " = 'acme'",
		})
		return err == nil && len(resp.Executions) == 1
	})
	w.Stop()
	c.Close()
	begin := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("Temporal stopped in %s", time.Since(begin))

	// Restart on the same file: the workflow is still there, still running,
	// and completes once signalled.
	s2 := start(t, db, port)
	defer s2.Stop()
	c2, err := client.DialContext(ctx, client.Options{HostPort: s2.FrontendAddr(), Namespace: s2.Namespace()})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	desc, err := c2.DescribeWorkflowExecution(ctx, "wf-1", run.GetRunID())
	if err != nil {
		t.Fatalf("describe after restart: %v", err)
	}
	if st := desc.WorkflowExecutionInfo.Status; st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("status after restart = %v, want running", st)
	}
	w2 := worker.New(c2, "tq", worker.Options{})
	w2.RegisterWorkflow(waitThenGreet)
	w2.RegisterActivity(greet)
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if err := c2.SignalWorkflow(ctx, "wf-1", "", "go", "!"); err != nil {
		t.Fatal(err)
	}
	var out string
	if err := c2.GetWorkflow(ctx, "wf-1", "").Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if out != "hello world!" {
		t.Fatalf("result %q", out)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTemporalWebUI(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uiPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := startUI(t, "", freePort(t), uiPort)
	defer s.Stop()
	if s.UIURL() == "" {
		t.Fatal("no UI URL")
	}
	for _, path := range []string{"/", "/api/v1/namespaces"} {
		resp, err := http.Get(s.UIURL() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s: %.200s", path, resp.Status, body)
		}
		if path != "/" && !strings.Contains(string(body), `"default"`) {
			t.Errorf("GET %s: no default namespace in %.300s", path, body)
		}
	}
}
