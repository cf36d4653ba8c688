package chatapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/ingress/chatapi"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
)

// stack is a provider, a gateway over it and the ingress serving the
// endpoint.
type stack struct {
	prov *llmtest.Provider
	gw   *llm.Gateway
	in   *gwtest.Ingress
	rec  *gwtest.Recorder // model records
}

func newStack(t *testing.T, respond func(int, http.ResponseWriter, *http.Request), mod func(*llm.Config), budget llm.BudgetChecker) *stack {
	t.Helper()
	prov := llmtest.NewProvider(t, respond)
	cfg := gwtest.Config(prov.URL)
	if mod != nil {
		mod(&cfg)
	}
	rec := &gwtest.Recorder{}
	gw := gwtest.Gateway(t, cfg, rec, budget)
	in := gwtest.NewIngress(t, gwtest.NewOrch(), chatapi.Routes(gw, chatapi.Options{}))
	return &stack{prov: prov, gw: gw, in: in, rec: rec}
}

func (s *stack) client(key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(s.in.URL+"/v1/"), option.WithAPIKey(gwtest.Token(key)), option.WithMaxRetries(0))
}

func TestOpenAISDKPlain(t *testing.T) {
	s := newStack(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")), nil, nil)
	c := s.client("submitter")
	resp, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "local/m1",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "Hello! How can I assist you today?" {
		t.Errorf("content %q", got)
	}
	if resp.Model != "local/m1" || resp.Usage.PromptTokens != 19 || resp.Usage.CompletionTokens != 10 || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("response %+v", resp)
	}

	reqs := s.prov.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d provider requests", len(reqs))
	}
	var sent map[string]any
	_ = json.Unmarshal(reqs[0].Body, &sent)
	if sent["model"] != "m1" || reqs[0].Path != "/chat/completions" || reqs[0].Header.Get("Authorization") != "Bearer "+gwtest.ProviderKey {
		t.Errorf("provider got %s %v %s", reqs[0].Path, sent["model"], reqs[0].Header.Get("Authorization"))
	}

	// One ingress record and one model record, tied by the request id,
	// both with the key's tenant.
	ing := s.in.Rec.Kind(calls.KindIngress)
	models := s.rec.Kind(calls.KindModel)
	if len(ing) != 1 || len(models) != 1 {
		t.Fatalf("%d ingress, %d model records", len(ing), len(models))
	}
	m := models[0]
	rid := ing[0].Labels["request_id"]
	if m.Tenant != "acme" || m.KeyID != "a00000000001" || m.Labels["request_id"] != rid || rid == "" ||
		reqs[0].Header.Get("X-Client-Request-Id") != rid {
		t.Errorf("model record %+v, ingress request id %q, provider header %q", m, rid, reqs[0].Header.Get("X-Client-Request-Id"))
	}
	if m.TokensIn != 19 || m.TokensOut != 10 || m.CostUSD <= 0 || m.Outcome != record.OutcomeOK || m.Target != "local/m1" {
		t.Errorf("model record %+v", m)
	}
	if ing[0].Tenant != "acme" || ing[0].StatusCode != 200 || ing[0].Target != "POST /v1/chat/completions" {
		t.Errorf("ingress record %+v", ing[0])
	}
}

