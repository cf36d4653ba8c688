package promptapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
	"github.com/gateflow/gateflow/ingress/promptapi"
)

const summarizeYAML = `
name: summarize
version: "1"
description: Summarize a text.
model: smart
system: You write summaries of at most ${{ input.words }} words.
user: |
  Summarize:
  ${{ input.text }}
temperature: 0.2
max_tokens: 300
variables:
  type: object
  properties:
    text: {type: string, minLength: 1}
    words: {type: integer, minimum: 1, default: 50}
  required: [text]
  additionalProperties: false
`

const extractYAML = `
name: extract
version: "2"
model: local/m1
user: "Extract the city and the population from: ${{ input.text }}"
variables:
  type: object
  properties:
    text: {type: string}
  required: [text]
output:
  type: object
  properties:
    city: {type: string}
    population: {type: integer, minimum: 0}
  required: [city, population]
  additionalProperties: false
`

// stack serves the prompt APIs of a catalog through a real ingress.
type stack struct {
	prov *llmtest.Provider
	in   *gwtest.Ingress
	rec  *gwtest.Recorder
	cat  *atomic.Pointer[prompt.Catalog]
}

func newStack(t *testing.T, respond func(int, http.ResponseWriter, *http.Request), budget llm.BudgetChecker, apis ...string) *stack {
	t.Helper()
	prov := llmtest.NewProvider(t, respond)
	rec := &gwtest.Recorder{}
	gw := gwtest.Gateway(t, gwtest.Config(prov.URL), rec, budget)
	cat := &atomic.Pointer[prompt.Catalog]{}
	cat.Store(catalog(t, apis...))
	runner := prompt.NewRunner(gw, cat.Load, prompt.RunnerOptions{})
	in := gwtest.NewIngress(t, gwtest.NewOrch(), promptapi.Routes(runner, promptapi.RoutesOptions{}))
	return &stack{prov: prov, in: in, rec: rec, cat: cat}
}

