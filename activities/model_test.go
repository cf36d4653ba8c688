package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
)

const modelTestKey = "sk-model-test-0123456789"

// modelFixture is the model activity over a real gateway and a local
// OpenAI-compatible server.
type modelFixture struct {
	env  *testsuite.TestActivityEnvironment
	mu   sync.Mutex
	hdrs []http.Header
	recs *recordtest.Sink
}

// newModelFixture serves every call with handler; the alias "smart" routes
// to p/m only, "dual" to p/m then q/m (q answers with fallback).
func newModelFixture(t *testing.T, handler, fallback http.HandlerFunc, budget llm.BudgetChecker) *modelFixture {
	t.Helper()
	f := &modelFixture{recs: &recordtest.Sink{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hdrs = append(f.hdrs, r.Header.Clone())
		f.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	if fallback == nil {
		fallback = handler
	}
	srv2 := httptest.NewServer(fallback)
	t.Cleanup(srv2.Close)
	cfg := llm.Config{
		Providers: map[string]llm.Provider{
			"p": {Kind: llm.KindOpenAI, BaseURL: srv.URL, APIKeyEnv: "K", Models: map[string]llm.Model{"m": {InputPerMTok: 1, OutputPerMTok: 2}}},
			"q": {Kind: llm.KindOpenAI, BaseURL: srv2.URL, APIKeyEnv: "K", Models: map[string]llm.Model{"m": {}}},
		},
		Aliases: map[string]llm.Alias{"dual": llm.OrderedAlias("p/m", "q/m")},
	}
	gw, err := llm.NewGateway(cfg, llm.Deps{
		Recorder:  f.recs,
		Budget:    budget,
		LookupEnv: func(string) (string, bool) { return modelTestKey, true },
	})
	if err != nil {
		t.Fatal(err)
	}
	var ts testsuite.WorkflowTestSuite
	f.env = ts.NewTestActivityEnvironment()
	activities.NewModelActivity(gw, activities.ModelOptions{HeartbeatInterval: time.Millisecond}).Register(f.env)
	return f
}

func (f *modelFixture) call(model string, mutate func(*llm.ChatRequest)) (activities.ModelCallOutput, error) {
	in := activities.ModelCallInput{
		StepRef: activities.StepRef{Meta: activities.RunMeta{Tenant: "acme", KeyID: "k1", Definition: "triage", Version: "3"}, StepID: "classify"},
		Request: llm.ChatRequest{Model: model, Messages: []llm.Message{llm.TextMessage("user", "hello")}},
	}
	if mutate != nil {
		mutate(&in.Request)
	}
	val, err := f.env.ExecuteActivity(activities.ModelCallActivity, in)
	if err != nil {
		return activities.ModelCallOutput{}, err
	}
	var out activities.ModelCallOutput
	err = val.Get(&out)
	return out, err
}

func modelAnswer(content string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": content}, "finish_reason": "stop"}},
			"usage":   map[string]any{"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
		})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}
}

func modelFail(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func modelAppError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an application error", err, err)
	}
	return ae
}