func TestOpenAISDKStream(t *testing.T) {
	s := newStack(t, llmtest.SSE(llmtest.Fixture(t, "openai/chat_stream.sse")), nil, nil)
	c := s.client("model")
	for _, includeUsage := range []bool{true, false} {
		t.Run("include_usage="+strconv.FormatBool(includeUsage), func(t *testing.T) {
			params := openai.ChatCompletionNewParams{
				Model:    "smart",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
			}
			if includeUsage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := c.Chat.Completions.NewStreaming(context.Background(), params)
			var acc openai.ChatCompletionAccumulator
			chunks, usageChunks := 0, 0
			for stream.Next() {
				ch := stream.Current()
				acc.AddChunk(ch)
				chunks++
				if ch.Usage.TotalTokens > 0 {
					usageChunks++
					if len(ch.Choices) != 0 {
						t.Errorf("usage on a chunk with choices")
					}
				}
				if ch.Model != "local/m1" || ch.Object != "chat.completion.chunk" {
					t.Errorf("chunk model %q object %q", ch.Model, ch.Object)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if got := acc.Choices[0].Message.Content; got != "Hello there!" {
				t.Errorf("content %q", got)
			}
			wantUsage := 0
			if includeUsage {
				wantUsage = 1
				if acc.Usage.PromptTokens != 9 || acc.Usage.CompletionTokens != 3 {
					t.Errorf("usage %+v", acc.Usage)
				}
			}
			if usageChunks != wantUsage {
				t.Errorf("%d usage chunks, want %d", usageChunks, wantUsage)
			}
		})
	}
	// The raw stream ends with [DONE]; records count the tokens.
	resp, body := s.in.Do(t, "model", "POST", "/v1/chat/completions", `{"model":"local/m1","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Errorf("raw stream %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, m := range s.rec.Kind(calls.KindModel) {
		if m.Labels["stream"] != "true" || m.TokensIn != 9 || m.TokensOut != 3 || m.Tenant != "acme" {
			t.Errorf("stream record %+v", m)
		}
	}
}

// TestStreamErrorAfterStart: an error once chunks were sent is an error
// event, which the OpenAI SDK surfaces; there is no [DONE].
func TestStreamErrorAfterStart(t *testing.T) {
	s := newStack(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		llmtest.WriteSSE(w, []byte(`data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}`+"\n\n"+
			`data: {"error":{"message":"upstream exploded","type":"server_error"}}`+"\n\n"))
	}, nil, nil)
	resp, body := s.in.Do(t, "submitter", "POST", "/v1/chat/completions", `{"model":"local/m1","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `data: {"error":{"message":`) || !strings.Contains(string(body), `"type":"server_error","param":null,"code":"provider_error"}}`) ||
		strings.Contains(string(body), "[DONE]") {
		t.Errorf("%d: %s", resp.StatusCode, body)
	}
	c := s.client("submitter")
	stream := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "local/m1", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	for stream.Next() {
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "upstream exploded") {
		t.Errorf("stream error %v", err)
	}
}

func TestErrorStatuses(t *testing.T) {
	fx := func(name string) []byte { return llmtest.Fixture(t, name) }
	cases := []struct {
		name       string
		respond    func(int, http.ResponseWriter, *http.Request)
		status     int
		code       string
		retryAfter string
	}{
		{"rate limit", llmtest.JSON(429, fx("openai/error_rate_limit.json"), "Retry-After", "7"), 429, "provider_rate_limited", "7"},
		{"overloaded", llmtest.JSON(503, fx("openai/error_server.json")), 503, "provider_overloaded", ""},
		{"server error", llmtest.JSON(500, fx("openai/error_server.json")), 502, "provider_error", ""},
		{"provider credential", llmtest.JSON(401, fx("openai/error_auth.json")), 502, "provider_auth_failed", ""},
		{"model not pulled", llmtest.JSON(404, fx("openai/error_ollama_model_not_found.json")), 502, "provider_model_unavailable", ""},
		{"context too long", llmtest.JSON(400, fx("openai/error_context.json")), 400, "context_length_exceeded", ""},
		{"bad request", llmtest.JSON(400, []byte(`{"error":{"message":"'temperature' is too high","type":"invalid_request_error"}}`)), 400, "invalid_request", ""},
		{"malformed answer", llmtest.JSON(200, []byte(`{"choices": [`)), 502, "provider_error", ""},
		{"timeout", func(_ int, w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}, 504, "provider_timeout", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, tc.respond, func(c *llm.Config) {
				p := c.Providers["local"]
				p.Timeout = "150ms"
				c.Providers["local"] = p
			}, nil)
			for _, stream := range []bool{false, true} {
				body := `{"model":"local/m1","stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"user","content":"hi"}]}`
				resp, b := s.in.Do(t, "submitter", "POST", "/v1/chat/completions", body)
				e := apiError(t, resp, b)
				code := tc.code
				if stream && tc.name == "malformed answer" {
					code = "provider_unreachable" // a JSON answer to a stream request: the stream "ended early"
				}
				if resp.StatusCode != tc.status || e.Error.Code != code || resp.Header.Get("Retry-After") != tc.retryAfter {
					t.Errorf("stream=%v: %d %s Retry-After=%q: %s", stream, resp.StatusCode, e.Error.Code, resp.Header.Get("Retry-After"), b)
				}
				if strings.Contains(string(b), gwtest.ProviderKey) {
					t.Errorf("credential leaked: %s", b)
				}
			}
			// The OpenAI SDK surfaces the status and the message.
			c := s.client("submitter")
			_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
				Model: "local/m1", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			var apierr *openai.Error
			if !errors.As(err, &apierr) || apierr.StatusCode != tc.status || apierr.Code != tc.code || apierr.Message == "" {
				t.Errorf("SDK error %v", err)
			}
		})
	}
}

// body is OpenAI's error shape, which the OpenAI-compatible routes answer.
type body struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

// apiError reads an error answer and checks it has exactly OpenAI's four
// fields.
func apiError(t *testing.T, resp *http.Response, b []byte) body {
	t.Helper()
	var e body
	var raw struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("%d: not OpenAI's error shape: %s", resp.StatusCode, b)
	}
	_ = json.Unmarshal(b, &raw)
	if len(raw.Error) != 4 || raw.Error["param"] == nil {
		t.Fatalf("%d: error fields %v, want message, type, param, code: %s", resp.StatusCode, raw.Error, b)
	}
	return e
}

