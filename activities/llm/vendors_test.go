package llm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/gateflow/gateflow/activities/llm/llmtest"
)

// Wire fakes of the native adapters (Azure OpenAI, Bedrock Converse,
// Vertex AI, Cohere) and of the presets' quirks, built from each vendor's
// documented request, answer, stream and error shapes (testdata/<vendor>).

// providerCfg is a config with one provider "p".
func providerCfg(p Provider) Config {
	if p.APIKeyEnv == "" && p.Kind != KindBedrock && p.Kind != KindVertex {
		p.APIKeyEnv = "KEY"
	}
	return Config{Providers: map[string]Provider{"p": p}}
}

func mustChat(t *testing.T, env *testEnv, req *ChatRequest) *ChatResponse {
	t.Helper()
	resp, err := env.gw.Chat(context.Background(), req, CallOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func mustCollect(t *testing.T, env *testEnv, req *ChatRequest) *ChatResponse {
	t.Helper()
	s, err := env.gw.ChatStream(context.Background(), req, CallOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Collect(s)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func wantToolCall(t *testing.T, resp *ChatResponse, id, name, args string) {
	t.Helper()
	ch := resp.Choices[0]
	if ch.FinishReason != FinishToolCalls || len(ch.Message.ToolCalls) != 1 {
		t.Fatalf("choice %+v", ch)
	}
	tc := ch.Message.ToolCalls[0]
	if tc.ID != id || tc.Function.Name != name || tc.Function.Arguments != args {
		t.Errorf("tool call %+v", tc)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

// --- Azure OpenAI ---------------------------------------------------------

func TestAzureChat(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "azure/chat_response.json")))
	env := newTestGateway(t, providerCfg(Provider{Kind: KindAzure, BaseURL: srv.URL,
		Models: map[string]Model{"gpt4o-prod": {Catalogue: "openai/gpt-4o"}}}), nil)
	resp := mustChat(t, env, loadRequest(t, "unified/tool_conversation.json", "p/gpt4o-prod"))
	r := srv.Requests()[0]
	if r.Path != "/openai/deployments/gpt4o-prod/chat/completions" || r.RawQuery != "api-version="+DefaultAzureAPIVersion {
		t.Errorf("sent %s?%s", r.Path, r.RawQuery)
	}
	if r.Header.Get("Api-Key") != testKey || r.Header.Get("Authorization") != "" {
		t.Errorf("credential headers %v", r.Header)
	}
	var body map[string]any
	_ = json.Unmarshal(r.Body, &body)
	if body["model"] != "gpt4o-prod" || body["tool_choice"] != "auto" || body["max_tokens"] != 256.0 {
		t.Errorf("body %s", r.Body)
	}
	if resp.Choices[0].Message.Text() != "Bonjour ! Comment puis-je vous aider ?" || resp.Model != "p/gpt4o-prod" {
		t.Errorf("answer %+v", resp)
	}
	// The deployment's prices come from the catalogue entry it names.
	e, _ := mustCatalogue(t).Lookup("openai/gpt-4o")
	if want := RoundCost((24**e.InputPerMTok + 11**e.OutputPerMTok) / 1e6); !near(resp.Usage.CostUSD, want) || want == 0 {
		t.Errorf("cost %g, want %g", resp.Usage.CostUSD, want)
	}
}

func TestAzureV1API(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "azure/chat_response.json")))
	env := newTestGateway(t, providerCfg(Provider{Kind: KindAzure, BaseURL: srv.URL + "/", APIVersion: "v1",
		Models: map[string]Model{"gpt4o-prod": {}}}), nil)
	mustChat(t, env, userRequest("p/gpt4o-prod", "hi"))
	if r := srv.Requests()[0]; r.Path != "/openai/v1/chat/completions" || r.RawQuery != "" {
		t.Errorf("sent %s?%s", r.Path, r.RawQuery)
	}
}

func TestAzureToolStream(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "azure/chat_tool_stream.sse")))
	env := newTestGateway(t, providerCfg(Provider{Kind: KindAzure, BaseURL: srv.URL, Models: map[string]Model{"d": {}}}), nil)
	resp := mustCollect(t, env, userRequest("p/d", "weather?"))
	wantToolCall(t, resp, "call_az1", "get_weather", `{"city":"Paris"}`)
	if resp.Usage.PromptTokens != 82 || resp.Usage.CompletionTokens != 17 {
		t.Errorf("usage %+v", resp.Usage)
	}
	var sent map[string]any
	_ = json.Unmarshal(srv.Requests()[0].Body, &sent)
	if sent["stream"] != true || sent["stream_options"] == nil {
		t.Errorf("stream request %v", sent)
	}
}

// --- Bedrock Converse -----------------------------------------------------

