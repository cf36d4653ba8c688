package prompt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/workflows/definition"
)

// DefaultTimeout bounds one run when neither the API nor the runner says.
const DefaultTimeout = 5 * time.Minute

// MaxVariablesBytes bounds the variables of one run.
const MaxVariablesBytes = 4 << 20

// ErrNotFound is wrapped by Run's error for an API that does not exist for
// the tenant (or not in that version).
var ErrNotFound = errors.New("prompt API not found")

// OutputError is a model answer that is not what the API promises (not
// JSON, or failing the output schema) even after the one retry.
type OutputError struct {
	API string
	// Problems locate what is wrong ("output", "output.items[0].sku").
	Problems []definition.Problem
	// Answer is the model's last answer, cut to 2 KiB, for logs.
	Answer string
}

func (e *OutputError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "prompt API %s: the model's answer does not match the output schema", e.API)
	for i, p := range e.Problems {
		if i == 3 {
			fmt.Fprintf(&b, " (and %d more)", len(e.Problems)-3)
			break
		}
		b.WriteString("; ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Gateway is what a Runner needs of *llm.Gateway.
type Gateway interface {
	Chat(ctx context.Context, req *llm.ChatRequest, opts llm.CallOptions) (*llm.ChatResponse, error)
	Models() []string
}

// RunnerOptions tune a Runner; zero values take the defaults.
type RunnerOptions struct {
	// Timeout bounds one run when the API sets none (default 5 min).
	Timeout time.Duration
	// Log receives debug logs of failed runs; nil discards them.
	Log *slog.Logger
}

// Runner runs prompt APIs through the model gateway. It is safe for
// concurrent use.
type Runner struct {
	gw      Gateway
	catalog func() *Catalog
	timeout time.Duration
	log     *slog.Logger
}

// NewRunner returns a runner calling gw; catalog gives the current prompt
// APIs (FromRegistry, or a fixed catalog in tests).
func NewRunner(gw Gateway, catalog func() *Catalog, opts RunnerOptions) *Runner {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Runner{gw: gw, catalog: catalog, timeout: opts.Timeout, log: opts.Log}
}

// Catalog returns the current catalog.
func (r *Runner) Catalog() *Catalog { return r.catalog() }

// Models lists the gateway's models (for unknown-model hints).
func (r *Runner) Models() []string { return r.gw.Models() }

// Call is one run of a prompt API.
type Call struct {
	// Tenant, KeyID and RequestID say who calls (budget, call records).
	Tenant    string
	KeyID     string
	RequestID string
	Name      string
	// Version "" runs the latest version.
	Version string
	// Variables is a JSON object; empty means {}.
	Variables json.RawMessage
	// Labels are added to the model call records.
	Labels map[string]string
}

// Result is a run's answer.
type Result struct {
	API     string `json:"api"`
	Version string `json:"version"`
	// Model is the provider/model that answered.
	Model string `json:"model"`
	// Output is the answer: the decoded JSON for JSON APIs, else the text.
	Output       any       `json:"output"`
	FinishReason string    `json:"finish_reason,omitempty"`
	Usage        llm.Usage `json:"usage"`
	// Attempts is 2 when the first answer failed the output schema.
	Attempts int `json:"attempts"`
}

// Resolve returns the API a call runs.
func (r *Runner) Resolve(tenant, name, version string) (*API, error) {
	a, ok := r.catalog().Get(tenant, name, version)
	if !ok {
		if version != "" {
			return nil, fmt.Errorf("%w: %s version %s", ErrNotFound, name, version)
		}
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return a, nil
}

// Run validates the variables, renders the templates, calls the model and
// checks its answer. A JSON answer that fails the output schema (or is not
// JSON) is asked for once more, with the problems; then the run fails with
// an *OutputError. Invalid variables are a *definition.ValidationError
// located from "variables"; gateway failures are the gateway's errors.
func (r *Runner) Run(ctx context.Context, c Call) (*Result, error) {
	a, err := r.Resolve(c.Tenant, c.Name, c.Version)
	if err != nil {
		return nil, err
	}
	vars, err := a.variables(c.Variables)
	if err != nil {
		return nil, err
	}
	req, err := a.request(vars)
	if err != nil {
		return nil, err
	}
	timeout := a.Timeout.Std()
	if timeout <= 0 {
		timeout = r.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	labels := make(map[string]string, len(c.Labels)+2)
	for k, v := range c.Labels {
		labels[k] = v
	}
	labels["prompt_api"] = a.Name
	labels["prompt_version"] = a.Version
	// A prompt API visible to the tenant grants its model: the operator chose
	// it, the caller did not.
	opts := llm.CallOptions{Tenant: c.Tenant, KeyID: c.KeyID, RequestID: c.RequestID, Labels: labels, Granted: true}

	res := &Result{API: a.Name, Version: a.Version}
	for attempt := 1; ; attempt++ {
		resp, err := r.gw.Chat(ctx, req, opts)
		if err != nil {
			return nil, err
		}
		res.Attempts = attempt
		res.Model = resp.Model
		res.Usage = addUsage(res.Usage, resp.Usage)
		var msg llm.Message
		if len(resp.Choices) > 0 {
			msg = resp.Choices[0].Message
			res.FinishReason = resp.Choices[0].FinishReason
		}
		text := msg.Text()
		if !a.JSON() {
			res.Output = text
			return res, nil
		}
		out, problems := a.checkOutput(text)
		if len(problems) == 0 {
			res.Output = out
			return res, nil
		}
		r.log.Debug("prompt API answer failed its output schema", "api", a.Ref(), "attempt", attempt, "problems", len(problems))
		if attempt == 2 {
			return nil, &OutputError{API: a.Ref(), Problems: problems, Answer: cut(text, 2048)}
		}
		// Ask again, telling the model what was wrong: one more sample
		// with the reasons fixes most near misses.
		retry := *req
		retry.Messages = append(append([]llm.Message(nil), req.Messages...),
			llm.TextMessage("assistant", text),
			llm.TextMessage("user", feedback(problems)))
		req = &retry
		opts.Labels = copyWith(labels, "output_retry", "1")
		if opts.RequestID != "" {
			opts.RequestID += ":2"
		}
	}
}

// variables checks the variables against the schema and returns them
// decoded, with the schema's top-level defaults filled in.
func (a *API) variables(raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	ve := &definition.ValidationError{Subject: "variables"}
	if len(raw) > MaxVariablesBytes {
		ve.Errorf("variables", "larger than %d bytes", MaxVariablesBytes)
		return nil, ve
	}
	if ps := validate(a.vars, raw, "variables"); len(ps) > 0 {
		ve.Problems = ps
		return nil, ve
	}
	var vars map[string]any
	if err := json.Unmarshal(raw, &vars); err != nil || vars == nil {
		ve.Errorf("variables", "must be a JSON object")
		return nil, ve
	}
	for name, def := range a.defaults {
		if _, ok := vars[name]; !ok {
			var v any
			if json.Unmarshal(def, &v) == nil {
				vars[name] = v
			}
		}
	}
	return vars, nil
}

// request renders the templates into the model request.
func (a *API) request(vars map[string]any) (*llm.ChatRequest, error) {
	env := definition.Env{definition.EnvInput: vars}
	req := &llm.ChatRequest{Model: a.Model, Temperature: a.Temperature}
	if a.MaxTokens > 0 {
		n := a.MaxTokens
		req.MaxTokens = &n
	}
	if a.System != "" {
		s, err := definition.EvalString(a.System, env)
		if err != nil {
			return nil, templateError("system", err)
		}
		if strings.TrimSpace(s) != "" {
			req.Messages = append(req.Messages, llm.TextMessage("system", s))
		}
	}
	u, err := definition.EvalString(a.User, env)
	if err != nil {
		return nil, templateError("user", err)
	}
	req.Messages = append(req.Messages, llm.TextMessage("user", u))
	switch {
	case len(a.Output) > 0:
		b, _ := json.Marshal(map[string]any{"name": schemaName(a.Name), "schema": a.Output, "strict": false})
		req.ResponseFormat = &llm.ResponseFormat{Type: "json_schema", JSONSchema: b}
	case a.JSON():
		req.ResponseFormat = &llm.ResponseFormat{Type: "json_object"}
	}
	return req, nil
}

func templateError(field string, err error) error {
	ve := &definition.ValidationError{Subject: "variables"}
	ve.Errorf(field, "the template failed with these variables: %v", err)
	return ve
}

var schemaNameRe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// schemaName is the json_schema name OpenAI accepts (^[A-Za-z0-9_-]{1,64}$).
func schemaName(s string) string {
	s = schemaNameRe.ReplaceAllString(s, "_")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// checkOutput decodes a JSON answer (a Markdown code fence around it is
// tolerated) and validates it against the output schema.
func (a *API) checkOutput(text string) (any, []definition.Problem) {
	s := strings.TrimSpace(text)
	if strings.HasPrefix(s, "```") {
		s = strings.TrimPrefix(s, "```")
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:] // the info string ("json")
		}
		s = strings.TrimSuffix(strings.TrimSpace(s), "```")
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(s))
	if err != nil {
		return nil, []definition.Problem{{Path: "output", Message: "is not JSON: " + err.Error()}}
	}
	if a.out != nil {
		if ps := validateValue(a.out, inst, "output"); len(ps) > 0 {
			return nil, ps
		}
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, []definition.Problem{{Path: "output", Message: "is not JSON: " + err.Error()}}
	}
	return v, nil
}

// feedback is the message asking the model to correct its answer.
func feedback(ps []definition.Problem) string {
	var b strings.Builder
	b.WriteString("Your answer does not satisfy the required JSON schema:\n")
	for i, p := range ps {
		if i == 10 {
			break
		}
		fmt.Fprintf(&b, "- %s\n", p.String())
	}
	b.WriteString("Answer again with only the corrected JSON value, nothing else.")
	return b.String()
}

func addUsage(a, b llm.Usage) llm.Usage {
	return llm.Usage{
		PromptTokens:     a.PromptTokens + b.PromptTokens,
		CompletionTokens: a.CompletionTokens + b.CompletionTokens,
		TotalTokens:      a.TotalTokens + b.TotalTokens,
		CostUSD:          llm.RoundCost(a.CostUSD + b.CostUSD),
	}
}

func copyWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = v
	return out
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
