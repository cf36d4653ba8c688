package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	"github.com/openai/openai-go/shared"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
	"github.com/gateflow/gateflow/deploy/embedded/demo"
	"github.com/gateflow/gateflow/deploy/examples"
)

// freePorts returns distinct free loopback ports for every demo service.
func freePorts(t *testing.T) demo.Ports {
	t.Helper()
	var ls []net.Listener
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		return l.Addr().(*net.TCPAddr).Port
	}
	p := demo.Ports{Echo: port(), EchoB: port(), Inventory: port(), Payments: port(), Shipping: port(),
		Notifications: port(), Catalog: port(), Model: port()}
	for _, l := range ls {
		l.Close()
	}
	return p
}

func startDemo(t *testing.T) *demo.Demo {
	t.Helper()
	d, err := demo.Start(context.Background(), demo.Options{Ports: freePorts(t), StreamDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// call sends a JSON request and decodes the JSON answer.
func call(t *testing.T, method, u string, body any, headers map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: %d %q: %v", method, u, resp.StatusCode, b, err)
	}
	return resp.StatusCode, resp.Header, out
}

// TestExampleConfigPointsAtDemoPorts loads the example config dir exactly
// as gateflow dev seeds it (prompts included) and checks that every
// service, MCP server, URL and the demo model are at the demo ports, and
// that RewriteConfigPorts moves all of them (and nothing else).
func TestExampleConfigPointsAtDemoPorts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	if _, err := examples.Seed(dir); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, p demo.Ports) {
		t.Helper()
		s, err := sysconfig.Load(dir, prompt.Extension()) // validates the prompt files too
		if err != nil {
			t.Fatal(err)
		}
		hostPort := func(raw string) string {
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			return u.Host
		}
		at := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
		for name, port := range map[string]int{"echo": p.Echo, "inventory": p.Inventory, "payments": p.Payments, "shipping": p.Shipping} {
			svc, ok := s.Service(name)
			if !ok || hostPort(svc.BaseURL) != at(port) {
				t.Errorf("service %s: %+v, want port %d", name, svc, port)
			}
		}
		if m, ok := s.MCPServer("catalog"); !ok || m.URL != "http://"+at(p.Catalog)+"/mcp" {
			t.Errorf("mcp server catalog: %+v", m)
		}
		models := s.Models()
		if got := models.Providers["demo"].BaseURL; got != "http://"+at(p.Model)+"/v1" {
			t.Errorf("demo provider base_url %q", got)
		}
		if _, ok := models.Providers["demo"].Models[demo.DemoModelName]; !ok {
			t.Errorf("demo provider has no model %q", demo.DemoModelName)
		}
		if got := models.Providers["local"].BaseURL; got != "http://127.0.0.1:11434/v1" {
			t.Errorf("local provider moved: %q", got)
		}
		if got := strings.Join(models.Aliases["default"].Names(), ","); got != "local/llama3.2,demo/echo" {
			t.Errorf("alias default = %s", got)
		}
		def, ok := s.Definition("order-fulfilment", "")
		if !ok {
			t.Fatal("no order-fulfilment")
		}
		b, _ := json.Marshal(def)
		if !strings.Contains(string(b), "http://"+at(p.Notifications)+"/notifications/") {
			t.Errorf("order-fulfilment does not notify at %d: %s", p.Notifications, b)
		}
	}
	t.Run("defaults", func(t *testing.T) { check(t, demo.PortsAt(demo.DefaultPortBase)) })
	moved := demo.PortsAt(21000)
	if err := demo.RewriteConfigPorts(dir, moved); err != nil {
		t.Fatal(err)
	}
	t.Run("moved", func(t *testing.T) { check(t, moved) })
}

func TestPortInUse(t *testing.T) {
	p := freePorts(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p.Payments))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = demo.Start(context.Background(), demo.Options{Ports: p, PortHint: "use --demo-port-base, or --demo-services=false"})
	if err == nil || !strings.Contains(err.Error(), "demo payments service") || !strings.Contains(err.Error(), "--demo-services=false") ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v", err)
	}
	// Nothing stays listening.
	for _, np := range p.List() {
		if np.Port == p.Payments {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(np.Port))
		if err != nil {
			t.Errorf("%s port still taken: %v", np.Name, err)
			continue
		}
		l.Close()
	}
}