func (b body) param() string {
	if b.Error.Param == nil {
		return ""
	}
	return *b.Error.Param
}

func TestRequestValidation(t *testing.T) {
	s := newStack(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")), nil, nil)
	cases := []struct {
		name, key, body string
		status          int
		code, path      string
	}{
		{"no key", "", `{"model":"local/m1","messages":[{"role":"user","content":"hi"}]}`, 401, "unauthenticated", ""},
		{"analyst role", "analyst", `{"model":"local/m1","messages":[{"role":"user","content":"hi"}]}`, 403, "forbidden", ""},
		{"syntax", "submitter", `{"model":"local/m1",`, 400, "invalid_json", ""},
		{"bad cache header", "submitter", `{"model":"local/m1","messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request", ""},
		{"empty", "submitter", ``, 400, "invalid_json", ""},
		{"wrong type", "submitter", `{"model":"local/m1","temperature":"hot","messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request", "temperature"},
		{"nested wrong type", "submitter", `{"model":"local/m1","messages":[{"role":7,"content":"hi"}]}`, 400, "invalid_request", "messages[0].role"},
		{"no messages", "submitter", `{"model":"local/m1","messages":[]}`, 400, "invalid_request", "messages"},
		{"no model", "submitter", `{"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request", "model"},
		{"no role", "submitter", `{"model":"local/m1","messages":[{"content":"hi"}]}`, 400, "invalid_request", "messages[0].role"},
		{"n", "submitter", `{"model":"local/m1","n":2,"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request", "n"},
		{"logprobs", "submitter", `{"model":"local/m1","logprobs":true,"messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request", "logprobs"},
		{"unknown model", "submitter", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found", "model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var b []byte
			if tc.name == "bad cache header" {
				resp, b = s.in.DoHeaders(t, tc.key, "POST", "/v1/chat/completions", tc.body, http.Header{chatapi.HeaderCache: {"sometimes"}})
			} else {
				resp, b = s.in.Do(t, tc.key, "POST", "/v1/chat/completions", tc.body)
			}
			e := apiError(t, resp, b)
			if resp.StatusCode != tc.status || e.Error.Code != tc.code {
				t.Fatalf("%d %s: %s", resp.StatusCode, e.Error.Code, b)
			}
			if e.param() != tc.path {
				t.Errorf("param %q, want %q", e.param(), tc.path)
			}
		})
	}
	if len(s.prov.Requests()) != 0 {
		t.Errorf("invalid requests reached the provider")
	}
	// The unknown-model message lists the models.
	_, b := s.in.Do(t, "submitter", "POST", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`)
	if !strings.Contains(string(b), "local/m1") || !strings.Contains(string(b), "smart") {
		t.Errorf("no model hint: %s", b)
	}
}

func TestIgnoredParams(t *testing.T) {
	s := newStack(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")), nil, nil)
	resp, b := s.in.Do(t, "submitter", "POST", "/v1/chat/completions",
		`{"model":"local/m1","store":true,"metadata":{"a":"b"},"n":1,"seed":3,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get(chatapi.HeaderIgnoredParams) != "metadata,store" {
		t.Errorf("%d %q: %s", resp.StatusCode, resp.Header.Get(chatapi.HeaderIgnoredParams), b)
	}
	var sent map[string]any
	_ = json.Unmarshal(s.prov.Requests()[0].Body, &sent)
	if _, ok := sent["store"]; ok || sent["seed"] != float64(3) {
		t.Errorf("provider got %v", sent)
	}
}

// staticSpend reports a fixed spend for every tenant.
type staticSpend int64

func (s staticSpend) TokensSince(context.Context, string, time.Time) (int64, error) {
	return int64(s), nil
}

func TestBudgetExceeded(t *testing.T) {
	budgets := llm.NewBudgets(staticSpend(1000), llm.LimitFunc(func(tenant string) (int64, int64) {
		if tenant == "acme" {
			return 500, 0
		}
		return 0, 0
	}), nil, llm.BudgetPolicy{})
	s := newStack(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")), nil, budgets)
	resp, b := s.in.Do(t, "submitter", "POST", "/v1/chat/completions", `{"model":"smart","messages":[{"role":"user","content":"hi"}]}`)
	e := apiError(t, resp, b)
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 429 || e.Error.Code != "budget_exceeded" || ra < 1 || ra > 86400 ||
		resp.Header.Get("X-Should-Retry") != "false" || !strings.Contains(e.Error.Message, "daily token budget of 500") {
		t.Errorf("%d Retry-After=%q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	// The OpenAI SDK (with its default retries) does not retry a spent budget.
	before := len(s.in.Rec.Kind(calls.KindIngress))
	c := openai.NewClient(option.WithBaseURL(s.in.URL+"/v1/"), option.WithAPIKey(gwtest.Token("submitter")))
	_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "smart", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apierr *openai.Error
	if !errors.As(err, &apierr) || apierr.StatusCode != 429 || !strings.Contains(apierr.Message, "budget") {
		t.Errorf("SDK error %v", err)
	}
	if n := len(s.in.Rec.Kind(calls.KindIngress)) - before; n != 1 {
		t.Errorf("the SDK sent %d requests", n)
	}
	if len(s.prov.Requests()) != 0 {
		t.Errorf("a refused call reached the provider")
	}
	rej := s.rec.Kind(calls.KindModel)
	if len(rej) == 0 || rej[0].Outcome != record.OutcomeRejected || rej[0].ErrorClass != llm.ClassBudget || rej[0].Tenant != "acme" {
		t.Errorf("budget records %+v", rej)
	}
	// Another tenant is not limited.
	resp, b = s.in.Do(t, "other", "POST", "/v1/chat/completions", `{"model":"smart","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 {
		t.Errorf("other tenant: %d %s", resp.StatusCode, b)
	}
}

func TestModelsAndOpenAPI(t *testing.T) {
	s := newStack(t, llmtest.JSON(200, nil), nil, nil)
	c := s.client("submitter")
	page, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "local/m1,local/m2,smart" {
		t.Errorf("models %v", ids)
	}
	resp, b := s.in.Do(t, "", "GET", "/v1/openapi.json", "")
	var doc struct {
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if doc.Paths["/v1/chat/completions"]["post"] == nil || doc.Paths["/v1/models"]["get"] == nil || doc.Paths["/v1/embeddings"]["post"] == nil ||
		doc.Components.Schemas["ChatCompletionRequest"] == nil || doc.Components.Schemas["EmbeddingRequest"] == nil || doc.Components.Schemas["OpenAIError"] == nil {
		t.Errorf("document lacks the model routes: %v", doc.Paths)
	}
	// The ingress's own errors of these routes are documented in OpenAI's shape.
	for _, route := range []string{"/v1/chat/completions", "/v1/embeddings"} {
		op, _ := json.Marshal(doc.Paths[route]["post"])
		if !strings.Contains(string(op), `"401":{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/OpenAIError"}}}`) {
			t.Errorf("%s: 401 not in OpenAI's shape: %s", route, op)
		}
	}
}
