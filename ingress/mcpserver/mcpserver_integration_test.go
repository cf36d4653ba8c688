//go:build integration

package mcpserver_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
	"github.com/gateflow/gateflow/ingress/mcpserver"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/registry"
)

// publishYAML calls the tool add of the MCP server "tools" and returns
// its structured result.
const publishYAML = `
name: publish
version: "1"
description: Adds two numbers with an external MCP tool.
input_schema:
  type: object
  properties:
    a: {type: number}
    b: {type: number}
  required: [a, b]
steps:
  - id: add
    kind: mcp
    server: tools
    tool: add
    timeout: 10s
    arguments: {a: "${{ input.a }}", b: "${{ input.b }}"}
output:
  sum: "${{ steps.add.output.structured.sum }}"
  text: "${{ steps.add.output.content }}"
`

type addArgs struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

type addResult struct {
	Sum float64 `json:"sum"`
}

// TestMCPEndToEnd: an MCP client starts an orchestration through its
// start tool on the ingress and waits for the result; the orchestration
// runs on a real worker against a real Temporal server, and its mcp step
// calls a tool of an external MCP server (the SDK's) through the MCP
// activity.
func TestMCPEndToEnd(t *testing.T) {
	// The external MCP server the step calls.
	tools := mcp.NewServer(&mcp.Implementation{Name: "tools", Version: "1"}, nil)
	mcp.AddTool(tools, &mcp.Tool{Name: "add"}, func(_ context.Context, _ *mcp.CallToolRequest, in addArgs) (*mcp.CallToolResult, addResult, error) {
		return nil, addResult{Sum: in.A + in.B}, nil
	})
	toolSrv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return tools }, nil))
	t.Cleanup(toolSrv.Close)

	ts := temporaltest.NewServer(
		temporaltest.WithT(t),
		temporaltest.WithBaseClientOptions(client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}),
		temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			dynamicconfig.TimerProcessorMaxTimeShift.Key():              []dynamicconfig.ConstrainedValue{{Value: 10 * time.Millisecond}},
		})),
	)
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := worker.EnsureSearchAttributes(ctx, c, ts.GetDefaultNamespace()); err != nil {
		t.Fatal(err)
	}

	def, err := definition.Parse([]byte(publishYAML))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := sysconfig.NewStatic(sysconfig.Config{
		MCPServers: map[string]sysconfig.MCPServer{"tools": {URL: toolSrv.URL}},
		Tenants:    map[string]sysconfig.Tenant{"acme": {Uses: sysconfig.Uses{MCPServers: []string{"tools"}, Definitions: []string{sysconfig.All}}}},
	}, def)
	if err != nil {
		t.Fatal(err)
	}

	// The worker, with the MCP activity wired to the registry as the lead
	// wires it in cmd/gateflow.
	recs := &gwtest.Recorder{}
	mcpAct := activities.NewMCPActivity(reg, recs, activities.MCPOptions{})
	const tq = "mcp-it"
	w, err := worker.New(c, worker.Options{TaskQueue: tq, StopTimeout: time.Second}, worker.Deps{
		Services: reg,
		Recorder: recs,
		MCP:      mcpAct.Call,
		Register: []func(sdkworker.Registry){func(r sdkworker.Registry) { registry.RegisterWorkflows(r, reg) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorker := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	t.Cleanup(func() { stopWorker(); <-wdone })

	store := registry.NewStore(c, reg, nil, registry.WithTaskQueue(tq), registry.WithCacheTTL(0))
	orch, err := orchestrator.New(orchestrator.Options{
		Client: c, TaskQueue: tq,
		Definitions:        orchestrator.RegistryDefinitions(store),
		Policies:           reg,
		ValidateDefinition: reg.ValidateFor,
		ValidateInput:      func(d *definition.Definition, in json.RawMessage) error { return d.ValidateInput(in) },
		WatchMinInterval:   20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	in := gwtest.NewIngress(t, orch, mcpserver.New(orch, nil, mcpserver.Options{}).Routes())

	// The agent: an MCP client with a submitter key of tenant acme.
	agent := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	session, err := agent.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: in.URL + "/mcp",
		HTTPClient: &http.Client{Transport: bearer(gwtest.Token("submitter"))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	list, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tl := range list.Tools {
		found = found || tl.Name == "start_publish"
	}
	if !found {
		t.Fatalf("no start_publish tool: %+v", list.Tools)
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "start_publish", Arguments: map[string]any{
		"input": map[string]any{"a": 2, "b": 3.5}, "wait_seconds": 30,
	}})
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ID     string
		State  string
		Output struct {
			Sum  float64
			Text string
		}
		Error string
	}
	b, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(b, &out)
	if res.IsError || out.State != "succeeded" || out.Output.Sum != 5.5 || out.Output.Text == "" {
		t.Fatalf("start_publish: %s", b)
	}

	// The status tool shows the finished run; the mcp step left one call
	// record.
	st, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "workflow_status", Arguments: map[string]any{"id": out.ID}})
	if err != nil || st.IsError {
		t.Fatalf("status: %v %+v", err, st)
	}
	var mcpRecs []record.Record
	for _, r := range recs.All() {
		if r.Kind == calls.KindMCP {
			mcpRecs = append(mcpRecs, r)
		}
	}
	if len(mcpRecs) != 1 || mcpRecs[0].Target != "tools/add" || mcpRecs[0].Outcome != record.OutcomeOK ||
		mcpRecs[0].Tenant != "acme" || mcpRecs[0].WorkflowID != "acme/"+out.ID || mcpRecs[0].StepID != "add" {
		t.Errorf("mcp records %+v", mcpRecs)
	}
}
