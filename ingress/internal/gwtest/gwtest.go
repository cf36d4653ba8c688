// Package gwtest holds test helpers of the model gateway's HTTP front ends
// (chatapi, prompt, mcpserver): a local provider speaking the OpenAI wire
// format with the recorded fixtures of activities/llm/testdata, a gateway
// over it, an in-memory orchestrator, API keys, and a real ingress.Server
// serving mounted groups on a loopback port. Only tests import it.
package gwtest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/ratelimit"
)

// Test keys by name.
var Keys = map[string]struct {
	Token  string
	Tenant string
	Roles  []string
	User   string
}{
	"submitter": {"gf_a00000000001_submittersecretsubmittersecret", "acme", []string{"submitter"}, ""},
	"approver":  {"gf_a00000000002_approversecretapproversecret00", "acme", []string{"approver"}, "alice"},
	"model":     {"gf_a00000000003_modelsecretmodelsecretmodel000", "acme", []string{"model"}, ""},
	"analyst":   {"gf_a00000000004_analystsecretanalystsecret0000", "acme", []string{"analyst"}, ""},
	"admin":     {"gf_a00000000005_adminsecretadminsecretadmin000", "acme", []string{"admin"}, "root"},
	"other":     {"gf_b00000000001_othersecretothersecretother000", "other", []string{"admin"}, ""},
}

// Token returns the bearer token of a test key.
func Token(name string) string { return Keys[name].Token }

// KeyStore holds the test keys.
func KeyStore(t testing.TB) *auth.Store {
	t.Helper()
	var keys []auth.Key
	for _, k := range Keys {
		keys = append(keys, auth.EntryFor(k.Token, k.Tenant, k.Roles, k.User))
	}
	st, err := auth.NewStore("", keys...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Recorder captures call records (the tests' one record sink).
type Recorder = recordtest.Sink

// Ingress is a real ingress server on a loopback port.
type Ingress struct {
	URL    string
	Server *ingress.Server
	Rec    *Recorder
}

// NewIngress serves the groups (and the built-in routes over orch) on
// 127.0.0.1 until the test ends.
func NewIngress(t testing.TB, orch ingress.Orchestrator, groups ...api.Group) *Ingress {
	t.Helper()
	return NewIngressWith(t, orch, nil, groups...)
}

// NewIngressWith is NewIngress with the server's config changed by mod
// (stream bounds, limits).
func NewIngressWith(t testing.TB, orch ingress.Orchestrator, mod func(*ingress.Config), groups ...api.Group) *Ingress {
	t.Helper()
	rec := &Recorder{}
	cfg := ingress.Config{KeyLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}, TenantLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := ingress.New(ingress.Deps{Orchestrator: orch, Keys: KeyStore(t), Recorder: rec, Log: slog.New(slog.DiscardHandler)}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if err := srv.Mount(g); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingress: %v", err)
		}
	})
	return &Ingress{URL: "http://" + ln.Addr().String(), Server: srv, Rec: rec}
}

// Do sends a request with the named key ("" for none) and returns the
// response with its body read.
func (in *Ingress) Do(t testing.TB, key, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	return in.DoHeaders(t, key, method, path, body, nil)
}

// DoHeaders is Do with extra request headers.
func (in *Ingress) DoHeaders(t testing.TB, key, method, path, body string, headers http.Header) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, in.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+Token(key))
	}
	for k, v := range headers {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// Config is a model registry with provider "local" (kind openai) at
// baseURL: models m1 and m2 (priced) and the alias "smart" -> [local/m1,
// local/m2]; one attempt round with short backoffs.
func Config(baseURL string) llm.Config {
	return llm.Config{
		Providers: map[string]llm.Provider{
			"local": {Kind: "openai", BaseURL: baseURL, APIKeyEnv: "GWTEST_KEY", Timeout: "10s", Models: map[string]llm.Model{
				"m1": {InputPerMTok: 1, OutputPerMTok: 2, ContextTokens: 100000},
				"m2": {InputPerMTok: 1, OutputPerMTok: 2},
			}},
		},
		Aliases: map[string]llm.Alias{"smart": llm.OrderedAlias("local/m1", "local/m2")},
		Retry:   llm.RetryPolicy{MaxAttempts: 1, InitialBackoff: "1ms", MaxBackoff: "2ms"},
	}
}

// ProviderKey is the credential the gateway sends to Provider.
const ProviderKey = llmtest.ProviderKey

// Gateway builds a gateway over cfg with a fixed credential and the
// recorder (and budget, when not nil).
func Gateway(t testing.TB, cfg llm.Config, rec llm.Recorder, budget llm.BudgetChecker) *llm.Gateway {
	t.Helper()
	gw, err := llm.NewGateway(cfg, llm.Deps{
		Recorder: rec,
		Budget:   budget,
		// The OpenAI auth error fixture echoes this key, as OpenAI does:
		// tests check that it is redacted.
		LookupEnv: func(string) (string, bool) { return ProviderKey, true },
	})
	if err != nil {
		t.Fatal(err)
	}
	return gw
}
