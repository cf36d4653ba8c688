package llm

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/llm/llmtest"
)

// Each adapter against a local server speaking the provider's wire format:
// exact request (path, headers, body) and the unified answer.

func TestOpenAIChat(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL+"/v1", map[string]Model{
		"gpt-4o-mini": {InputPerMTok: 0.15, OutputPerMTok: 0.60, ContextTokens: 128000},
	}), nil)
	resp, err := env.gw.Chat(context.Background(), loadRequest(t, "unified/tool_conversation.json", "p/gpt-4o-mini"), CallOptions{Tenant: "acme", RequestID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/v1/chat/completions" {
		t.Errorf("sent %s %s", r.Method, r.Path)
	}
	for k, want := range map[string]string{
		"Authorization":       "Bearer " + testKey,
		"Content-Type":        "application/json",
		"X-Client-Request-Id": "req-1",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	assertJSONEqual(t, r.Body, llmtest.Fixture(t, "openai/request_tools.json"))

	if resp.Model != "p/gpt-4o-mini" || resp.Object != "chat.completion" || resp.ID != "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT" {
		t.Errorf("response head: %+v", resp)
	}
	if got := resp.Choices[0].Message.Text(); got != "Hello! How can I assist you today?" {
		t.Errorf("content %q", got)
	}
	if resp.Choices[0].FinishReason != FinishStop {
		t.Errorf("finish %q", resp.Choices[0].FinishReason)
	}
	wantCost := (19*0.15 + 10*0.60) / 1e6
	if u := resp.Usage; u.PromptTokens != 19 || u.CompletionTokens != 10 || u.TotalTokens != 29 || math.Abs(u.CostUSD-wantCost) > 1e-12 {
		t.Errorf("usage %+v, want cost %g", u, wantCost)
	}
}

func TestOpenAIToolCallResponse(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_tool_response.json")))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"gpt-4o-mini": {}}), nil)
	resp, err := env.gw.Chat(context.Background(), userRequest("p/gpt-4o-mini", "weather in Paris?"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch := resp.Choices[0]
	if ch.FinishReason != FinishToolCalls || len(ch.Message.ToolCalls) != 1 {
		t.Fatalf("choice %+v", ch)
	}
	tc := ch.Message.ToolCalls[0]
	if tc.ID != "call_abc123" || tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"city":"Paris"}` {
		t.Errorf("tool call %+v", tc)
	}
	if string(ch.Message.Content) != "null" {
		t.Errorf("content %s, want null", ch.Message.Content)
	}
}

func TestOpenAIStream(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "openai/chat_stream.sse")))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"gpt-4o-mini": {InputPerMTok: 1, OutputPerMTok: 2}}), nil)
	s, err := env.gw.ChatStream(context.Background(), userRequest("p/gpt-4o-mini", "hi"), CallOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chunks := readAll(t, s)
	r := srv.Requests()[0]
	var sent map[string]any
	_ = json.Unmarshal(r.Body, &sent)
	if sent["stream"] != true || !reflectEqual(sent["stream_options"], map[string]any{"include_usage": true}) {
		t.Errorf("stream fields: %s", r.Body)
	}
	if r.Header.Get("Accept") != "text/event-stream" {
		t.Errorf("Accept %q", r.Header.Get("Accept"))
	}
	var text strings.Builder
	for _, c := range chunks {
		if c.Object != "chat.completion.chunk" || c.Model != "p/gpt-4o-mini" || c.ID != "chatcmpl-123" {
			t.Errorf("chunk head %+v", c)
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				text.WriteString(*ch.Delta.Content)
			}
		}
	}
	if text.String() != "Hello there!" {
		t.Errorf("text %q", text.String())
	}
	last := chunks[len(chunks)-1]
	if last.Usage == nil || len(last.Choices) != 0 || last.Usage.PromptTokens != 9 || last.Usage.CompletionTokens != 3 {
		t.Fatalf("last chunk %+v", last)
	}
	if want := (9*1.0 + 3*2.0) / 1e6; math.Abs(last.Usage.CostUSD-want) > 1e-12 {
		t.Errorf("cost %g, want %g", last.Usage.CostUSD, want)
	}
	fin := chunks[len(chunks)-2]
	if fin.Choices[0].FinishReason == nil || *fin.Choices[0].FinishReason != FinishStop {
		t.Errorf("finish chunk %+v", fin)
	}
	for _, c := range chunks[:len(chunks)-1] {
		if c.Usage != nil {
			t.Errorf("usage on a content chunk")
		}
	}
	recs := env.recs.All()
	if len(recs) != 1 || recs[0].TokensIn != 9 || recs[0].TokensOut != 3 || recs[0].Outcome != "ok" || recs[0].Labels["stream"] != "true" {
		t.Errorf("records %+v", recs)
	}
}

func TestOpenAIToolStream(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "openai/chat_tool_stream.sse")))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"gpt-4o-mini": {}}), nil)
	s, err := env.gw.ChatStream(context.Background(), userRequest("p/gpt-4o-mini", "weather?"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Collect(s)
	if err != nil {
		t.Fatal(err)
	}
	tc := resp.Choices[0].Message.ToolCalls
	if len(tc) != 1 || tc[0].ID != "call_DdmO9pD3xa9XTPNJ32zg2hcA" || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != `{"city":"Paris"}` {
		t.Errorf("tool calls %+v", tc)
	}
	if resp.Choices[0].FinishReason != FinishToolCalls || resp.Usage.TotalTokens != 99 {
		t.Errorf("resp %+v", resp)
	}
}

func TestAnthropicChat(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "anthropic/message_response.json")))
	env := newTestGateway(t, oneProvider(KindAnthropic, srv.URL, map[string]Model{
		"sonnet": {Name: "claude-sonnet-4-5", InputPerMTok: 3, OutputPerMTok: 15},
	}), nil)
	resp, err := env.gw.Chat(context.Background(), loadRequest(t, "unified/tool_conversation.json", "p/sonnet"), CallOptions{RequestID: "req-2"})
	if err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	if r.Path != "/v1/messages" {
		t.Errorf("path %s", r.Path)
	}
	for k, want := range map[string]string{
		"X-Api-Key":         testKey,
		"Anthropic-Version": "2023-06-01",
		"Content-Type":      "application/json",
		"Authorization":     "",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	assertJSONEqual(t, r.Body, llmtest.Fixture(t, "anthropic/request_tools.json"))
	if resp.Choices[0].Message.Text() != "Hi! My name is Claude." || resp.Choices[0].FinishReason != FinishStop || resp.ID != "msg_013Zva2CMHLNnXjNJJKqJ2EF" {
		t.Errorf("resp %+v", resp)
	}
	if u := resp.Usage; u.PromptTokens != 2095 || u.CompletionTokens != 503 || u.TotalTokens != 2598 {
		t.Errorf("usage %+v", u)
	}
	if want := (2095*3.0 + 503*15.0) / 1e6; math.Abs(resp.Usage.CostUSD-want) > 1e-12 {
		t.Errorf("cost %g want %g", resp.Usage.CostUSD, want)
	}
}

func TestAnthropicToolResponse(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "anthropic/message_tool_response.json")))
	env := newTestGateway(t, oneProvider(KindAnthropic, srv.URL, map[string]Model{"claude": {}}), nil)
	req := userRequest("p/claude", "weather?")
	req.ResponseFormat = &ResponseFormat{Type: "json_object"}
	req.ToolChoice = json.RawMessage(`{"type":"function","function":{"name":"get_weather"}}`)
	resp, err := env.gw.Chat(context.Background(), req, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var sent anthropicRequest
	_ = json.Unmarshal(srv.Requests()[0].Body, &sent)
	if sent.MaxTokens != DefaultMaxOutputTokens || !strings.Contains(sent.System, "JSON") || sent.ToolChoice == nil || sent.ToolChoice.Type != "tool" || sent.ToolChoice.Name != "get_weather" {
		t.Errorf("sent %+v", sent)
	}
	ch := resp.Choices[0]
	if ch.FinishReason != FinishToolCalls || ch.Message.Text() != "I'll check the weather in Paris." {
		t.Errorf("choice %+v", ch)
	}
	if tc := ch.Message.ToolCalls; len(tc) != 1 || tc[0].ID != "toolu_01A09q90qw90lq917835lq9" || tc[0].Function.Arguments != `{"city":"Paris"}` || tc[0].Type != "function" {
		t.Errorf("tool calls %+v", tc)
	}
	// Cached input tokens count as prompt tokens.
	if resp.Usage.PromptTokens != 484 || resp.Usage.CompletionTokens != 52 {
		t.Errorf("usage %+v", resp.Usage)
	}
}

func TestAnthropicStream(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "anthropic/message_stream.sse")))
	env := newTestGateway(t, oneProvider(KindAnthropic, srv.URL, map[string]Model{"claude": {}}), nil)
	s, err := env.gw.ChatStream(context.Background(), userRequest("p/claude", "hi"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chunks := readAll(t, s)
	s.Close()
	var sent map[string]any
	_ = json.Unmarshal(srv.Requests()[0].Body, &sent)
	if sent["stream"] != true {
		t.Errorf("not a stream request: %s", srv.Requests()[0].Body)
	}
	if first := chunks[0]; first.Choices[0].Delta.Role != "assistant" || first.ID != "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY" {
		t.Errorf("first chunk %+v", first)
	}
	resp := assemble(chunks)
	if resp.Choices[0].Message.Text() != "Hello there!" || resp.Choices[0].FinishReason != FinishStop {
		t.Errorf("assembled %+v", resp)
	}
	if resp.Usage.PromptTokens != 25 || resp.Usage.CompletionTokens != 15 || resp.Usage.TotalTokens != 40 {
		t.Errorf("usage %+v", resp.Usage)
	}
}

func TestAnthropicToolStream(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "anthropic/message_tool_stream.sse")))
	env := newTestGateway(t, oneProvider(KindAnthropic, srv.URL, map[string]Model{"claude": {}}), nil)
	s, err := env.gw.ChatStream(context.Background(), userRequest("p/claude", "weather?"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Collect(s)
	if err != nil {
		t.Fatal(err)
	}
	ch := resp.Choices[0]
	if ch.Message.Text() != "Okay, let's check the weather." || ch.FinishReason != FinishToolCalls {
		t.Errorf("choice %+v", ch)
	}
	if tc := ch.Message.ToolCalls; len(tc) != 1 || tc[0].ID != "toolu_01T1x1fJ34qAmk2tNTrN7Up6" || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != `{"city": "Paris"}` {
		t.Errorf("tool calls %+v", tc)
	}
	if resp.Usage.PromptTokens != 472 || resp.Usage.CompletionTokens != 89 {
		t.Errorf("usage %+v", resp.Usage)
	}
}

func TestGeminiChat(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "gemini/generate_response.json")))
	env := newTestGateway(t, oneProvider(KindGemini, srv.URL+"/v1beta", map[string]Model{"gemini-2.5-flash": {InputPerMTok: 0.3, OutputPerMTok: 2.5}}), nil)
	resp, err := env.gw.Chat(context.Background(), loadRequest(t, "unified/tool_conversation.json", "p/gemini-2.5-flash"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	if r.Path != "/v1beta/models/gemini-2.5-flash:generateContent" || r.RawQuery != "" {
		t.Errorf("sent to %s?%s", r.Path, r.RawQuery)
	}
	if r.Header.Get("X-Goog-Api-Key") != testKey || r.Header.Get("Authorization") != "" {
		t.Errorf("auth headers %v", r.Header)
	}
	assertJSONEqual(t, r.Body, llmtest.Fixture(t, "gemini/request_tools.json"))
	if resp.Choices[0].Message.Text() != "Hello! How can I help you today?" || resp.Choices[0].FinishReason != FinishStop || resp.ID != "mAitaLmkHPPlz7IPvtfUqQ4" {
		t.Errorf("resp %+v", resp)
	}
	// Thinking tokens are billed as output.
	if u := resp.Usage; u.PromptTokens != 8 || u.CompletionTokens != 29 || u.TotalTokens != 37 {
		t.Errorf("usage %+v", u)
	}
}

func TestGeminiToolCallRoundTrip(t *testing.T) {
	srv := llmtest.NewProvider(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			llmtest.WriteJSON(w, 200, llmtest.Fixture(t, "gemini/generate_tool_response.json"))
			return
		}
		llmtest.WriteJSON(w, 200, llmtest.Fixture(t, "gemini/generate_response.json"))
	})
	env := newTestGateway(t, oneProvider(KindGemini, srv.URL, map[string]Model{"gemini-2.5-flash": {}}), nil)
	req := userRequest("p/gemini-2.5-flash", "weather in Paris?")
	req.Tools = []Tool{{Type: "function", Function: FunctionDecl{Name: "get_weather", Parameters: json.RawMessage(`{"type":"object"}`)}}}
	resp, err := env.gw.Chat(context.Background(), req, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	msg := resp.Choices[0].Message
	if resp.Choices[0].FinishReason != FinishToolCalls || len(msg.ToolCalls) != 1 {
		t.Fatalf("resp %+v", resp)
	}
	tc := msg.ToolCalls[0]
	if !strings.HasPrefix(tc.ID, geminiGeneratedID) || !strings.HasSuffix(tc.ID, geminiThoughtSep+"CiQB0e2Kb7xyz=") || tc.Function.Arguments != `{"city":"Paris"}` {
		t.Errorf("tool call %+v", tc)
	}
	// The client sends the call back with its result, as an OpenAI client
	// would: the generated id is not sent, the thought signature is.
	req.Messages = append(req.Messages, msg, Message{Role: "tool", ToolCallID: tc.ID, Content: json.RawMessage(`"18C"`)})
	if _, err := env.gw.Chat(context.Background(), req, CallOptions{}); err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, jsonPath(t, srv.Requests()[1].Body, "contents"), []byte(`[
		{"role":"user","parts":[{"text":"weather in Paris?"}]},
		{"role":"model","parts":[{"thoughtSignature":"CiQB0e2Kb7xyz=","functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},
		{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"output":"18C"}}}]}]`))
}

func TestGeminiStream(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "gemini/stream.sse")))
	env := newTestGateway(t, oneProvider(KindGemini, srv.URL+"/v1beta", map[string]Model{"gemini-2.5-flash": {}}), nil)
	req := userRequest("p/gemini-2.5-flash", "hi")
	req.ResponseFormat = &ResponseFormat{Type: "json_schema", JSONSchema: json.RawMessage(`{"name":"x","schema":{"type":"object"}}`)}
	s, err := env.gw.ChatStream(context.Background(), req, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chunks := readAll(t, s)
	s.Close()
	r := srv.Requests()[0]
	if r.Path != "/v1beta/models/gemini-2.5-flash:streamGenerateContent" || r.RawQuery != "alt=sse" {
		t.Errorf("sent to %s?%s", r.Path, r.RawQuery)
	}
	assertJSONEqual(t, jsonPath(t, r.Body, "generationConfig"), []byte(`{"responseMimeType":"application/json","responseJsonSchema":{"type":"object"}}`))
	resp := assemble(chunks)
	if resp.Choices[0].Message.Text() != "Hello there!" || resp.Choices[0].FinishReason != FinishStop || resp.ID != "abcStream" {
		t.Errorf("assembled %+v", resp)
	}
	if resp.Usage.PromptTokens != 8 || resp.Usage.CompletionTokens != 3 {
		t.Errorf("usage %+v", resp.Usage)
	}
}

func TestGeminiToolStream(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "gemini/tool_stream.sse")))
	env := newTestGateway(t, oneProvider(KindGemini, srv.URL, map[string]Model{"g": {}}), nil)
	s, err := env.gw.ChatStream(context.Background(), userRequest("p/g", "weather?"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Collect(s)
	if err != nil {
		t.Fatal(err)
	}
	tc := resp.Choices[0].Message.ToolCalls
	if len(tc) != 1 || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != `{"city":"Paris"}` || resp.Choices[0].FinishReason != FinishToolCalls {
		t.Errorf("resp %+v", resp)
	}
}

// TestProviderErrors: each provider's error bodies map onto the taxonomy,
// with the provider's delay.
func TestProviderErrors(t *testing.T) {
	cases := []struct {
		name       string
		kind       string
		status     int
		body       string
		headers    []string
		class      string
		retryAfter time.Duration
		code       string
	}{
		{"openai 429", KindOpenAI, 429, "openai/error_rate_limit.json", []string{"Retry-After-Ms", "300"}, ClassRateLimit, 300 * time.Millisecond, "rate_limit_exceeded"},
		{"openai context", KindOpenAI, 400, "openai/error_context.json", nil, ClassContext, 0, "context_length_exceeded"},
		{"openai auth", KindOpenAI, 401, "openai/error_auth.json", nil, ClassAuth, 0, "invalid_api_key"},
		{"openai 500", KindOpenAI, 500, "openai/error_server.json", nil, ClassServer, 0, "server_error"},
		{"openai 503", KindOpenAI, 503, "openai/error_server.json", []string{"Retry-After", "7"}, ClassOverloaded, 7 * time.Second, "server_error"},
		{"vllm context", KindOpenAI, 400, "openai/error_vllm_context.json", nil, ClassContext, 0, "400"},
		{"ollama not found", KindOpenAI, 404, "openai/error_ollama.json", nil, ClassModelUnavailable, 0, ""},
		{"ollama openai not found", KindOpenAI, 404, "openai/error_ollama_model_not_found.json", nil, ClassModelUnavailable, 0, "not_found_error"},
		{"openai model_not_found", KindOpenAI, 404, "openai/error_model_not_found.json", nil, ClassModelUnavailable, 0, "model_not_found"},
		{"model_not_found as 400", KindOpenAI, 400, "openai/error_model_not_found.json", nil, ClassModelUnavailable, 0, "model_not_found"},
		{"anthropic 529", KindAnthropic, 529, "anthropic/error_overloaded.json", nil, ClassOverloaded, 0, "overloaded_error"},
		{"anthropic 429", KindAnthropic, 429, "anthropic/error_rate_limit.json", []string{"Retry-After", "12"}, ClassRateLimit, 12 * time.Second, "rate_limit_error"},
		{"anthropic context", KindAnthropic, 400, "anthropic/error_context.json", nil, ClassContext, 0, "invalid_request_error"},
		{"anthropic auth", KindAnthropic, 401, "anthropic/error_auth.json", nil, ClassAuth, 0, "authentication_error"},
		{"anthropic bad request", KindAnthropic, 400, "anthropic/error_bad_request.json", nil, ClassBadRequest, 0, "invalid_request_error"},
		{"gemini 429", KindGemini, 429, "gemini/error_rate_limit.json", nil, ClassRateLimit, 37 * time.Second, "RESOURCE_EXHAUSTED"},
		{"gemini key", KindGemini, 400, "gemini/error_auth.json", nil, ClassAuth, 0, "INVALID_ARGUMENT"},
		{"gemini context", KindGemini, 400, "gemini/error_context.json", nil, ClassContext, 0, "INVALID_ARGUMENT"},
		{"gemini 503", KindGemini, 503, "gemini/error_overloaded.json", nil, ClassOverloaded, 0, "UNAVAILABLE"},
		{"gemini array", KindGemini, 429, "gemini/error_array.json", nil, ClassRateLimit, 0, "RESOURCE_EXHAUSTED"},
		{"html 502", KindOpenAI, 502, "", nil, ClassServer, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte("<html>Bad Gateway</html>")
			if tc.body != "" {
				body = llmtest.Fixture(t, tc.body)
			}
			srv := llmtest.NewProvider(t, llmtest.JSON(tc.status, body, tc.headers...))
			cfg := oneProvider(tc.kind, srv.URL, map[string]Model{"m": {}})
			cfg.Retry.MaxAttempts = 1
			env := newTestGateway(t, cfg, nil)
			_, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if e.Class != tc.class || e.Status != tc.status || e.RetryAfter != tc.retryAfter || e.Code != tc.code || e.Target != "p/m" {
				t.Errorf("got class=%s status=%d retry=%s code=%q target=%s; want %s %d %s %q", e.Class, e.Status, e.RetryAfter, e.Code, e.Target, tc.class, tc.status, tc.retryAfter, tc.code)
			}
			if ClassOf(err) != tc.class {
				t.Errorf("ClassOf = %s", ClassOf(err))
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error leaks the key: %v", err)
			}
			recs := env.recs.All()
			if len(recs) != 1 || recs[0].ErrorClass != tc.class || recs[0].StatusCode != int32(tc.status) || recs[0].Outcome == "ok" {
				t.Errorf("records %+v", recs)
			}
		})
	}
}

func TestAnthropicStreamErrorEventFallsBack(t *testing.T) {
	bad := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "anthropic/stream_overloaded.sse")))
	good := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "anthropic/message_stream.sse")))
	cfg := Config{
		Providers: map[string]Provider{
			"a": {Kind: KindAnthropic, BaseURL: bad.URL, APIKeyEnv: "KEY", Models: map[string]Model{"m": {}}},
			"b": {Kind: KindAnthropic, BaseURL: good.URL, APIKeyEnv: "KEY", Models: map[string]Model{"m": {}}},
		},
		Aliases: map[string]Alias{"claude": OrderedAlias("a/m", "b/m")},
	}
	env := newTestGateway(t, cfg, nil)
	s, err := env.gw.ChatStream(context.Background(), userRequest("claude", "hi"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Collect(s)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "b/m" || resp.Choices[0].Message.Text() != "Hello there!" {
		t.Errorf("resp %+v", resp)
	}
	recs := env.recs.All()
	if len(recs) != 2 || recs[0].ErrorClass != ClassOverloaded || recs[1].Outcome != "ok" {
		t.Errorf("records %+v", recs)
	}
}

func TestRequestTranslationRefusals(t *testing.T) {
	cases := []struct {
		kind string
		req  *ChatRequest
		want string
	}{
		{KindAnthropic, &ChatRequest{Messages: []Message{TextMessage("wizard", "x")}}, "unknown role"},
		{KindAnthropic, &ChatRequest{Messages: []Message{TextMessage("system", "only a system prompt")}}, "no user or assistant message"},
		{KindAnthropic, &ChatRequest{Messages: []Message{{Role: "assistant", ToolCalls: []ToolCall{{ID: "x", Function: FunctionCall{Name: "f", Arguments: "[1,2"}}}}}}, "not a JSON object"},
		{KindGemini, &ChatRequest{Messages: []Message{{Role: "tool", ToolCallID: "nowhere", Content: json.RawMessage(`"x"`)}}}, "answers no earlier tool call"},
		{KindGemini, &ChatRequest{Messages: []Message{{Role: "user", Content: json.RawMessage(`[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]`)}}}, "data: URLs"},
		{KindOpenAI, &ChatRequest{Messages: []Message{TextMessage("user", "x")}, ToolChoice: json.RawMessage(`"sometimes"`)}, ""},
		{KindAnthropic, &ChatRequest{Messages: []Message{TextMessage("user", "x")}, ToolChoice: json.RawMessage(`"sometimes"`)}, "tool_choice"},
	}
	for _, tc := range cases {
		srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
		env := newTestGateway(t, oneProvider(tc.kind, srv.URL, map[string]Model{"m": {}}), nil)
		tc.req.Model = "p/m"
		_, err := env.gw.Chat(context.Background(), tc.req, CallOptions{})
		if tc.want == "" {
			// OpenAI passes tool_choice through; the provider judges.
			if err != nil {
				t.Errorf("%s: %v", tc.kind, err)
			}
			continue
		}
		if ClassOf(err) != ClassBadRequest || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want bad_request with %q", tc.kind, err, tc.want)
		}
		if len(srv.Requests()) != 0 {
			t.Errorf("%s: a refused request was sent", tc.kind)
		}
	}
}

func TestImagesTranslate(t *testing.T) {
	content := json.RawMessage(`[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]`)
	req := &ChatRequest{Messages: []Message{{Role: "user", Content: content}}}
	tgt := &target{upstream: "m", maxOutput: 100, prov: &provider{}}
	b, err := anthropicAdapter{}.encodeRequest(tgt, req, false)
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, jsonPath(t, b, "messages"), []byte(`[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}]`))
	b, err = geminiAdapter{}.encodeRequest(tgt, req, false)
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, jsonPath(t, b, "contents"), []byte(`[{"role":"user","parts":[{"text":"what is this?"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}]}]`))
}

// assemble merges stream chunks the way a client would.
func assemble(chunks []*ChatChunk) *ChatResponse {
	out := &ChatResponse{}
	var text strings.Builder
	finish := ""
	for _, c := range chunks {
		out.ID = c.ID
		if c.Usage != nil {
			out.Usage = *c.Usage
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				text.WriteString(*ch.Delta.Content)
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	out.Choices = []Choice{{Message: TextMessage("assistant", text.String()), FinishReason: finish}}
	return out
}

func jsonPath(t *testing.T, body []byte, key string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}

func reflectEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestSamplingOptionsTranslate(t *testing.T) {
	seed, pen, no := int64(7), 0.5, false
	req := &ChatRequest{
		Messages:          []Message{TextMessage("user", "x")},
		Tools:             []Tool{{Type: "function", Function: FunctionDecl{Name: "f"}}},
		Seed:              &seed,
		PresencePenalty:   &pen,
		FrequencyPenalty:  &pen,
		ParallelToolCalls: &no,
	}
	tgt := &target{upstream: "m", maxOutput: 100, prov: &provider{}}
	b, err := geminiAdapter{}.encodeRequest(tgt, req, false)
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, jsonPath(t, b, "generationConfig"), []byte(`{"seed":7,"presencePenalty":0.5,"frequencyPenalty":0.5}`))
	b, err = anthropicAdapter{}.encodeRequest(tgt, req, false)
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, jsonPath(t, b, "tool_choice"), []byte(`{"type":"auto","disable_parallel_tool_use":true}`))
	b, err = openaiAdapter{}.encodeRequest(tgt, req, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"seed":7`) || !strings.Contains(string(b), `"parallel_tool_calls":false`) {
		t.Errorf("openai body %s", b)
	}
}