// verifySigV4 re-signs a captured Bedrock request with the same time and
// credentials and compares: the signature covers method, path, headers
// and body as sent.
func verifySigV4(t *testing.T, srvURL string, r llmtest.Captured, region string) {
	t.Helper()
	auth := r.Header.Get("Authorization")
	wantPrefix := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"
	if !strings.HasPrefix(auth, wantPrefix) || !strings.Contains(auth, "/"+region+"/bedrock/aws4_request") {
		t.Fatalf("Authorization %q", auth)
	}
	signedAt, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("X-Amz-Date: %v", err)
	}
	u, _ := url.Parse(srvURL + r.EscapedPath)
	req, _ := http.NewRequest(r.Method, u.String(), bytes.NewReader(r.Body))
	req.ContentLength = int64(len(r.Body))
	_, signed, _ := strings.Cut(auth, "SignedHeaders=")
	signed, _, _ = strings.Cut(signed, ",")
	for _, h := range strings.Split(signed, ";") {
		if h != "host" && h != "content-length" {
			req.Header.Set(h, r.Header.Get(h))
		}
	}
	req.Header.Del("Authorization")
	sum := sha256.Sum256(r.Body)
	if err := v4.NewSigner().SignHTTP(context.Background(), testAWSCreds, req, hex.EncodeToString(sum[:]), "bedrock", region, signedAt); err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("Authorization"); got != auth {
		t.Errorf("signature does not verify\n sent: %s\nagain: %s", auth, got)
	}
}

func bedrockProvider(url string, models map[string]Model) Config {
	return providerCfg(Provider{Kind: KindBedrock, Region: "eu-west-3", BaseURL: url, Models: models})
}

func TestBedrockConverse(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "bedrock/converse_response.json")))
	env := newTestGateway(t, bedrockProvider(srv.URL, map[string]Model{
		"claude": {Name: "anthropic.claude-3-haiku-20240307-v1:0", InputPerMTok: 1, CachedInputPerMTok: 0.1, OutputPerMTok: 5},
	}), nil)
	resp := mustChat(t, env, loadRequest(t, "unified/tool_conversation.json", "p/claude"))
	r := srv.Requests()[0]
	if r.EscapedPath != "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse" {
		t.Errorf("path %s", r.EscapedPath)
	}
	assertJSONEqual(t, r.Body, llmtest.Fixture(t, "bedrock/request_tools.json"))
	verifySigV4(t, srv.URL, r, "eu-west-3")
	if resp.Choices[0].Message.Text() != "Hello! How can I help you today?" || resp.Choices[0].FinishReason != FinishStop {
		t.Errorf("answer %+v", resp.Choices[0])
	}
	// inputTokens exclude the cache reads, which are billed at their price.
	u := resp.Usage
	if u.PromptTokens != 20 || u.CompletionTokens != 10 || u.cachedTokens() != 8 {
		t.Errorf("usage %+v", u)
	}
	if want := RoundCost((12*1 + 8*0.1 + 10*5) / 1e6); !near(u.CostUSD, want) {
		t.Errorf("cost %g, want %g", u.CostUSD, want)
	}
}

func TestBedrockToolUse(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "bedrock/converse_tool_response.json")))
	env := newTestGateway(t, bedrockProvider(srv.URL, map[string]Model{"m": {}}), nil)
	resp := mustChat(t, env, userRequest("p/m", "weather in Paris?"))
	wantToolCall(t, resp, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "get_weather", `{"city":"Paris"}`)
	if resp.Choices[0].Message.Text() != "I'll look up the weather in Paris." {
		t.Errorf("text %q", resp.Choices[0].Message.Text())
	}
}

