package llm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
)

// twoProviders is an alias "smart" over a/m then b/m, each an OpenAI
// compatible server.
func twoProviders(a, b string) Config {
	return Config{
		Providers: map[string]Provider{
			"a": {Kind: KindOpenAI, BaseURL: a, APIKeyEnv: "KEY", Models: map[string]Model{"m": {InputPerMTok: 1, OutputPerMTok: 1}}},
			"b": {Kind: KindOpenAI, BaseURL: b, APIKeyEnv: "KEY", Models: map[string]Model{"m": {InputPerMTok: 2, OutputPerMTok: 2}}},
		},
		Aliases: map[string][]string{"smart": {"a/m", "b/m"}},
	}
}

func TestFallbackAcrossAlias(t *testing.T) {
	cases := []struct {
		name    string
		primary func(int, http.ResponseWriter, *http.Request)
		class   string
		outcome record.Outcome
	}{
		{"429", llmtest.JSON(429, llmtest.Fixture(t, "openai/error_rate_limit.json")), ClassRateLimit, record.OutcomeError},
		{"500", llmtest.JSON(500, llmtest.Fixture(t, "openai/error_server.json")), ClassServer, record.OutcomeError},
		{"503", llmtest.JSON(503, []byte(`{"error":{"message":"overloaded"}}`)), ClassOverloaded, record.OutcomeError},
		{"timeout", func(_ int, w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, ClassTimeout, record.OutcomeTimeout},
		{"context", llmtest.JSON(400, llmtest.Fixture(t, "openai/error_context.json")), ClassContext, record.OutcomeError},
		// Ollama running without the model (its OpenAI-compatible 404).
		{"model not pulled", llmtest.JSON(404, llmtest.Fixture(t, "openai/error_ollama_model_not_found.json")), ClassModelUnavailable, record.OutcomeError},
		{"model not found", llmtest.JSON(404, llmtest.Fixture(t, "openai/error_model_not_found.json")), ClassModelUnavailable, record.OutcomeError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := llmtest.NewProvider(t, tc.primary)
			b := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
			cfg := twoProviders(a.URL, b.URL)
			p := cfg.Providers["a"]
			p.Timeout = "100ms"
			cfg.Providers["a"] = p
			env := newTestGateway(t, cfg, nil)
			resp, err := env.gw.Chat(context.Background(), userRequest("smart", "hi"), CallOptions{Tenant: "acme", StepID: "s1"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Model != "b/m" {
				t.Errorf("answered by %s", resp.Model)
			}
			recs := env.recs.All()
			if len(recs) != 2 {
				t.Fatalf("%d records", len(recs))
			}
			if r := recs[0]; r.Target != "a/m" || r.ErrorClass != tc.class || r.Outcome != tc.outcome || r.Labels["model"] != "smart" || r.Attempt != 1 {
				t.Errorf("first record %+v", r)
			}
			if r := recs[1]; r.Target != "b/m" || r.Outcome != record.OutcomeOK || r.TokensIn != 19 || r.TokensOut != 10 || r.Attempt != 2 {
				t.Errorf("second record %+v", r)
			}
			if got := recs[1].CostUSD; got != (19*2.0+10*2.0)/1e6 {
				t.Errorf("cost %g", got)
			}
			if len(env.clock.Sleeps()) != 0 {
				t.Errorf("slept before falling back: %v", env.clock.Sleeps())
			}
		})
	}
}

func TestNoFallbackOnBadRequest(t *testing.T) {
	a := llmtest.NewProvider(t, llmtest.JSON(400, llmtest.Fixture(t, "anthropic/error_bad_request.json")))
	b := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
	env := newTestGateway(t, twoProviders(a.URL, b.URL), nil)
	_, err := env.gw.Chat(context.Background(), userRequest("smart", "hi"), CallOptions{})
	if ClassOf(err) != ClassBadRequest || !errors.Is(err, ErrBadRequest) {
		t.Fatalf("err %v", err)
	}
	if len(b.Requests()) != 0 {
		t.Error("fell back on a bad request")
	}
}

// TestModelUnavailableEverywhere: when no target serves the model the
// call fails at once with model_unavailable (no retry round: pulling the
// model is an operator's job), and each target is tried once.
func TestModelUnavailableEverywhere(t *testing.T) {
	notPulled := llmtest.JSON(404, llmtest.Fixture(t, "openai/error_ollama_model_not_found.json"))
	a, b := llmtest.NewProvider(t, notPulled), llmtest.NewProvider(t, notPulled)
	env := newTestGateway(t, twoProviders(a.URL, b.URL), nil)
	_, err := env.gw.Chat(context.Background(), userRequest("smart", "hi"), CallOptions{})
	if ClassOf(err) != ClassModelUnavailable || !errors.Is(err, ErrModelUnavailable) {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(err.Error(), "try pulling it first") {
		t.Errorf("the provider's message is lost: %v", err)
	}
	if len(a.Requests()) != 1 || len(b.Requests()) != 1 || len(env.clock.Sleeps()) != 0 {
		t.Errorf("requests a=%d b=%d, sleeps %v", len(a.Requests()), len(b.Requests()), env.clock.Sleeps())
	}
}

// TestCostRounded: the price arithmetic's float noise
// (52*0.2+26*0.2)/1e6 = 1.5600000000000003e-05 does not reach the answer
// nor the record.
func TestCostRounded(t *testing.T) {
	body := strings.Replace(strings.Replace(string(llmtest.Fixture(t, "openai/chat_response.json")),
		`"prompt_tokens": 19`, `"prompt_tokens": 52`, 1), `"completion_tokens": 10`, `"completion_tokens": 26`, 1)
	srv := llmtest.NewProvider(t, llmtest.JSON(200, []byte(body)))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {InputPerMTok: 0.2, OutputPerMTok: 0.2}}), nil)
	resp, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strconv.FormatFloat(resp.Usage.CostUSD, 'g', -1, 64); got != "1.56e-05" {
		t.Errorf("response cost %s", got)
	}
	if recs := env.recs.All(); len(recs) != 1 || recs[0].CostUSD != resp.Usage.CostUSD {
		t.Errorf("records %+v", recs)
	}
	for _, c := range []struct{ in, want float64 }{{1.5600000000000003e-05, 1.56e-05}, {2.6399999999999998e-05, 2.64e-05}, {0, 0}, {4e-11, 0}, {6e-11, 1e-10}, {12.5, 12.5}} {
		if got := RoundCost(c.in); got != c.want {
			t.Errorf("RoundCost(%g) = %g, want %g", c.in, got, c.want)
		}
	}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	srv := llmtest.NewProvider(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			llmtest.WriteJSON(w, 429, llmtest.Fixture(t, "openai/error_rate_limit.json"), "Retry-After", "3")
			return
		}
		llmtest.WriteJSON(w, 200, llmtest.Fixture(t, "openai/chat_response.json"))
	})
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}}), nil)
	resp, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Text() == "" {
		t.Error("empty answer")
	}
	sleeps := env.clock.Sleeps()
	if len(sleeps) != 1 || sleeps[0] < 3*time.Second || sleeps[0] > 4*time.Second {
		t.Errorf("sleeps %v, want one of at least the 3s Retry-After", sleeps)
	}
	if n := len(srv.Requests()); n != 2 {
		t.Errorf("%d requests", n)
	}
	if recs := env.recs.All(); len(recs) != 2 || recs[0].Attempt != 1 || recs[1].Attempt != 2 {
		t.Errorf("records %+v", recs)
	}
}