func TestServices(t *testing.T) {
	d := startDemo(t)
	u := func(svc, path string) string { return d.URL(svc) + path }

	if st, _, out := call(t, "POST", u(demo.Echo, "/echo"), map[string]any{"greeting": "Hello, Ada!"}, nil); st != 200 || out["greeting"] != "Hello, Ada!" {
		t.Errorf("echo: %d %v", st, out)
	}
	if st, _, out := call(t, "GET", u(demo.Echo, "/"), nil, nil); st != 200 || out["demo"] != true {
		t.Errorf("about: %d %v", st, out)
	}

	items := []map[string]any{{"sku": "MUG-1", "qty": 2}}
	st, _, res := call(t, "POST", u(demo.Inventory, "/reservations"), map[string]any{"reference": "ord-1", "items": items}, nil)
	if st != 201 || res["id"] != "res-ord-1" {
		t.Errorf("reserve: %d %v", st, res)
	}
	if st, _, out := call(t, "POST", u(demo.Inventory, "/reservations"), map[string]any{"reference": "ord-2", "items": []map[string]any{{"sku": "OUT-9", "qty": 1}}}, nil); st != 409 {
		t.Errorf("out of stock: %d %v", st, out)
	}
	if st, _, out := call(t, "POST", u(demo.Inventory, "/reservations"), map[string]any{"items": items}, nil); st != 400 {
		t.Errorf("no reference: %d %v", st, out)
	}
	if st, _, out := call(t, "DELETE", u(demo.Inventory, "/reservations/res-ord-1"), nil, nil); st != 200 || out["status"] != "released" {
		t.Errorf("release: %d %v", st, out)
	}
	_, _, s1 := call(t, "GET", u(demo.Inventory, "/stock/MUG-1?position=0"), nil, nil)
	_, _, s2 := call(t, "GET", u(demo.Inventory, "/stock/MUG-1"), nil, nil)
	if s1["stock"] != s2["stock"] || s1["stock"].(float64) < 100 {
		t.Errorf("stock not stable: %v %v", s1, s2)
	}

	auth := map[string]string{"Authorization": "Bearer " + demo.DemoPaymentsToken, "Idempotency-Key": "ord-1"}
	charge := map[string]any{"amount": 42.5, "customer": "ada@example.com"}
	if st, _, _ := call(t, "POST", u(demo.Payments, "/charges"), charge, nil); st != 401 {
		t.Errorf("charge without auth: %d", st)
	}
	st, _, c1 := call(t, "POST", u(demo.Payments, "/charges"), charge, auth)
	if st != 201 || !strings.HasPrefix(c1["id"].(string), "ch_") {
		t.Errorf("charge: %d %v", st, c1)
	}
	st, h, c2 := call(t, "POST", u(demo.Payments, "/charges"), charge, auth)
	if st != 200 || c2["id"] != c1["id"] || h.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replayed charge: %d %v %v", st, c2, h)
	}
	if st, _, out := call(t, "POST", u(demo.Payments, "/charges"), map[string]any{"amount": 1, "customer": "x"}, auth); st != 409 {
		t.Errorf("key reused with another body: %d %v", st, out)
	}
	big := map[string]string{"Authorization": "Bearer x", "Idempotency-Key": "ord-big"}
	if st, _, out := call(t, "POST", u(demo.Payments, "/charges"), map[string]any{"amount": demo.DeclineAbove + 1, "customer": "x"}, big); st != 402 {
		t.Errorf("declined: %d %v", st, out)
	}
	if st, _, out := call(t, "POST", u(demo.Payments, "/refunds"), map[string]any{"charge": c1["id"]}, auth); st != 201 || out["status"] != "refunded" {
		t.Errorf("refund: %d %v", st, out)
	}

	if st, _, out := call(t, "POST", u(demo.Shipping, "/shipments"), map[string]any{"reference": "ord-1", "approved_by": []any{}}, nil); st != 201 || out["id"] != "shp-ord-1" {
		t.Errorf("ship: %d %v", st, out)
	}

	if st, _, out := call(t, "POST", u(demo.Notifications, "/notifications/1"), map[string]any{"to": "ada@example.com", "text": "Thanks"}, nil); st != 202 {
		t.Errorf("notify: %d %v", st, out)
	}
	if _, _, out := call(t, "GET", u(demo.Notifications, "/notifications"), nil, nil); len(out["items"].([]any)) != 1 {
		t.Errorf("notifications: %v", out)
	}

	if st, _, out := call(t, "POST", u(demo.Echo, "/echo"), nil, nil); st != 400 {
		t.Errorf("empty echo body: %d %v", st, out)
	}
}