// eventStream encodes a fixture's events as an AWS event stream.
func eventStream(t testing.TB, fixture string) []byte {
	t.Helper()
	var events []struct {
		Event     string          `json:"event"`
		Exception string          `json:"exception"`
		Payload   json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(llmtest.Fixture(t, fixture), &events); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := eventstream.NewEncoder()
	for _, e := range events {
		msg := eventstream.Message{Payload: e.Payload}
		msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		if e.Exception != "" {
			msg.Headers.Set(":message-type", eventstream.StringValue("exception"))
			msg.Headers.Set(":exception-type", eventstream.StringValue(e.Exception))
		} else {
			msg.Headers.Set(":message-type", eventstream.StringValue("event"))
			msg.Headers.Set(":event-type", eventstream.StringValue(e.Event))
		}
		if err := enc.Encode(&buf, msg); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// eventStreamResponder answers with an event stream, in two writes (a
// message split across reads).
func eventStreamResponder(body []byte) llmtest.Responder {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.WriteHeader(200)
		half := len(body) / 2
		_, _ = w.Write(body[:half])
		w.(http.Flusher).Flush()
		_, _ = w.Write(body[half:])
	}
}

func TestBedrockConverseStream(t *testing.T) {
	srv := llmtest.NewProvider(t, eventStreamResponder(eventStream(t, "bedrock/stream.events.json")))
	env := newTestGateway(t, bedrockProvider(srv.URL, map[string]Model{"m": {Name: "amazon.nova-lite-v1:0", InputPerMTok: 1, OutputPerMTok: 2}}), nil)
	s, err := env.gw.ChatStream(context.Background(), userRequest("p/m", "hi"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chunks := readAll(t, s)
	s.Close()
	r := srv.Requests()[0]
	if r.EscapedPath != "/model/amazon.nova-lite-v1%3A0/converse-stream" || r.Header.Get("Accept") != "application/vnd.amazon.eventstream" {
		t.Errorf("sent %s Accept %q", r.EscapedPath, r.Header.Get("Accept"))
	}
	verifySigV4(t, srv.URL, r, "eu-west-3")
	var text strings.Builder
	for _, c := range chunks {
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				text.WriteString(*ch.Delta.Content)
			}
		}
	}
	last := chunks[len(chunks)-1]
	if text.String() != "Hello there!" || last.Usage == nil || last.Usage.PromptTokens != 9 || last.Usage.CompletionTokens != 3 {
		t.Errorf("text %q, last %+v", text.String(), last)
	}
	if want := RoundCost((9*1.0 + 3*2.0) / 1e6); !near(last.Usage.CostUSD, want) {
		t.Errorf("cost %g", last.Usage.CostUSD)
	}
	if fin := chunks[len(chunks)-2]; fin.Choices[0].FinishReason == nil || *fin.Choices[0].FinishReason != FinishStop {
		t.Errorf("finish chunk %+v", fin)
	}
}

func TestBedrockToolStream(t *testing.T) {
	srv := llmtest.NewProvider(t, eventStreamResponder(eventStream(t, "bedrock/tool_stream.events.json")))
	env := newTestGateway(t, bedrockProvider(srv.URL, map[string]Model{"m": {}}), nil)
	resp := mustCollect(t, env, userRequest("p/m", "weather?"))
	wantToolCall(t, resp, "tooluse_3Yq2NP8dTp2_4Qw0y8c7Ig", "get_weather", `{"city":"Paris"}`)
	if resp.Choices[0].Message.Text() != "Checking." || resp.Usage.PromptTokens != 389 {
		t.Errorf("answer %+v", resp)
	}
}

// An exception event before any output is a failed attempt: the next
// target answers.
func TestBedrockStreamExceptionFallsBack(t *testing.T) {
	a := llmtest.NewProvider(t, eventStreamResponder(eventStream(t, "bedrock/stream_throttled.events.json")))
	b := llmtest.NewProvider(t, eventStreamResponder(eventStream(t, "bedrock/stream.events.json")))
	cfg := Config{
		Providers: map[string]Provider{
			"a": {Kind: KindBedrock, Region: "us-east-1", BaseURL: a.URL, Models: map[string]Model{"m": {}}},
			"b": {Kind: KindBedrock, Region: "us-west-2", BaseURL: b.URL, Models: map[string]Model{"m": {}}},
		},
		Aliases: map[string]Alias{"x": OrderedAlias("a/m", "b/m")},
	}
	env := newTestGateway(t, cfg, nil)
	resp := mustCollect(t, env, userRequest("x", "hi"))
	if resp.Model != "b/m" {
		t.Errorf("answered by %s", resp.Model)
	}
	if recs := env.recs.All(); len(recs) != 2 || recs[0].ErrorClass != ClassRateLimit {
		t.Errorf("records %+v", recs)
	}
}

func TestBedrockErrors(t *testing.T) {
	cases := []struct {
		status  int
		errType string
		fixture string
		class   string
	}{
		{429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", "bedrock/error_throttling.json", ClassRateLimit},
		{400, "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/", "bedrock/error_validation_context.json", ClassContext},
		{403, "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/", "bedrock/error_access_denied.json", ClassAuth},
		{403, "UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/", "bedrock/error_unrecognized_client.json", ClassAuth},
		{404, "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazon.bedrock/", "bedrock/error_access_denied.json", ClassModelUnavailable},
		{408, "ModelTimeoutException:http://internal.amazon.com/coral/com.amazon.bedrock/", "bedrock/error_throttling.json", ClassTimeout},
		{503, "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/", "bedrock/error_throttling.json", ClassOverloaded},
		{424, "ModelErrorException:http://internal.amazon.com/coral/com.amazon.bedrock/", "bedrock/error_throttling.json", ClassServer},
		{400, "ServiceQuotaExceededException:http://internal.amazon.com/coral/com.amazon.bedrock/", "bedrock/error_throttling.json", ClassRateLimit},
	}
	for _, tc := range cases {
		t.Run(tc.errType[:strings.IndexByte(tc.errType, ':')], func(t *testing.T) {
			srv := llmtest.NewProvider(t, llmtest.JSON(tc.status, llmtest.Fixture(t, tc.fixture), "X-Amzn-Errortype", tc.errType))
			cfg := bedrockProvider(srv.URL, map[string]Model{"m": {}})
			cfg.Retry = RetryPolicy{MaxAttempts: 1}
			env := newTestGateway(t, cfg, nil)
			_, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{})
			if ClassOf(err) != tc.class {
				t.Errorf("class %q, want %q: %v", ClassOf(err), tc.class, err)
			}
		})
	}
}

// A Bedrock API key replaces SigV4.
func TestBedrockAPIKey(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "bedrock/converse_response.json")))
	env := newTestGateway(t, providerCfg(Provider{Kind: KindBedrock, Region: "us-east-1", BaseURL: srv.URL, APIKeyEnv: "KEY",
		Models: map[string]Model{"m": {}}}), nil)
	mustChat(t, env, userRequest("p/m", "hi"))
	if h := srv.Requests()[0].Header; h.Get("Authorization") != "Bearer "+testKey || h.Get("X-Amz-Date") != "" {
		t.Errorf("headers %v", h)
	}
}