func catalog(t *testing.T, files ...string) *prompt.Catalog {
	t.Helper()
	m := map[string]string{}
	for i, f := range files {
		m[filepath.Join("prompts", string(rune('a'+i))+".yaml")] = f
	}
	c, err := prompt.Load(writeDir(t, m), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// userMessages returns the messages the provider received in request n.
func (s *stack) messages(t *testing.T, n int) []llm.Message {
	t.Helper()
	var req llm.ChatRequest
	if err := json.Unmarshal(s.prov.Requests()[n].Body, &req); err != nil {
		t.Fatal(err)
	}
	return req.Messages
}

func TestRunTextAPI(t *testing.T) {
	s := newStack(t, llmtest.JSON(200, llmtest.ChatAnswer("A short summary.")), nil, summarizeYAML)
	resp, b := s.in.Do(t, "submitter", "POST", "/v1/apis/summarize", `{"text":"Gateflow runs orchestrations."}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var res prompt.Result
	_ = json.Unmarshal(b, &res)
	if res.Output != "A short summary." || res.API != "summarize" || res.Version != "1" || res.Model != "local/m1" || res.Usage.TotalTokens != 29 || res.Attempts != 1 {
		t.Errorf("result %+v", res)
	}
	msgs := s.messages(t, 0)
	if len(msgs) != 2 || msgs[0].Text() != "You write summaries of at most 50 words." || msgs[1].Text() != "Summarize:\nGateflow runs orchestrations.\n" {
		t.Errorf("rendered %+v", msgs)
	}
	var sent map[string]any
	_ = json.Unmarshal(s.prov.Requests()[0].Body, &sent)
	if sent["temperature"] != 0.2 || sent["max_tokens"] != float64(300) {
		t.Errorf("request %v", sent)
	}
	models := s.rec.Kind(calls.KindModel)
	if len(models) != 1 || models[0].Tenant != "acme" || models[0].Labels["prompt_api"] != "summarize" || models[0].Labels["model"] != "smart" {
		t.Errorf("records %+v", models)
	}
	// The model role may run it; analysts may only list.
	if resp, b := s.in.Do(t, "model", "POST", "/v1/apis/summarize?version=1", `{"text":"x","words":3}`); resp.StatusCode != 200 {
		t.Errorf("model key: %d %s", resp.StatusCode, b)
	}
	if resp, _ := s.in.Do(t, "analyst", "POST", "/v1/apis/summarize", `{"text":"x"}`); resp.StatusCode != 403 {
		t.Errorf("analyst key: %d", resp.StatusCode)
	}
}

func TestVariablesValidation(t *testing.T) {
	s := newStack(t, llmtest.JSON(200, llmtest.ChatAnswer("x")), nil, summarizeYAML)
	cases := []struct {
		body   string
		status int
		code   string
		paths  []string
	}{
		{`{}`, 422, "validation_failed", []string{"variables"}},
		{`{"text":""}`, 422, "validation_failed", []string{"variables.text"}},
		{`{"text":"x","words":"ten","extra":1}`, 422, "validation_failed", []string{"variables", "variables.words"}},
		{`{"text":`, 400, "invalid_json", nil},
		{`["text"]`, 422, "validation_failed", []string{"variables"}},
	}
	for _, tc := range cases {
		resp, b := s.in.Do(t, "submitter", "POST", "/v1/apis/summarize", tc.body)
		var e struct {
			Error struct {
				Code    string
				Details []struct{ Path, Message string }
			}
		}
		_ = json.Unmarshal(b, &e)
		var paths []string
		for _, d := range e.Error.Details {
			paths = append(paths, d.Path)
		}
		if resp.StatusCode != tc.status || e.Error.Code != tc.code || (tc.paths != nil && strings.Join(paths, ",") != strings.Join(tc.paths, ",")) {
			t.Errorf("%s: %d %s", tc.body, resp.StatusCode, b)
		}
	}
	if len(s.prov.Requests()) != 0 {
		t.Errorf("invalid variables reached the model")
	}
}

func TestOutputSchema(t *testing.T) {
	good := llmtest.ChatAnswer("```json\n{\"city\": \"Lyon\", \"population\": 522250}\n```")
	bad := llmtest.ChatAnswer(`{"city": "Lyon", "population": "about half a million"}`)
	t.Run("valid", func(t *testing.T) {
		s := newStack(t, llmtest.JSON(200, good), nil, extractYAML)
		resp, b := s.in.Do(t, "submitter", "POST", "/v1/apis/extract", `{"text":"Lyon has 522250 inhabitants."}`)
		var res struct {
			Output   map[string]any
			Attempts int
		}
		_ = json.Unmarshal(b, &res)
		if resp.StatusCode != 200 || res.Output["city"] != "Lyon" || res.Output["population"] != float64(522250) || res.Attempts != 1 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var sent struct {
			ResponseFormat struct {
				Type       string
				JSONSchema struct {
					Name   string
					Schema map[string]any
				} `json:"json_schema"`
			} `json:"response_format"`
		}
		_ = json.Unmarshal(s.prov.Requests()[0].Body, &sent)
		if sent.ResponseFormat.Type != "json_schema" || sent.ResponseFormat.JSONSchema.Name != "extract" || sent.ResponseFormat.JSONSchema.Schema["required"] == nil {
			t.Errorf("response_format %+v", sent.ResponseFormat)
		}
	})
	t.Run("retried once", func(t *testing.T) {
		s := newStack(t, func(n int, w http.ResponseWriter, r *http.Request) {
			body := bad
			if n > 0 {
				body = good
			}
			llmtest.JSON(200, body)(n, w, r)
		}, nil, extractYAML)
		resp, b := s.in.Do(t, "submitter", "POST", "/v1/apis/extract", `{"text":"Lyon"}`)
		var res struct {
			Attempts int
			Usage    llm.Usage
		}
		_ = json.Unmarshal(b, &res)
		if resp.StatusCode != 200 || res.Attempts != 2 || res.Usage.TotalTokens != 58 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		msgs := s.messages(t, 1)
		if len(msgs) != 3 || msgs[1].Role != "assistant" || !strings.Contains(msgs[2].Text(), "output.population") {
			t.Errorf("retry messages %+v", msgs)
		}
	})
	t.Run("fails twice", func(t *testing.T) {
		s := newStack(t, llmtest.JSON(200, bad), nil, extractYAML)
		resp, b := s.in.Do(t, "submitter", "POST", "/v1/apis/extract", `{"text":"Lyon"}`)
		var e struct {
			Error struct {
				Code    string
				Message string
				Details []struct{ Path, Message string }
			}
		}
		_ = json.Unmarshal(b, &e)
		if resp.StatusCode != 502 || e.Error.Code != "invalid_model_output" || len(e.Error.Details) == 0 || e.Error.Details[0].Path != "output.population" {
			t.Errorf("%d %s", resp.StatusCode, b)
		}
		if n := len(s.prov.Requests()); n != 2 {
			t.Errorf("%d model calls, want 2", n)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		s := newStack(t, llmtest.JSON(200, llmtest.ChatAnswer("Lyon, about 500k")), nil, extractYAML)
		resp, b := s.in.Do(t, "submitter", "POST", "/v1/apis/extract", `{"text":"Lyon"}`)
		if resp.StatusCode != 502 || !strings.Contains(string(b), `"path":"output"`) {
			t.Errorf("%d %s", resp.StatusCode, b)
		}
	})
}

func TestTenantsListingAndOpenAPI(t *testing.T) {
	restricted := strings.Replace(extractYAML, "name: extract", "name: extract\ntenants: [other]", 1)
	s := newStack(t, llmtest.JSON(200, llmtest.ChatAnswer("ok")), nil, summarizeYAML, restricted)

	list := func(key string) []string {
		_, b := s.in.Do(t, key, "GET", "/v1/apis", "")
		var l struct {
			Items []struct {
				Name, Version, Path string
				Variables           map[string]any
			}
		}
		_ = json.Unmarshal(b, &l)
		var names []string
		for _, it := range l.Items {
			names = append(names, it.Name+"@"+it.Version)
			if it.Variables["type"] != "object" {
				t.Errorf("listed without its schema: %s", b)
			}
		}
		return names
	}
	if got := strings.Join(list("analyst"), ","); got != "summarize@1" {
		t.Errorf("acme sees %s", got)
	}
	if got := strings.Join(list("other"), ","); got != "extract@2,summarize@1" {
		t.Errorf("other sees %s", got)
	}
	if resp, _ := s.in.Do(t, "submitter", "POST", "/v1/apis/extract", `{"text":"x"}`); resp.StatusCode != 404 {
		t.Errorf("restricted API: %d", resp.StatusCode)
	}
	if resp, _ := s.in.Do(t, "submitter", "GET", "/v1/apis/summarize?version=9", ""); resp.StatusCode != 404 {
		t.Errorf("unknown version: %d", resp.StatusCode)
	}
	if resp, b := s.in.Do(t, "submitter", "GET", "/v1/apis/summarize?v=1", ""); resp.StatusCode != 400 {
		t.Errorf("unknown query parameter: %d %s", resp.StatusCode, b)
	}

	doc := func() map[string]map[string]any {
		_, b := s.in.Do(t, "", "GET", "/v1/openapi.json", "")
		var d struct{ Paths map[string]map[string]any }
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		return d.Paths
	}
	paths := doc()
	op, _ := paths["/v1/apis/summarize"]["post"].(map[string]any)
	if op == nil || paths["/v1/apis/extract"] != nil || paths["/v1/apis/{name}"]["post"] == nil {
		t.Fatalf("paths %v", paths)
	}
	reqSchema := op["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
	if reqSchema["required"].([]any)[0] != "text" {
		t.Errorf("request schema %v", reqSchema)
	}
	// A reload shows at once.
	s.cat.Store(catalog(t, summarizeYAML, strings.Replace(extractYAML, "name: extract", "name: extract2", 1)))
	paths = doc()
	out := paths["/v1/apis/extract2"]["post"].(map[string]any)["responses"].(map[string]any)["200"].(map[string]any)
	schema := out["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
	if schema["properties"].(map[string]any)["output"].(map[string]any)["required"] == nil {
		t.Errorf("output schema not documented: %v", schema)
	}
}

func TestBudgetThroughPromptAPI(t *testing.T) {
	budgets := llm.NewBudgets(spend(10), llm.LimitFunc(func(string) (int64, int64) { return 0, 5 }), nil, llm.BudgetPolicy{})
	s := newStack(t, llmtest.JSON(200, llmtest.ChatAnswer("x")), budgets, summarizeYAML)
	resp, b := s.in.Do(t, "submitter", "POST", "/v1/apis/summarize", `{"text":"x"}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "monthly token budget") {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
}

type spend int64

func (s spend) TokensSince(context.Context, string, time.Time) (int64, error) { return int64(s), nil }
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
