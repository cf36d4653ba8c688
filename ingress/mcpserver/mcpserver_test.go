package mcpserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
	"github.com/gateflow/gateflow/ingress/mcpserver"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

const orderYAML = `
name: order
version: "1"
description: Reserve and charge.
input_schema:
  type: object
  properties:
    amount: {type: number, minimum: 0}
  required: [amount]
  additionalProperties: false
steps:
  - {id: pause, kind: wait, duration: 1h}
`

const quickYAML = `
name: quick
version: "2"
steps:
  - {id: pause, kind: wait, duration: 1s}
`

const summarizeYAML = `
name: summarize
version: "1"
model: smart
user: "Summarize: ${{ input.text }}"
variables:
  type: object
  properties:
    text: {type: string}
  required: [text]
`

type env struct {
	in   *gwtest.Ingress
	orch *gwtest.Orch
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with the ingress's config changed by mod.
func newEnvWith(t *testing.T, mod func(*ingress.Config)) *env {
	t.Helper()
	orch := gwtest.NewOrch()
	for tenant, defs := range map[string][]string{"acme": {orderYAML, quickYAML}, "other": {strings.Replace(quickYAML, "name: quick", "name: theirs", 1)}} {
		for _, d := range defs {
			if err := orch.AddDefinition(tenant, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	orch.Complete["quick"] = json.RawMessage(`{"done":true}`)
	orch.Pending["acme"] = []orchestrator.Approval{{WorkflowID: "wf-9", Definition: "order", Version: "1",
		PendingApproval: workflows.PendingApproval{StepID: "approve", Quorum: 1}}}

	prov := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.ChatAnswer("Short.")))
	gw := gwtest.Gateway(t, gwtest.Config(prov.URL), nil, nil)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "prompts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prompts", "summarize.yaml"), []byte(summarizeYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := prompt.Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	runner := prompt.NewRunner(gw, func() *prompt.Catalog { return cat }, prompt.RunnerOptions{})
	srv := mcpserver.New(orch, runner, mcpserver.Options{MaxWait: 5 * time.Second, CacheTTL: time.Millisecond})
	return &env{in: gwtest.NewIngressWith(t, orch, mod, srv.Routes()), orch: orch}
}

// bearer adds an API key to every request.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

func (e *env) connect(t *testing.T, key string) *mcp.ClientSession {
	t.Helper()
	return e.connectVersion(t, key, "")
}

// connectVersion connects with a given protocol version ("" for the SDK's
// latest).
func (e *env) connectVersion(t *testing.T, key, version string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil)
	s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: e.in.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer(gwtest.Token(key))}},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func toolNames(t *testing.T, s *mcp.ClientSession) []string {
	t.Helper()
	res, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

// call calls a tool and decodes its structured result.
func call(t *testing.T, s *mcp.ClientSession, name string, args any) (map[string]any, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out map[string]any
	b, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(b, &out)
	if text := res.Content[0].(*mcp.TextContent).Text; !json.Valid([]byte(text)) {
		t.Errorf("%s: text content is not the JSON result: %s", name, text)
	}
	return out, res.IsError
}

func TestToolsDependOnTenantAndRoles(t *testing.T) {
	e := newEnv(t)
	cases := map[string]string{
		"submitter": "api_summarize,start_order,start_quick,workflow_status",
		"approver":  "decide_approval,list_pending_approvals,workflow_status",
		"model":     "api_summarize,workflow_status",
		"analyst":   "workflow_status",
		"admin":     "api_summarize,decide_approval,list_pending_approvals,start_order,start_quick,workflow_status",
		"other":     "api_summarize,decide_approval,list_pending_approvals,start_theirs,workflow_status",
	}
	for key, want := range cases {
		if got := strings.Join(toolNames(t, e.connect(t, key)), ","); got != want {
			t.Errorf("%s sees %s, want %s", key, got, want)
		}
	}
	// The start tool's input schema is the definition's.
	res, _ := e.connect(t, "submitter").ListTools(context.Background(), nil)
	for _, tl := range res.Tools {
		if tl.Name != "start_order" {
			continue
		}
		schema := tl.InputSchema.(map[string]any)
		input := schema["properties"].(map[string]any)["input"].(map[string]any)
		if input["required"].([]any)[0] != "amount" || schema["required"].([]any)[0] != "input" || !strings.Contains(tl.Description, "Reserve and charge.") {
			t.Errorf("start_order %+v", tl)
		}
	}
}

func TestStartAndWait(t *testing.T) {
	e := newEnv(t)
	s := e.connect(t, "submitter")

	// Invalid input: a tool error locating the problem.
	out, isErr := call(t, s, "start_order", map[string]any{"input": map[string]any{"amount": -1}})
	errBody, _ := out["error"].(map[string]any)
	details, _ := errBody["details"].([]any)
	if !isErr || errBody["code"] != "validation_failed" || len(details) == 0 || details[0].(map[string]any)["path"] != "input.amount" {
		t.Errorf("invalid input: %v %v", isErr, out)
	}
	out, isErr = call(t, s, "start_order", map[string]any{"input": map[string]any{"amount": 1}, "wait_seconds": 99})
	if !isErr || !strings.Contains(out["error"].(map[string]any)["message"].(string), "wait_seconds") {
		t.Errorf("wait bound: %v", out)
	}

	// Started without waiting; then its status.
	out, isErr = call(t, s, "start_order", map[string]any{"input": map[string]any{"amount": 12.5}, "idempotency_key": "k1"})
	if isErr || out["state"] != "running" || out["definition"] != "order" || out["id"] == "" {
		t.Fatalf("start: %v", out)
	}
	id := out["id"].(string)
	again, _ := call(t, s, "start_order", map[string]any{"input": map[string]any{"amount": 12.5}, "idempotency_key": "k1"})
	if again["id"] != id || again["created"] != false {
		t.Errorf("idempotent start: %v", again)
	}
	st, isErr := call(t, s, "workflow_status", map[string]any{"id": id})
	if isErr || st["id"] != id || st["state"] != "running" {
		t.Errorf("status: %v", st)
	}
	// Another tenant does not see it.
	other, isErr := call(t, e.connect(t, "other"), "workflow_status", map[string]any{"id": id})
	if !isErr || other["error"].(map[string]any)["code"] != "workflow_not_found" {
		t.Errorf("other tenant: %v", other)
	}

	// Waiting: a run that finishes returns its result...
	out, isErr = call(t, s, "start_quick", map[string]any{"wait_seconds": 5})
	if isErr || out["state"] != "succeeded" || out["output"].(map[string]any)["done"] != true {
		t.Errorf("wait for a finished run: %v", out)
	}
	// ... one that does not returns after the wait, still running.
	start := time.Now()
	out, isErr = call(t, s, "start_order", map[string]any{"input": map[string]any{"amount": 1}, "wait_seconds": 1})
	if isErr || out["state"] != "running" || time.Since(start) < time.Second {
		t.Errorf("wait for a running one: %v after %s", out, time.Since(start))
	}

	// The ingress record of a start names the workflow.
	var named bool
	for _, r := range e.in.Rec.Kind(calls.KindIngress) {
		if r.Target == "POST /mcp" && r.WorkflowID == "acme/"+id && r.Tenant == "acme" {
			named = true
		}
	}
	if !named {
		t.Errorf("no ingress record names acme/%s: %+v", id, e.in.Rec.Kind(calls.KindIngress))
	}
}

func TestApprovalsAndPromptTools(t *testing.T) {
	e := newEnv(t)
	// A workflow to decide on.
	id, _ := call(t, e.connect(t, "submitter"), "start_order", map[string]any{"input": map[string]any{"amount": 1}})
	s := e.connect(t, "approver")
	out, isErr := call(t, s, "list_pending_approvals", map[string]any{})
	items, _ := out["items"].([]any)
	if isErr || len(items) != 1 || items[0].(map[string]any)["step_id"] != "approve" {
		t.Errorf("pending: %v", out)
	}
	out, isErr = call(t, s, "decide_approval", map[string]any{"workflow_id": id["id"], "step_id": "approve", "decision": "approve", "comment": "ok"})
	if isErr || out["outcome"] != "approved" {
		t.Errorf("decide: %v", out)
	}
	out, isErr = call(t, s, "decide_approval", map[string]any{"workflow_id": id["id"], "step_id": "approve", "decision": "maybe"})
	if !isErr || out["error"].(map[string]any)["code"] != "invalid_request" {
		t.Errorf("bad decision: %v", out)
	}
	if d := e.orch.Decisions[id["id"].(string)]; len(d) != 1 || d[0].Comment != "ok" {
		t.Errorf("decisions %+v", d)
	}

	m := e.connect(t, "model")
	out, isErr = call(t, m, "api_summarize", map[string]any{"text": "long text"})
	if isErr || out["output"] != "Short." || out["model"] != "local/m1" {
		t.Errorf("prompt tool: %v", out)
	}
	out, isErr = call(t, m, "api_summarize", map[string]any{})
	if !isErr || out["error"].(map[string]any)["code"] != "validation_failed" {
		t.Errorf("prompt tool without text: %v", out)
	}
	// A tool the key does not have is unknown.
	if _, err := m.CallTool(context.Background(), &mcp.CallToolParams{Name: "start_order", Arguments: map[string]any{}}); err == nil {
		t.Errorf("a model key called start_order")
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	resp, b := e.in.Do(t, "", "POST", "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if resp.StatusCode != 401 || !strings.Contains(string(b), `"code":"unauthenticated"`) {
		t.Errorf("no key: %d %s", resp.StatusCode, b)
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "anon", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: e.in.URL + "/mcp"}, nil); err == nil {
		_ = s.Close()
		t.Errorf("connected without a key")
	}
	c2 := mcp.NewClient(&mcp.Implementation{Name: "bad", Version: "1"}, nil)
	if s, err := c2.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: e.in.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer("gf_ffffffffffff_notavalidsecretnotavalidsecret")}}, nil); err == nil {
		_ = s.Close()
		t.Errorf("connected with a bad key")
	}
	// GET is not served (stateless server): 405, which MCP clients accept.
	if resp, _ := e.in.Do(t, "submitter", "GET", "/mcp", ""); resp.StatusCode != 405 {
		t.Errorf("GET /mcp: %d", resp.StatusCode)
	}
}

// TestOlderProtocolClients: clients of the handshake-era protocol versions
// (initialize, most agents today) get the same tools.
func TestOlderProtocolClients(t *testing.T) {
	e := newEnv(t)
	for _, v := range []string{"2025-03-26", "2025-06-18", "2025-11-25"} {
		s := e.connectVersion(t, "submitter", v)
		if got := s.InitializeResult().ProtocolVersion; got != v {
			t.Errorf("negotiated %s, want %s", got, v)
		}
		if got := strings.Join(toolNames(t, s), ","); got != "api_summarize,start_order,start_quick,workflow_status" {
			t.Errorf("%s: tools %s", v, got)
		}
		out, isErr := call(t, s, "start_quick", map[string]any{"wait_seconds": 2})
		if isErr || out["state"] != "succeeded" {
			t.Errorf("%s: start_quick %v", v, out)
		}
	}
}
