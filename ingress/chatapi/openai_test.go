package chatapi_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/ingress/chatapi"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
)

// The official OpenAI Go SDK reads every field of Gateflow's errors on the
// OpenAI-compatible routes, the ingress's own (authentication) included.
func TestOpenAISDKReadsEveryErrorField(t *testing.T) {
	budgets := llm.NewBudgets(staticSpend(1000), llm.LimitFunc(func(tenant string) (int64, int64) {
		if tenant == "acme" {
			return 500, 0
		}
		return 0, 0
	}), nil, llm.BudgetPolicy{})
	s := newStack(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "embeddings") {
			llmtest.WriteJSON(w, 400, llmtest.Fixture(t, "openai/error_context.json"))
			return
		}
		llmtest.WriteJSON(w, 500, llmtest.Fixture(t, "openai/error_server.json"))
	}, func(c *llm.Config) { c.Retry = llm.RetryPolicy{MaxAttempts: 1} }, budgets)
	ctx := context.Background()
	user := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}
	cases := []struct {
		name    string
		call    func(c openai.Client) error
		key     string
		status  int
		errType string
		param   string // "" means null
		code    string
	}{
		{"unknown model", func(c openai.Client) error {
			_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-9", Messages: user})
			return err
		}, "other", 404, "invalid_request_error", "model", "model_not_found"},
		{"provider failure", func(c openai.Client) error {
			_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "local/m1", Messages: user})
			return err
		}, "other", 502, "server_error", "", "provider_error"},
		{"spent budget", func(c openai.Client) error {
			_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "local/m1", Messages: user})
			return err
		}, "submitter", 429, "insufficient_quota", "", "budget_exceeded"},
		{"invalid key", func(c openai.Client) error {
			_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "local/m1", Messages: user})
			return err
		}, "nobody", 401, "authentication_error", "", "invalid_api_key"},
		{"wrong role", func(c openai.Client) error {
			_, err := c.Models.List(ctx)
			return err
		}, "analyst", 403, "permission_error", "", "forbidden"},
		{"embeddings context", func(c openai.Client) error {
			_, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "local/m1",
				Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hi")}})
			return err
		}, "other", 400, "invalid_request_error", "messages", "context_length_exceeded"},
		{"embeddings bad input", func(c openai.Client) error {
			_, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "local/m1",
				Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"ok", ""}}})
			return err
		}, "other", 400, "invalid_request_error", "input", "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := gwtest.Token(tc.key)
			if tc.key == "nobody" {
				key = "gf_not-a-key"
			}
			c := openai.NewClient(option.WithBaseURL(s.in.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
			err := tc.call(c)
			var e *openai.Error
			if !errors.As(err, &e) {
				t.Fatalf("not an API error: %v", err)
			}
			if e.StatusCode != tc.status || e.Type != tc.errType || e.Param != tc.param || e.Code != tc.code || e.Message == "" {
				t.Errorf("status %d type %q param %q code %q message %q", e.StatusCode, e.Type, e.Param, e.Code, e.Message)
			}
			// Every field was present in the answer (param as null when
			// there is none).
			if !e.JSON.Message.Valid() || !e.JSON.Type.Valid() || !e.JSON.Code.Valid() || (tc.param != "" && !e.JSON.Param.Valid()) {
				t.Errorf("fields missing: %s", e.RawJSON())
			}
			if len(e.JSON.ExtraFields) != 0 {
				t.Errorf("extra fields %v", e.JSON.ExtraFields)
			}
			if strings.Contains(e.RawJSON(), gwtest.ProviderKey) {
				t.Error("credential leaked")
			}
		})
	}
}

// Gateflow's own routes keep their shape.
func TestOwnRoutesKeepTheirShape(t *testing.T) {
	s := newStack(t, llmtest.JSON(200, nil), nil, nil)
	resp, b := s.in.Do(t, "", "GET", "/v1/workflows", "")
	var e struct {
		Error struct {
			Code    string            `json:"code"`
			Details []json.RawMessage `json:"details"`
			Type    *string           `json:"type"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != 401 || e.Error.Code != "unauthenticated" || e.Error.Details == nil || e.Error.Type != nil {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
}

func TestEmbeddingsEndpoint(t *testing.T) {
	s := newStack(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/embeddings_response.json")), nil, nil)
	c := s.client("submitter")
	resp, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{Model: "local/m1",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"first", "second"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 2 || resp.Data[1].Embedding[0] != 0.5 || resp.Model != "local/m1" || resp.Usage.PromptTokens != 8 {
		t.Errorf("answer %+v", resp)
	}
	reqs := s.prov.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/embeddings" {
		t.Fatalf("provider requests %+v", reqs)
	}
	models := s.rec.Kind(calls.KindModel)
	if len(models) != 1 || models[0].Labels["api"] != "embeddings" || models[0].TokensIn != 8 || models[0].CostUSD == 0 || models[0].Tenant != "acme" {
		t.Errorf("records %+v", models)
	}

	// base64, as OpenAI's Python SDK asks by default: the same vectors;
	// and from the cache this time.
	httpResp, b := s.in.Do(t, "submitter", "POST", "/v1/embeddings", `{"model":"local/m1","input":["first","second"],"encoding_format":"base64","extra":1}`)
	if httpResp.StatusCode != 200 || httpResp.Header.Get(chatapi.HeaderCache) != llm.CacheHit || httpResp.Header.Get(chatapi.HeaderIgnoredParams) != "extra" {
		t.Fatalf("%d %v: %s", httpResp.StatusCode, httpResp.Header, b)
	}
	var enc struct {
		Data []struct {
			Embedding string `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &enc); err != nil || len(enc.Data) != 2 {
		t.Fatalf("%v: %s", err, b)
	}
	raw, err := base64.StdEncoding.DecodeString(enc.Data[1].Embedding)
	if err != nil || len(raw) != 12 {
		t.Fatalf("base64 %q: %v", enc.Data[1].Embedding, err)
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4:])); got != -0.25 {
		t.Errorf("decoded %v", got)
	}
	if len(s.prov.Requests()) != 1 {
		t.Error("cached embeddings called the provider")
	}
}