func TestCatalogMCP(t *testing.T) {
	d := startDemo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.URL(demo.Catalog)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tools, err := s.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 1 || tools.Tools[0].Name != demo.PublishProductsTool {
		t.Fatalf("tools: %+v %v", tools, err)
	}
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: demo.PublishProductsTool, Arguments: map[string]any{
		"products": []any{
			map[string]any{"sku": "MUG-1", "stock": map[string]any{"stock": 3}, "tags": []any{"mug", "blue"}},
			map[string]any{"sku": "TEE-2", "tags": nil},
			map[string]any{"sku": "CAP-3", "tags": "cap, red"},
		},
	}})
	if err != nil || res.IsError {
		t.Fatalf("call: %+v %v", res, err)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var out demo.PublishOutput
	if err := json.Unmarshal(b, &out); err != nil || out.Published != 3 || strings.Join(out.Products[2].Tags, "|") != "cap|red" ||
		out.Products[0].URL != "https://catalog.example.com/p/MUG-1" {
		t.Fatalf("structured %s %v", b, err)
	}
	res, err = s.CallTool(ctx, &mcp.CallToolParams{Name: demo.PublishProductsTool, Arguments: map[string]any{"products": []any{}}})
	if err != nil || !res.IsError {
		t.Fatalf("empty products: %+v %v", res, err)
	}
}

func openaiClient(d *demo.Demo) openai.Client {
	return openai.NewClient(option.WithBaseURL(d.URL(demo.Model)+"/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

func TestModelOpenAISDK(t *testing.T) {
	d := startDemo(t)
	c := openaiClient(d)
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    demo.DemoModelName,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello there")},
	}
	resp, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	text := resp.Choices[0].Message.Content
	if !strings.Contains(text, `"hello there"`) || resp.Usage.PromptTokens == 0 || resp.Usage.CompletionTokens == 0 ||
		resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("plain: %+v", resp)
	}
	again, _ := c.Chat.Completions.New(ctx, params)
	if again.Choices[0].Message.Content != text {
		t.Errorf("not deterministic: %q vs %q", again.Choices[0].Message.Content, text)
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != text || acc.Usage.TotalTokens != resp.Usage.TotalTokens || chunks < 5 {
		t.Errorf("stream: %d chunks, %q, usage %+v", chunks, acc.Choices[0].Message.Content, acc.Usage)
	}

	// max_tokens cuts the text.
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
	params.MaxTokens = openai.Int(5)
	short, err := c.Chat.Completions.New(ctx, params)
	if err != nil || short.Choices[0].FinishReason != "length" || short.Usage.CompletionTokens > 5 {
		t.Errorf("max_tokens: %+v %v", short, err)
	}

	// json_schema: an instance of the schema.
	schemaParams := openai.ChatCompletionNewParams{
		Model:    demo.DemoModelName,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Product: Blue ceramic mug\nAudience: cooks")},
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "product", Schema: map[string]any{
				"type": "object", "required": []string{"description", "tags", "rating", "kind"},
				"properties": map[string]any{
					"description": map[string]any{"type": "string", "maxLength": 30},
					"tags":        map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "maxItems": 2},
					"rating":      map[string]any{"type": "integer", "minimum": 3},
					"kind":        map[string]any{"$ref": "#/$defs/kind"},
				},
				"$defs": map[string]any{"kind": map[string]any{"enum": []string{"physical", "digital"}}},
			}},
		}},
	}
	js, err := c.Chat.Completions.New(ctx, schemaParams)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Description string   `json:"description"`
		Tags        []string `json:"tags"`
		Rating      int      `json:"rating"`
		Kind        string   `json:"kind"`
	}
	if err := json.Unmarshal([]byte(js.Choices[0].Message.Content), &got); err != nil || len(got.Description) > 30 ||
		strings.Join(got.Tags, ",") != "blue,ceramic" || got.Rating != 3 || got.Kind != "physical" {
		t.Errorf("json_schema answer %q: %+v %v", js.Choices[0].Message.Content, got, err)
	}
}