func TestModelCallActivity(t *testing.T) {
	f := newModelFixture(t, modelAnswer("Hi there"), nil, nil)
	out, err := f.call("p/m", nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Content != "Hi there" || out.Model != "p/m" || out.FinishReason != "stop" || out.Attempt != 1 ||
		out.Usage.PromptTokens != 10 || out.Usage.CompletionTokens != 5 || out.CostUSD != (10+10)/1e6 {
		t.Errorf("output %+v", out)
	}
	recs := f.recs.All()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.Tenant != "acme" || r.StepID != "classify" || r.Definition != "triage" || r.WorkflowID == "" || r.Attempt != 1 || r.Kind != calls.KindModel {
		t.Errorf("record %+v", r)
	}
	// The provider request id is derived from workflow, step and attempt:
	// the same on a replayed attempt.
	want := uuid.NewSHA1(uuid.NameSpaceURL, []byte("gateflow/model/"+r.WorkflowID+"/classify/1")).String()
	if _, err := f.call("p/m", nil); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.hdrs {
		if h.Get("X-Client-Request-Id") != want {
			t.Errorf("request id %q, want %q", h.Get("X-Client-Request-Id"), want)
		}
	}
}

func TestModelCallJSON(t *testing.T) {
	asJSON := func(r *llm.ChatRequest) { r.ResponseFormat = &llm.ResponseFormat{Type: "json_object"} }
	f := newModelFixture(t, modelAnswer("```json\n{\"label\": \"spam\", \"score\": 0.9}\n```"), nil, nil)
	out, err := f.call("p/m", asJSON)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := out.JSON.(map[string]any)
	if !ok || m["label"] != "spam" || m["score"] != 0.9 {
		t.Errorf("json %#v", out.JSON)
	}
	bad := newModelFixture(t, modelAnswer("I think it is spam."), nil, nil)
	_, err = bad.call("p/m", asJSON)
	ae := modelAppError(t, err)
	if ae.Type() != calls.ClassBadOutput || ae.NonRetryable() {
		t.Errorf("type %q nonRetryable %v", ae.Type(), ae.NonRetryable())
	}
}

func TestModelCallErrors(t *testing.T) {
	cases := []struct {
		name         string
		handler      http.HandlerFunc
		class        string
		nonRetryable bool
		status       int
		delay        time.Duration
	}{
		{"auth", modelFail(401, `{"error":{"message":"Incorrect API key provided: `+modelTestKey+`","code":"invalid_api_key"}}`), calls.ClassAuth, true, 401, 0},
		{"rate limit", modelFail(429, `{"error":{"message":"slow down","code":"rate_limit_exceeded"}}`, "Retry-After", "20"), calls.ClassRateLimit, false, 429, 20 * time.Second},
		{"context", modelFail(400, `{"error":{"message":"too long","code":"context_length_exceeded"}}`), calls.ClassContextTooLong, true, 400, 0},
		{"bad request", modelFail(400, `{"error":{"message":"bad"}}`), calls.ClassBadRequest, true, 400, 0},
		{"overloaded", modelFail(503, `{"error":{"message":"busy"}}`), calls.ClassOverloaded, false, 503, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newModelFixture(t, tc.handler, nil, nil)
			_, err := f.call("p/m", nil)
			ae := modelAppError(t, err)
			if ae.Type() != tc.class || ae.NonRetryable() != tc.nonRetryable || ae.NextRetryDelay() != tc.delay {
				t.Errorf("type %q nonRetryable %v delay %s; want %q %v %s (%v)", ae.Type(), ae.NonRetryable(), ae.NextRetryDelay(), tc.class, tc.nonRetryable, tc.delay, err)
			}
			var d activities.CallErrorDetails
			if err := ae.Details(&d); err != nil || d.Attempt != 1 || d.StatusCode != tc.status {
				t.Errorf("details %+v %v", d, err)
			}
			if strings.Contains(err.Error(), modelTestKey) {
				t.Errorf("key leaked: %v", err)
			}
			// Temporal retries; the activity made exactly one request.
			if n := len(f.hdrs); n != 1 {
				t.Errorf("%d requests", n)
			}
		})
	}
}

func TestModelCallFallsBackWithinAttempt(t *testing.T) {
	f := newModelFixture(t, modelFail(429, `{"error":{"message":"slow down"}}`), modelAnswer("from q"), nil)
	out, err := f.call("dual", nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Model != "q/m" || out.Content != "from q" {
		t.Errorf("output %+v", out)
	}
	if recs := f.recs.All(); len(recs) != 2 || recs[0].ErrorClass != "rate_limit" || recs[1].Attempt != 1 {
		t.Errorf("records %+v", recs)
	}
}

type refuseBudget struct{}

func (refuseBudget) Reserve(context.Context, string, int64) (llm.Settle, error) {
	return nil, &llm.BudgetError{Tenant: "acme", Period: "daily", Limit: 10, Used: 10, ResetAt: time.Now().Add(time.Hour)}
}

func TestModelCallBudget(t *testing.T) {
	f := newModelFixture(t, modelAnswer("x"), nil, refuseBudget{})
	_, err := f.call("p/m", nil)
	ae := modelAppError(t, err)
	if ae.Type() != calls.ClassBudgetExceeded || !ae.NonRetryable() {
		t.Errorf("type %q nonRetryable %v", ae.Type(), ae.NonRetryable())
	}
	if len(f.hdrs) != 0 {
		t.Error("a refused call was sent")
	}
}