// --- Vertex AI ------------------------------------------------------------

func vertexProvider(url string) Config {
	return providerCfg(Provider{Kind: KindVertex, Project: "demo-project", Location: "us-central1", BaseURL: url + "/v1",
		Models: map[string]Model{"gemini-2.5-flash": {}, "text-embedding-005": {}, "gemini-embedding-001": {}}})
}

func TestVertexGenerate(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "vertex/generate_response.json")))
	env := newTestGateway(t, vertexProvider(srv.URL), nil)
	resp := mustChat(t, env, loadRequest(t, "unified/tool_conversation.json", "p/gemini-2.5-flash"))
	r := srv.Requests()[0]
	if r.Path != "/v1/projects/demo-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent" {
		t.Errorf("path %s", r.Path)
	}
	if r.Header.Get("Authorization") != "Bearer "+testGoogleToken || r.Header.Get("X-Goog-Api-Key") != "" {
		t.Errorf("credential headers %v", r.Header)
	}
	// The same body as the Gemini API.
	assertJSONEqual(t, r.Body, llmtest.Fixture(t, "gemini/request_tools.json"))
	if resp.Choices[0].Message.Text() != "Hello! How can I help you today?" || resp.ID != "vx-resp-ABC123" || resp.Usage.TotalTokens != 22 {
		t.Errorf("answer %+v", resp)
	}
	// The catalogue knows vertex/gemini-2.5-flash.
	if resp.Usage.CostUSD == 0 {
		t.Error("no cost from the catalogue")
	}
}

func TestVertexToolStream(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "vertex/tool_stream.sse")))
	env := newTestGateway(t, vertexProvider(srv.URL), nil)
	resp := mustCollect(t, env, userRequest("p/gemini-2.5-flash", "weather?"))
	r := srv.Requests()[0]
	if !strings.HasSuffix(r.Path, "/gemini-2.5-flash:streamGenerateContent") || r.RawQuery != "alt=sse" {
		t.Errorf("sent %s?%s", r.Path, r.RawQuery)
	}
	tc := resp.Choices[0].Message.ToolCalls
	if len(tc) != 1 || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != `{"city":"Paris"}` || resp.Usage.PromptTokens != 41 {
		t.Errorf("answer %+v", resp)
	}
}

func TestVertexErrors(t *testing.T) {
	for fixture, want := range map[string]struct {
		status int
		class  string
	}{
		"vertex/error_permission.json": {403, ClassAuth},
		"vertex/error_quota.json":      {429, ClassRateLimit},
		"vertex/error_not_found.json":  {404, ClassModelUnavailable},
	} {
		srv := llmtest.NewProvider(t, llmtest.JSON(want.status, llmtest.Fixture(t, fixture)))
		cfg := vertexProvider(srv.URL)
		cfg.Retry = RetryPolicy{MaxAttempts: 1}
		env := newTestGateway(t, cfg, nil)
		_, err := env.gw.Chat(context.Background(), userRequest("p/gemini-2.5-flash", "hi"), CallOptions{})
		if ClassOf(err) != want.class {
			t.Errorf("%s: class %q, want %q: %v", fixture, ClassOf(err), want.class, err)
		}
	}
}