func TestRetryAfterTooLongGivesUp(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(429, llmtest.Fixture(t, "gemini/error_rate_limit.json")))
	env := newTestGateway(t, oneProvider(KindGemini, srv.URL, map[string]Model{"m": {}}), nil)
	_, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{})
	if ClassOf(err) != ClassRateLimit || RetryAfterOf(err) != 37*time.Second {
		t.Fatalf("err %v (retry after %s)", err, RetryAfterOf(err))
	}
	if len(env.clock.Sleeps()) != 0 || len(srv.Requests()) != 1 {
		t.Errorf("retried despite a Retry-After above the bound: sleeps %v, %d requests", env.clock.Sleeps(), len(srv.Requests()))
	}
}

func TestRetryBackoffBounded(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(500, llmtest.Fixture(t, "openai/error_server.json")))
	cfg := oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}})
	cfg.Retry = RetryPolicy{MaxAttempts: 4, InitialBackoff: "100ms", MaxBackoff: "250ms"}
	env := newTestGateway(t, cfg, nil)
	_, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{})
	if ClassOf(err) != ClassServer {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(err.Error(), "all 4 attempts failed") {
		t.Errorf("no attempt summary: %v", err)
	}
	sleeps := env.clock.Sleeps()
	if len(sleeps) != 3 {
		t.Fatalf("sleeps %v", sleeps)
	}
	for i, s := range sleeps {
		if s < 50*time.Millisecond || s > 250*time.Millisecond {
			t.Errorf("sleep %d = %s, outside [50ms, 250ms]", i, s)
		}
	}
}