func TestModelJSONHintsAndTools(t *testing.T) {
	cases := []struct {
		name, system, user, want string
	}{
		{"type hint", `Answer with JSON: {"tags": [string]}`, "Tags for: Blue ceramic mug", `{"tags":["blue","ceramic","mug"]}`},
		{"example object", "", `Reply like {"city": "Paris", "population": 1, "capital": true} about: Lyon`, `{"capital":true,"city":"Demo city for Lyon","population":1}`},
		{"no hint", "", "hello", `{"reply":"Demo reply for hello"}`},
	}
	d := startDemo(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := map[string]any{"model": "echo", "response_format": map[string]any{"type": "json_object"},
				"messages": []map[string]any{{"role": "system", "content": tc.system}, {"role": "user", "content": tc.user}}}
			st, _, out := call(t, "POST", d.URL(demo.Model)+"/chat/completions", req, nil)
			if st != 200 {
				t.Fatalf("%d %v", st, out)
			}
			content := out["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
			if content != tc.want {
				t.Errorf("content %s, want %s", content, tc.want)
			}
		})
	}
	t.Run("tools", func(t *testing.T) {
		req := map[string]any{"model": "echo",
			"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather",
				"parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}},
			"messages": []map[string]any{{"role": "user", "content": "Weather in: Oslo"}}}
		_, _, out := call(t, "POST", d.URL(demo.Model)+"/chat/completions", req, nil)
		choice := out["choices"].([]any)[0].(map[string]any)
		calls := choice["message"].(map[string]any)["tool_calls"].([]any)
		fn := calls[0].(map[string]any)["function"].(map[string]any)
		if choice["finish_reason"] != "tool_calls" || fn["name"] != "get_weather" || fn["arguments"] != `{"city":"Demo city for Oslo"}` {
			t.Errorf("tool call: %v", out)
		}
	})
	t.Run("error marker", func(t *testing.T) {
		req := map[string]any{"model": "echo", "messages": []map[string]any{{"role": "user", "content": "please demo-error:503"}}}
		if st, _, _ := call(t, "POST", d.URL(demo.Model)+"/chat/completions", req, nil); st != 503 {
			t.Errorf("status %d", st)
		}
	})
}

// TestGatewayFallsBackToDemoModel checks the claim of the example config:
// with no local model server (connection refused), the `default` alias
// answers from the demo model, plain and streaming, without a retry round.
func TestGatewayFallsBackToDemoModel(t *testing.T) {
	d := startDemo(t)
	closed := freePorts(t).Echo // free, so nothing listens: connection refused
	dir := filepath.Join(t.TempDir(), "config")
	if _, err := examples.Seed(dir); err != nil {
		t.Fatal(err)
	}
	s, err := sysconfig.Load(dir, prompt.Extension())
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.Models()
	local := cfg.Providers["local"]
	local.BaseURL = "http://127.0.0.1:" + strconv.Itoa(closed) + "/v1"
	cfg.Providers["local"] = local
	dp := cfg.Providers["demo"]
	dp.BaseURL = d.URL(demo.Model)
	cfg.Providers["demo"] = dp
	rec := &recordtest.Sink{}
	gw, err := llm.NewGateway(cfg, llm.Deps{Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	req := &llm.ChatRequest{Model: "default", Messages: []llm.Message{llm.TextMessage("user", "Write a thank-you note")}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	resp, err := gw.Chat(ctx, req, llm.CallOptions{Tenant: "dev", NoRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "demo/echo" && !strings.Contains(resp.Model, "echo") {
		t.Errorf("answered by %q", resp.Model)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("fallback took %s", took)
	}
	var got []string
	for _, r := range rec.All() {
		got = append(got, r.Target+":"+string(r.Outcome)+":"+r.ErrorClass)
	}
	if strings.Join(got, " ") != "local/llama3.2:error:connection demo/echo:ok:" {
		t.Errorf("records %v", got)
	}

	st, err := gw.ChatStream(ctx, req, llm.CallOptions{Tenant: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := llm.Collect(st)
	if err != nil || !strings.Contains(out.Choices[0].Message.Text(), "demo model") || out.Usage.TotalTokens == 0 || out.Usage.CostUSD == 0 {
		t.Errorf("stream: %+v %v", out, err)
	}
}

// TestCloseWithSilentConnection: a client connection that never sent a
// request (an HTTP client's spare connection) does not hold Close.
func TestCloseWithSilentConnection(t *testing.T) {
	d, err := demo.Start(context.Background(), demo.Options{Ports: freePorts(t)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", d.Addr(demo.Echo))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // let the server accept it
	began := time.Now()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 4*time.Second {
		t.Errorf("Close took %s", took)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