func TestVertexBaseURL(t *testing.T) {
	if got := vertexBaseURL("global"); got != "https://aiplatform.googleapis.com/v1" {
		t.Error(got)
	}
	if got := vertexBaseURL("europe-west4"); got != "https://europe-west4-aiplatform.googleapis.com/v1" {
		t.Error(got)
	}
	gw, err := NewGateway(providerCfg(Provider{Kind: KindVertex, Project: "p1", Models: map[string]Model{"gemini-2.5-pro": {}}}), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tg := gw.routes.Load().targets["p/gemini-2.5-pro"]
	if got := tg.prov.adapter.endpoint(tg, false); got != "https://aiplatform.googleapis.com/v1/projects/p1/locations/global/publishers/google/models/gemini-2.5-pro:generateContent" {
		t.Errorf("endpoint %s", got)
	}
}

// --- Cohere ---------------------------------------------------------------

func TestCohereChat(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "cohere/chat_response.json")))
	env := newTestGateway(t, providerCfg(Provider{Kind: KindCohere, BaseURL: srv.URL, Models: map[string]Model{"command-a-03-2025": {}}}), nil)
	req := loadRequest(t, "unified/tool_conversation.json", "p/command-a-03-2025")
	req.User = "" // Cohere has no end-user field
	resp := mustChat(t, env, req)
	r := srv.Requests()[0]
	if r.Path != "/v2/chat" || r.Header.Get("Authorization") != "Bearer "+testKey {
		t.Errorf("sent %s %v", r.Path, r.Header)
	}
	assertJSONEqual(t, r.Body, llmtest.Fixture(t, "cohere/request_tools.json"))
	// Usage is the billed units.
	if resp.Choices[0].Message.Text() != "LLMs are neural networks trained on large amounts of text." || resp.Usage.PromptTokens != 5 || resp.Usage.CompletionTokens != 12 {
		t.Errorf("answer %+v", resp)
	}
	e, _ := mustCatalogue(t).Lookup("cohere/command-a-03-2025")
	if want := RoundCost((5**e.InputPerMTok + 12**e.OutputPerMTok) / 1e6); !near(resp.Usage.CostUSD, want) {
		t.Errorf("cost %g, want %g", resp.Usage.CostUSD, want)
	}
}

func TestCohereToolCalls(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "cohere/chat_tool_response.json")))
	env := newTestGateway(t, providerCfg(Provider{Kind: KindCohere, BaseURL: srv.URL, Models: map[string]Model{"m": {}}}), nil)
	req := userRequest("p/m", "weather in Paris?")
	req.Tools = []Tool{{Type: "function", Function: FunctionDecl{Name: "get_weather", Parameters: json.RawMessage(`{"type":"object"}`)}},
		{Type: "function", Function: FunctionDecl{Name: "get_time"}}}
	req.ToolChoice = json.RawMessage(`{"type":"function","function":{"name":"get_weather"}}`)
	resp := mustChat(t, env, req)
	wantToolCall(t, resp, "get_weather_1byjy32y4hvq", "get_weather", `{"city":"Paris"}`)
	// A named tool choice: only that tool, and a call is required.
	var sent cohereRequest
	_ = json.Unmarshal(srv.Requests()[0].Body, &sent)
	if sent.ToolChoice != "REQUIRED" || len(sent.Tools) != 1 || sent.Tools[0].Function.Name != "get_weather" {
		t.Errorf("tool choice %q tools %+v", sent.ToolChoice, sent.Tools)
	}
}

func TestCohereStreams(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "cohere/chat_stream.sse")))
	env := newTestGateway(t, providerCfg(Provider{Kind: KindCohere, BaseURL: srv.URL, Models: map[string]Model{"m": {}}}), nil)
	resp := mustCollect(t, env, userRequest("p/m", "hi"))
	if resp.Choices[0].Message.Text() != "Hello there!" || resp.Choices[0].FinishReason != FinishStop || resp.Usage.PromptTokens != 9 {
		t.Errorf("answer %+v", resp)
	}
	if !strings.Contains(string(srv.Requests()[0].Body), `"stream":true`) {
		t.Errorf("body %s", srv.Requests()[0].Body)
	}
	tools := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "cohere/chat_tool_stream.sse")))
	env = newTestGateway(t, providerCfg(Provider{Kind: KindCohere, BaseURL: tools.URL, Models: map[string]Model{"m": {}}}), nil)
	resp = mustCollect(t, env, userRequest("p/m", "weather?"))
	wantToolCall(t, resp, "get_weather_nsz5zm3w56q3", "get_weather", `{"city":"Paris"}`)
}

func TestCohereErrors(t *testing.T) {
	cases := []struct {
		status  int
		fixture string
		class   string
	}{
		{429, "cohere/error_rate_limit.json", ClassRateLimit},
		{400, "cohere/error_too_many_tokens.json", ClassContext},
		{498, "cohere/error_invalid_token.json", ClassAuth},
		{401, "cohere/error_invalid_token.json", ClassAuth},
		{500, "cohere/error_rate_limit.json", ClassServer},
	}
	for _, tc := range cases {
		srv := llmtest.NewProvider(t, llmtest.JSON(tc.status, llmtest.Fixture(t, tc.fixture)))
		cfg := providerCfg(Provider{Kind: KindCohere, BaseURL: srv.URL, Models: map[string]Model{"m": {}}})
		cfg.Retry = RetryPolicy{MaxAttempts: 1}
		env := newTestGateway(t, cfg, nil)
		_, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{})
		if ClassOf(err) != tc.class {
			t.Errorf("%d %s: class %q, want %q: %v", tc.status, tc.fixture, ClassOf(err), tc.class, err)
		}
	}
}

// --- Presets --------------------------------------------------------------