func TestNoRetryStillFallsBack(t *testing.T) {
	a := llmtest.NewProvider(t, llmtest.JSON(429, llmtest.Fixture(t, "openai/error_rate_limit.json"), "Retry-After", "1"))
	b := llmtest.NewProvider(t, llmtest.JSON(503, []byte(`{"error":{"message":"busy"}}`), "Retry-After", "2"))
	env := newTestGateway(t, twoProviders(a.URL, b.URL), nil)
	_, err := env.gw.Chat(context.Background(), userRequest("smart", "hi"), CallOptions{NoRetry: true})
	// The last retryable error is returned, with its delay, so a Temporal
	// retry can honour it.
	if ClassOf(err) != ClassOverloaded || RetryAfterOf(err) != 2*time.Second {
		t.Fatalf("err %v", err)
	}
	if len(a.Requests()) != 1 || len(b.Requests()) != 1 || len(env.clock.Sleeps()) != 0 {
		t.Errorf("requests a=%d b=%d sleeps=%v", len(a.Requests()), len(b.Requests()), env.clock.Sleeps())
	}
}

func TestContextWindowCheck(t *testing.T) {
	a := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
	b := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
	cfg := twoProviders(a.URL, b.URL)
	small := cfg.Providers["a"]
	small.Models = map[string]Model{"m": {ContextTokens: 1000}}
	cfg.Providers["a"] = small
	env := newTestGateway(t, cfg, nil)
	// 12000 bytes: at least 2000 tokens by the lower bound, over 1000.
	resp, err := env.gw.Chat(context.Background(), userRequest("smart", strings.Repeat("word ", 2400)), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "b/m" || len(a.Requests()) != 0 {
		t.Errorf("model %s, small target got %d requests", resp.Model, len(a.Requests()))
	}
	recs := env.recs.All()
	if len(recs) != 2 || recs[0].Outcome != record.OutcomeRejected || recs[0].ErrorClass != ClassContext || recs[0].Target != "a/m" {
		t.Errorf("records %+v", recs)
	}
	// A prompt that may fit is sent: the provider judges.
	if _, err := env.gw.Chat(context.Background(), userRequest("a/m", strings.Repeat("word ", 900)), CallOptions{}); err != nil {
		t.Errorf("near-limit prompt refused: %v", err)
	}
}

func TestUnknownModel(t *testing.T) {
	env := newTestGateway(t, oneProvider(KindOpenAI, "http://127.0.0.1:1", map[string]Model{"m": {}}), nil)
	_, err := env.gw.Chat(context.Background(), userRequest("p/nope", "hi"), CallOptions{})
	if !errors.Is(err, ErrUnknownModel) || !errors.Is(err, ErrBadRequest) || ClassOf(err) != ClassBadRequest {
		t.Errorf("err %v", err)
	}
	if env.gw.Has("p/nope") || !env.gw.Has("p/m") {
		t.Error("Has")
	}
	_, err = env.gw.Chat(context.Background(), &ChatRequest{Model: "p/m"}, CallOptions{})
	if ClassOf(err) != ClassBadRequest {
		t.Errorf("empty messages: %v", err)
	}
}

func TestConnectionRefusedFallsBack(t *testing.T) {
	b := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
	env := newTestGateway(t, twoProviders("http://127.0.0.1:1", b.URL), nil)
	resp, err := env.gw.Chat(context.Background(), userRequest("smart", "hi"), CallOptions{})
	if err != nil || resp.Model != "b/m" {
		t.Fatalf("resp %v err %v", resp, err)
	}
	if r := env.recs.All()[0]; r.ErrorClass != ClassConnection {
		t.Errorf("record %+v", r)
	}
}

func TestCallerCancellationStops(t *testing.T) {
	var calls atomic.Int32
	srv := llmtest.NewProvider(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-r.Context().Done()
	})
	env := newTestGateway(t, twoProviders(srv.URL, srv.URL), nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for calls.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := env.gw.Chat(ctx, userRequest("smart", "hi"), CallOptions{})
	if !errors.Is(err, context.Canceled) || ClassOf(err) != "" {
		t.Fatalf("err %v", err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls after cancellation", calls.Load())
	}
	if recs := env.recs.All(); len(recs) != 1 || recs[0].Outcome != record.OutcomeCancelled {
		t.Errorf("records %+v", recs)
	}
}

func TestRecordFields(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {InputPerMTok: 1, OutputPerMTok: 3}}), nil)
	opts := CallOptions{Tenant: "acme", KeyID: "k1", WorkflowID: "wf", RunID: "run", Definition: "def", Version: "v2",
		StepID: "summarize", Attempt: 3, RequestID: "rid", Labels: map[string]string{"team": "x"}}
	if _, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), opts); err != nil {
		t.Fatal(err)
	}
	recs := env.recs.All()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if r.Kind != calls.KindModel || r.Target != "p/m" || r.Tenant != "acme" || r.KeyID != "k1" || r.WorkflowID != "wf" || r.RunID != "run" ||
		r.Definition != "def" || r.Version != "v2" || r.StepID != "summarize" || r.Attempt != 3 || r.StatusCode != 200 ||
		r.Outcome != record.OutcomeOK || r.TokensIn != 19 || r.TokensOut != 10 || r.CostUSD != (19+30)/1e6 ||
		r.ReqBytes == 0 || r.RespBytes != int64(len(llmtest.Fixture(t, "openai/chat_response.json"))) ||
		r.Labels["team"] != "x" || r.Labels["request_id"] != "rid" || r.TS != env.clock.Now().UnixMilli() {
		t.Errorf("record %+v", r)
	}
	if _, ok := r.Labels["model"]; ok {
		t.Error("model label set for a direct provider/model call")
	}
}