func TestCacheHeaders(t *testing.T) {
	s := newStack(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") == "text/event-stream" {
			llmtest.WriteSSE(w, llmtest.Fixture(t, "openai/chat_stream.sse"))
			return
		}
		llmtest.WriteJSON(w, 200, llmtest.Fixture(t, "openai/chat_response.json"))
	}, nil, nil)
	body := `{"model":"local/m1","temperature":0,"messages":[{"role":"user","content":"hi"}]}`
	r1, b1 := s.in.Do(t, "submitter", "POST", "/v1/chat/completions", body)
	r2, b2 := s.in.Do(t, "submitter", "POST", "/v1/chat/completions", body)
	if r1.Header.Get(chatapi.HeaderCache) != "miss" || r2.Header.Get(chatapi.HeaderCache) != "hit" || r2.Header.Get("Age") == "" {
		t.Errorf("headers %v / %v", r1.Header, r2.Header)
	}
	if string(b1) != string(b2) {
		t.Errorf("hit differs:\n%s\n%s", b1, b2)
	}
	// Another tenant with the same request pays its own call.
	r3, _ := s.in.Do(t, "other", "POST", "/v1/chat/completions", body)
	if r3.Header.Get(chatapi.HeaderCache) != "miss" {
		t.Errorf("other tenant: %v", r3.Header)
	}
	for _, tc := range []struct {
		header http.Header
		want   string
	}{
		{http.Header{chatapi.HeaderCache: {"off"}}, "bypass"},
		{http.Header{"Cache-Control": {"no-store"}}, "bypass"},
		{http.Header{"Cache-Control": {"no-cache"}}, "refresh"},
		{http.Header{chatapi.HeaderCache: {"refresh"}, chatapi.HeaderCacheTTL: {"60"}}, "refresh"},
	} {
		r, b := s.in.DoHeaders(t, "submitter", "POST", "/v1/chat/completions", body, tc.header)
		if r.StatusCode != 200 || r.Header.Get(chatapi.HeaderCache) != tc.want {
			t.Errorf("%v: %d %q %s", tc.header, r.StatusCode, r.Header.Get(chatapi.HeaderCache), b)
		}
	}
	// Asked for: a non-deterministic request is cached too; streamed
	// answers replay with the header.
	warm := `{"model":"local/m1","temperature":0.9,"stream":true,"messages":[{"role":"user","content":"story"}]}`
	on := http.Header{chatapi.HeaderCache: {"on"}}
	r4, _ := s.in.DoHeaders(t, "submitter", "POST", "/v1/chat/completions", warm, on)
	r5, b5 := s.in.DoHeaders(t, "submitter", "POST", "/v1/chat/completions", warm, on)
	if r4.Header.Get(chatapi.HeaderCache) != "miss" || r5.Header.Get(chatapi.HeaderCache) != "hit" || !strings.Contains(string(b5), "[DONE]") {
		t.Errorf("stream cache %v / %v: %s", r4.Header, r5.Header, b5)
	}
}

func TestModelsCarryCatalogueFigures(t *testing.T) {
	s := newStack(t, llmtest.JSON(200, nil), nil, nil)
	_, b := s.in.Do(t, "submitter", "GET", "/v1/models", "")
	var list struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &list); err != nil || len(list.Data) != 3 {
		t.Fatalf("%v: %s", err, b)
	}
	m1, smart := list.Data[0], list.Data[2]
	if m1["id"] != "local/m1" || m1["object"] != "model" || m1["owned_by"] != "local" || m1["input_per_mtok"] != 1.0 || m1["context_window"] != 100000.0 {
		t.Errorf("m1 %v", m1)
	}
	if smart["id"] != "smart" || smart["owned_by"] != "gateflow" || smart["strategy"] != "ordered" {
		t.Errorf("smart %v", smart)
	}
}