func TestPresets(t *testing.T) {
	hosted := 0
	for _, p := range Presets() {
		u, err := url.Parse(p.BaseURL)
		if err != nil || u.Host == "" || p.Docs == "" || p.Vendor == "" {
			t.Errorf("preset %s: base %q docs %q", p.Kind, p.BaseURL, p.Docs)
		}
		local := u.Hostname() == "127.0.0.1"
		if !local {
			hosted++
			if u.Scheme != "https" || p.KeyEnv == "" {
				t.Errorf("hosted preset %s: %s, key env %q", p.Kind, p.BaseURL, p.KeyEnv)
			}
		}
		if _, native := nativeKinds[p.Kind]; native {
			t.Errorf("preset %s shadows a native kind", p.Kind)
		}
		for _, d := range p.Drop {
			if !droppableParams[d] {
				t.Errorf("preset %s drops unknown %q", p.Kind, d)
			}
		}
	}
	if hosted < 15 {
		t.Errorf("%d hosted OpenAI-compatible presets, want at least 15", hosted)
	}
	// Three lines of configuration: the preset brings URL and key.
	cfg := providerCfg(Provider{Kind: "groq", Models: map[string]Model{"llama-3.3-70b-versatile": {}}})
	cfg.Providers["p"] = Provider{Kind: "groq", Models: map[string]Model{"llama-3.3-70b-versatile": {}}}
	gw, err := NewGateway(cfg, Deps{LookupEnv: func(k string) (string, bool) { return "gsk_x", k == "GROQ_API_KEY" }})
	if err != nil {
		t.Fatal(err)
	}
	tg := gw.routes.Load().targets["p/llama-3.3-70b-versatile"]
	if tg.prov.baseURL != "https://api.groq.com/openai/v1" || tg.model.InputPerMTok == 0 || tg.model.ContextTokens == 0 {
		t.Errorf("groq target %+v %+v", tg.prov, tg.model)
	}
	req, _ := http.NewRequest("POST", tg.prov.adapter.endpoint(tg, false), nil)
	if _, err := tg.prov.auth.authorize(context.Background(), req, nil); err != nil || req.Header.Get("Authorization") != "Bearer gsk_x" {
		t.Errorf("auth %v %v", req.Header, err)
	}
	if req.URL.String() != "https://api.groq.com/openai/v1/chat/completions" {
		t.Errorf("endpoint %s", req.URL)
	}
}

func TestPresetQuirks(t *testing.T) {
	seed := int64(7)
	pen := 0.5
	maxc := 300
	yes := true
	base := &ChatRequest{
		Messages:            []Message{{Role: "user", Name: "alice", Content: textJSON("hi")}},
		Seed:                &seed,
		PresencePenalty:     &pen,
		FrequencyPenalty:    &pen,
		MaxCompletionTokens: &maxc,
		ParallelToolCalls:   &yes,
		User:                "u1",
		Tools:               []Tool{{Type: "function", Function: FunctionDecl{Name: "f"}}},
		ToolChoice:          json.RawMessage(`"required"`),
	}
	cases := []struct {
		kind    string
		drop    []string
		stream  bool
		want    map[string]any // field -> value (nil: absent)
		msgName any
	}{
		{kind: "openai", want: map[string]any{"seed": 7.0, "max_completion_tokens": 300.0, "max_tokens": nil, "user": "u1", "tool_choice": "required"}, msgName: "alice"},
		{kind: "groq", want: map[string]any{"seed": 7.0, "max_completion_tokens": 300.0}, msgName: nil},
		{kind: "mistral", stream: true, want: map[string]any{"seed": nil, "random_seed": 7.0, "max_tokens": 300.0, "max_completion_tokens": nil,
			"tool_choice": "any", "stream_options": nil, "user": nil}, msgName: "alice"},
		{kind: "cerebras", want: map[string]any{"presence_penalty": nil, "frequency_penalty": nil, "parallel_tool_calls": nil, "seed": 7.0}},
		{kind: "deepseek", stream: true, want: map[string]any{"max_tokens": 300.0, "stream_options": map[string]any{"include_usage": true}}},
		{kind: "together", drop: []string{"seed", "user"}, want: map[string]any{"seed": nil, "user": nil, "presence_penalty": 0.5}},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			cfg := providerCfg(Provider{Kind: tc.kind, BaseURL: "http://vendor.invalid/v1", DropParams: tc.drop, Models: map[string]Model{"m": {}}})
			gw, err := NewGateway(cfg, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			tg := gw.routes.Load().targets["p/m"]
			b, err := tg.prov.adapter.encodeRequest(tg, base, tc.stream)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			_ = json.Unmarshal(b, &got)
			for k, want := range tc.want {
				v, ok := got[k]
				if want == nil && ok {
					t.Errorf("%s sent: %v", k, v)
				}
				if want != nil && !reflectEqual(v, want) {
					t.Errorf("%s = %v, want %v", k, v, want)
				}
			}
			msg := got["messages"].([]any)[0].(map[string]any)
			if tc.msgName != nil || tc.kind == "groq" {
				if !reflectEqual(msg["name"], tc.msgName) {
					t.Errorf("messages[0].name = %v", msg["name"])
				}
			}
		})
	}
	// The caller's request is not modified.
	if base.Seed == nil || base.Messages[0].Name != "alice" || string(base.ToolChoice) != `"required"` {
		t.Error("request modified")
	}
}