func TestEstimatedUsageWhenProviderReportsNone(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, []byte(`{"id":"x","object":"chat.completion","created":1,"model":"local","choices":[{"index":0,"message":{"role":"assistant","content":"twelve chars"},"finish_reason":"stop"}]}`)))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}}), nil)
	resp, err := env.gw.Chat(context.Background(), userRequest("p/m", "hello there"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Usage.PromptTokens == 0 || resp.Usage.CompletionTokens != 4 {
		t.Errorf("usage %+v", resp.Usage)
	}
	if r := env.recs.All()[0]; r.Labels["usage"] != "estimated" || r.TokensOut != 4 {
		t.Errorf("record %+v", r)
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	// The provider echoes the key in its error, as OpenAI does for a wrong
	// key; it must not reach errors, records or logs.
	a := llmtest.NewProvider(t, llmtest.JSON(401, llmtest.Fixture(t, "openai/error_auth.json")))
	b := llmtest.NewProvider(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 0 {
			llmtest.WriteJSON(w, 500, []byte(`{"error":{"message":"internal error for key `+testKey+`"}}`))
			return
		}
		llmtest.WriteSSE(w, []byte("data: {\"error\":{\"message\":\"bad key "+testKey+"\",\"code\":\"invalid_api_key\"}}\n\n"))
	})
	env := newTestGateway(t, twoProviders(a.URL, b.URL), nil)
	_, err := env.gw.Chat(context.Background(), userRequest("smart", "hi"), CallOptions{NoRetry: true})
	if err == nil {
		t.Fatal("no error")
	}
	_, serr := env.gw.ChatStream(context.Background(), userRequest("b/m", "hi"), CallOptions{})
	if serr == nil {
		t.Fatal("no stream error")
	}
	// Missing credential: the error names the variable, not a value.
	cfg := oneProvider(KindOpenAI, a.URL, map[string]Model{"m": {}})
	p := cfg.Providers["p"]
	p.APIKeyEnv = "MISSING_KEY"
	cfg.Providers["p"] = p
	env2 := newTestGateway(t, cfg, nil)
	_, merr := env2.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{})
	if ClassOf(merr) != ClassAuth || !strings.Contains(merr.Error(), "MISSING_KEY") {
		t.Errorf("missing key error %v", merr)
	}
	texts := []string{err.Error(), serr.Error(), env.logs.String()}
	for _, r := range env.recs.All() {
		texts = append(texts, r.ErrorMsg)
		for _, v := range r.Labels {
			texts = append(texts, v)
		}
	}
	for _, s := range texts {
		if strings.Contains(s, testKey) {
			t.Errorf("secret leaked in %q", s)
		}
	}
	if !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("expected the echoed key to be redacted: %v", err)
	}
	if env.logs.Len() == 0 {
		t.Error("no debug logs written; the check above proves nothing")
	}
}