// --- Embeddings -----------------------------------------------------------

func embedRequest(model string, input string) *EmbeddingRequest {
	return &EmbeddingRequest{Model: model, Input: json.RawMessage(input)}
}

func TestEmbeddingsByProvider(t *testing.T) {
	cases := []struct {
		name     string
		provider func(url string) Provider
		model    string
		fixture  string
		input    string
		calls    int
		path     string
		tokens   int64
		check    func(t *testing.T, body []byte)
	}{
		{name: "openai", fixture: "openai/embeddings_response.json", model: "text-embedding-3-small", input: `["a","b"]`, calls: 1,
			path: "/v1/embeddings", tokens: 8,
			provider: func(u string) Provider { return Provider{Kind: KindOpenAI, BaseURL: u + "/v1"} },
			check: func(t *testing.T, body []byte) {
				assertJSONEqual(t, body, []byte(`{"model":"text-embedding-3-small","input":["a","b"],"encoding_format":"float","dimensions":3}`))
			}},
		{name: "azure", fixture: "azure/embeddings_response.json", model: "emb", input: `["a","b"]`, calls: 1,
			path: "/openai/deployments/emb/embeddings", tokens: 8,
			provider: func(u string) Provider { return Provider{Kind: KindAzure, BaseURL: u} }},
		{name: "cohere", fixture: "cohere/embed_response.json", model: "embed-v4.0", input: `["hello","goodbye"]`, calls: 1,
			path: "/v2/embed", tokens: 2,
			provider: func(u string) Provider { return Provider{Kind: KindCohere, BaseURL: u} },
			check: func(t *testing.T, body []byte) {
				assertJSONEqual(t, body, []byte(`{"model":"embed-v4.0","texts":["hello","goodbye"],"input_type":"search_document","embedding_types":["float"],"output_dimension":3}`))
			}},
		{name: "gemini", fixture: "gemini/batch_embed_response.json", model: "gemini-embedding-001", input: `["ab","cd"]`, calls: 1,
			path: "/v1beta/models/gemini-embedding-001:batchEmbedContents", tokens: 2, // estimated: no usage in the answer
			provider: func(u string) Provider { return Provider{Kind: KindGemini, BaseURL: u + "/v1beta"} }},
		{name: "vertex batch", fixture: "vertex/predict_embeddings.json", model: "text-embedding-005", input: `["a","b"]`, calls: 1,
			path: "/v1/projects/demo-project/locations/us-central1/publishers/google/models/text-embedding-005:predict", tokens: 8,
			provider: func(u string) Provider {
				return Provider{Kind: KindVertex, Project: "demo-project", Location: "us-central1", BaseURL: u + "/v1"}
			}},
		{name: "bedrock titan", fixture: "bedrock/titan_embedding.json", model: "amazon.titan-embed-text-v2:0", input: `["a","b"]`, calls: 2,
			path: "/model/amazon.titan-embed-text-v2:0/invoke", tokens: 8,
			provider: func(u string) Provider { return Provider{Kind: KindBedrock, Region: "us-east-1", BaseURL: u} },
			check: func(t *testing.T, body []byte) {
				assertJSONEqual(t, body, []byte(`{"inputText":"a","dimensions":3}`))
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, tc.fixture)))
			p := tc.provider(srv.URL)
			p.Models = map[string]Model{tc.model: {InputPerMTok: 0.5}}
			env := newTestGateway(t, providerCfg(p), nil)
			dims := 3
			req := embedRequest("p/"+tc.model, tc.input)
			req.Dimensions = &dims
			resp, err := env.gw.Embed(context.Background(), req, CallOptions{Tenant: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			reqs := srv.Requests()
			if len(reqs) != tc.calls || reqs[0].Path != tc.path {
				t.Fatalf("%d requests, path %s", len(reqs), reqs[0].Path)
			}
			if tc.check != nil {
				tc.check(t, reqs[0].Body)
			}
			if resp.Object != "list" || resp.Model != "p/"+tc.model || len(resp.Data) != 2 {
				t.Fatalf("answer %+v", resp)
			}
			for i, d := range resp.Data {
				if d.Index != i || d.Object != "embedding" || len(d.Embedding) != 3 {
					t.Errorf("data[%d] %+v", i, d)
				}
			}
			if resp.Usage.PromptTokens != tc.tokens || !near(resp.Usage.CostUSD, RoundCost(float64(tc.tokens)*0.5/1e6)) {
				t.Errorf("usage %+v", resp.Usage)
			}
			recs := env.recs.All()
			if len(recs) != 1 || recs[0].TokensIn != tc.tokens || recs[0].Labels["op"] != "embeddings" || recs[0].Cache != CacheMiss {
				t.Errorf("records %+v", recs)
			}
		})
	}
}