func TestStreamFallbackBeforeFirstChunk(t *testing.T) {
	a := llmtest.NewProvider(t, llmtest.JSON(503, []byte(`{"error":{"message":"overloaded"}}`)))
	b := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "openai/chat_stream.sse")))
	env := newTestGateway(t, twoProviders(a.URL, b.URL), nil)
	s, err := env.gw.ChatStream(context.Background(), userRequest("smart", "hi"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Collect(s)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "b/m" || resp.Choices[0].Message.Text() != "Hello there!" || s.Model() != "b/m" || s.Usage().TotalTokens != 12 {
		t.Errorf("resp %+v", resp)
	}
}

func TestStreamMidStreamErrors(t *testing.T) {
	cut := "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"},\"finish_reason\":null}]}\n\n"
	cases := []struct {
		name    string
		respond func(int, http.ResponseWriter, *http.Request)
		class   string
	}{
		{"cut", func(_ int, w http.ResponseWriter, _ *http.Request) { llmtest.WriteSSE(w, []byte(cut)) }, ClassConnection},
		{"stall", func(_ int, w http.ResponseWriter, r *http.Request) {
			llmtest.WriteSSE(w, []byte(cut))
			<-r.Context().Done()
		}, ClassTimeout},
		{"garbage", func(_ int, w http.ResponseWriter, _ *http.Request) {
			llmtest.WriteSSE(w, []byte(cut+"data: {not json\n\n"))
		}, ClassServer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := llmtest.NewProvider(t, tc.respond)
			cfg := oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}})
			p := cfg.Providers["p"]
			p.Timeout = "2s"
			p.StreamIdleTimeout = "100ms"
			cfg.Providers["p"] = p
			budget := &countingBudget{}
			env := newTestGateway(t, cfg, budget)
			s, err := env.gw.ChatStream(context.Background(), userRequest("p/m", "hi"), CallOptions{Tenant: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c, err := s.Recv()
			if err != nil || *c.Choices[0].Delta.Content != "partial" {
				t.Fatalf("first chunk %+v %v", c, err)
			}
			_, err = s.Recv()
			if ClassOf(err) != tc.class {
				t.Fatalf("err %v, want class %s", err, tc.class)
			}
			if _, again := s.Recv(); again == nil || again == io.EOF {
				t.Errorf("Recv after an error: %v", again)
			}
			recs := env.recs.All()
			if len(recs) != 1 || recs[0].ErrorClass != tc.class || recs[0].TokensOut == 0 {
				t.Errorf("records %+v", recs)
			}
			if budget.settled.Load() != 1 || budget.used.Load() == 0 {
				t.Errorf("budget settled %d times with %d tokens", budget.settled.Load(), budget.used.Load())
			}
		})
	}
}

func TestStreamClosedEarly(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "openai/chat_stream.sse")))
	budget := &countingBudget{}
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}}), budget)
	s, err := env.gw.ChatStream(context.Background(), userRequest("p/m", "hi"), CallOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	recs := env.recs.All()
	if len(recs) != 1 || recs[0].Outcome != record.OutcomeCancelled {
		t.Errorf("records %+v", recs)
	}
	if budget.settled.Load() != 1 {
		t.Errorf("settled %d times", budget.settled.Load())
	}
}