func TestEmbeddingsOrderAndErrors(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/embeddings_response.json")))
	env := newTestGateway(t, providerCfg(Provider{Kind: KindOpenAI, BaseURL: srv.URL, Models: map[string]Model{"e": {}}}), nil)
	resp, err := env.gw.Embed(context.Background(), embedRequest("p/e", `["first","second"]`), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The provider answered index 1 first.
	if resp.Data[0].Embedding[0] != float32(0.0023064255) || resp.Data[1].Embedding[0] != 0.5 {
		t.Errorf("order %+v", resp.Data)
	}
	for _, bad := range []string{``, `[]`, `[""]`, `{"x":1}`, `[[]]`} {
		if _, err := env.gw.Embed(context.Background(), embedRequest("p/e", bad), CallOptions{}); ClassOf(err) != ClassBadRequest {
			t.Errorf("input %q: %v", bad, err)
		}
	}
	if _, err := env.gw.Embed(context.Background(), embedRequest("nope", `"x"`), CallOptions{}); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("unknown model: %v", err)
	}
	// Token ids go only to OpenAI-compatible providers.
	if _, err := env.gw.Embed(context.Background(), embedRequest("p/e", `[[1,2],[3]]`), CallOptions{}); err != nil {
		t.Errorf("token ids: %v", err)
	}
	co := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "cohere/embed_response.json")))
	env = newTestGateway(t, providerCfg(Provider{Kind: KindCohere, BaseURL: co.URL, Models: map[string]Model{"e": {}}}), nil)
	if _, err := env.gw.Embed(context.Background(), embedRequest("p/e", `[[1,2]]`), CallOptions{}); ClassOf(err) != ClassBadRequest {
		t.Errorf("token ids at cohere: %v", err)
	}
}

// A provider without embeddings (a chat-only vendor) is that target's
// problem: the alias falls back to one that has them.
func TestEmbeddingsFallBackFromChatOnlyProvider(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/embeddings_response.json")))
	cfg := Config{
		Providers: map[string]Provider{
			"g": {Kind: "groq", BaseURL: "http://127.0.0.1:1", APIKeyEnv: "KEY", Models: map[string]Model{"e": {}}},
			"o": {Kind: KindOpenAI, BaseURL: srv.URL, APIKeyEnv: "KEY", Models: map[string]Model{"e": {}}},
		},
		Aliases: map[string]Alias{"emb": OrderedAlias("g/e", "o/e")},
	}
	env := newTestGateway(t, cfg, nil)
	resp, err := env.gw.Embed(context.Background(), embedRequest("emb", `["a","b"]`), CallOptions{})
	if err != nil || resp.Model != "o/e" {
		t.Fatalf("%+v %v", resp, err)
	}
	if recs := env.recs.All(); len(recs) != 2 || recs[0].ErrorClass != ClassModelUnavailable || recs[0].Outcome != "rejected" {
		t.Errorf("records %+v", recs)
	}
}

// Native kinds read their vendor's conventional variable when they talk
// to the vendor's own endpoint, and no key through a base_url of one's own.
func TestNativeKeyDefaults(t *testing.T) {
	env := map[string]string{"ANTHROPIC_API_KEY": "a-key", "GEMINI_API_KEY": "g-key", "COHERE_API_KEY": "c-key", "AZURE_OPENAI_API_KEY": "z-key"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct {
		p      Provider
		header string
		want   string
	}{
		{Provider{Kind: KindAnthropic}, "X-Api-Key", "a-key"},
		{Provider{Kind: KindAnthropic, BaseURL: "http://proxy.internal"}, "X-Api-Key", ""},
		{Provider{Kind: KindGemini}, "X-Goog-Api-Key", "g-key"},
		{Provider{Kind: KindCohere}, "Authorization", "Bearer c-key"},
		{Provider{Kind: KindAzure, BaseURL: "https://r.openai.azure.com"}, "Api-Key", "z-key"},
	}
	for _, tc := range cases {
		tc.p.Models = map[string]Model{"m": {}}
		gw, err := NewGateway(Config{Providers: map[string]Provider{"p": tc.p}}, Deps{LookupEnv: lookup})
		if err != nil {
			t.Fatal(err)
		}
		tg := gw.routes.Load().targets["p/m"]
		req, _ := http.NewRequest("POST", "http://x", nil)
		if _, err := tg.prov.auth.authorize(context.Background(), req, nil); err != nil || req.Header.Get(tc.header) != tc.want {
			t.Errorf("%s %s: %s = %q (%v)", tc.p.Kind, tc.p.BaseURL, tc.header, req.Header.Get(tc.header), err)
		}
	}
}