func TestStreamWithoutUsageGetsEstimate(t *testing.T) {
	// llama.cpp-style: no usage chunk, [DONE] at the end.
	body := "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"l\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"abcdef\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"l\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
	srv := llmtest.NewProvider(t, llmtest.SSE([]byte(body)))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}}), nil)
	s, err := env.gw.ChatStream(context.Background(), userRequest("p/m", "hi"), CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chunks := readAll(t, s)
	last := chunks[len(chunks)-1]
	if last.Usage == nil || last.Usage.CompletionTokens != 2 || len(last.Choices) != 0 {
		t.Errorf("last chunk %+v", last)
	}
	if r := env.recs.All()[0]; r.Labels["usage"] != "estimated" {
		t.Errorf("record %+v", r)
	}
}

func TestEncodeSSE(t *testing.T) {
	var b strings.Builder
	fin := FinishStop
	c := &ChatChunk{ID: "x", Object: ObjectChatCompletionChunk, Created: 1, Model: "p/m", Choices: []ChunkChoice{{Delta: Delta{Content: strPtr("hi")}}, {Index: 1, FinishReason: &fin}}}
	if err := EncodeSSE(&b, c); err != nil {
		t.Fatal(err)
	}
	want := `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"p/m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null},{"index":1,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	if b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
}

// countingBudget admits everything and counts settlements.
type countingBudget struct {
	settled atomic.Int32
	used    atomic.Int64
}

func (b *countingBudget) Reserve(ctx context.Context, tenant string, tokens int64) (Settle, error) {
	return func(used int64) {
		b.settled.Add(1)
		b.used.Add(used)
	}, nil
}

type accessList map[string][]string // tenant -> models

func (a accessList) MayUseModel(tenant, model string) bool { return slices.Contains(a[tenant], model) }

// TestModelAccess: a model outside the tenant's list is unknown to it (the
// same error as a model that does not exist), hidden from its model list,
// and reachable only through a grant (a prompt API).
func TestModelAccess(t *testing.T) {
	prov := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
	cfg := oneProvider(KindOpenAI, prov.URL, map[string]Model{"m": {}, "n": {}})
	gw, err := NewGateway(cfg, Deps{
		HTTP: NewHTTPClient(), Recorder: &recordtest.Sink{},
		LookupEnv: func(string) (string, bool) { return testKey, true },
		Access:    accessList{"acme": {"p/m"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gw.Chat(t.Context(), userRequest("p/m", "hi"), CallOptions{Tenant: "acme"}); err != nil {
		t.Fatalf("granted model: %v", err)
	}
	_, refused := gw.Chat(t.Context(), userRequest("p/n", "hi"), CallOptions{Tenant: "acme"})
	_, missing := gw.Chat(t.Context(), userRequest("p/zz", "hi"), CallOptions{Tenant: "acme"})
	if !errors.Is(refused, ErrUnknownModel) || strings.ReplaceAll(refused.Error(), "p/n", "X") != strings.ReplaceAll(missing.Error(), "p/zz", "X") {
		t.Errorf("refused %v / missing %v", refused, missing)
	}
	if _, err := gw.Chat(t.Context(), userRequest("p/n", "hi"), CallOptions{Tenant: "acme", Granted: true}); err != nil {
		t.Errorf("granted through a prompt API: %v", err)
	}
	if _, err := gw.Chat(t.Context(), userRequest("p/m", "hi"), CallOptions{Tenant: "beta"}); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("other tenant: %v", err)
	}
	if got := gw.ModelsFor("acme"); len(got) != 1 || got[0] != "p/m" {
		t.Errorf("models for acme %v", got)
	}
	if got := gw.ModelsFor("beta"); len(got) != 0 {
		t.Errorf("models for beta %v", got)
	}
	if n := len(prov.Requests()); n != 2 {
		t.Errorf("provider saw %d requests, want 2 (refusals send nothing)", n)
	}
}
