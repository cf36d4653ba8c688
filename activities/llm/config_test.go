package llm

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const sampleYAML = `
providers:
  openai:
    kind: openai
    api_key_env: OPENAI_API_KEY
    timeout: 60s
    models:
      gpt-4o-mini: {input_per_mtok: 0.15, output_per_mtok: 0.6, context_tokens: 128000}
  anthropic:
    kind: anthropic
    api_key_file: /run/secrets/anthropic
    models:
      sonnet: {name: claude-sonnet-4-5, input_per_mtok: 3, output_per_mtok: 15, context_tokens: 200000, max_output_tokens: 8192}
  local:
    kind: openai
    base_url: http://127.0.0.1:11434/v1
    stream_idle_timeout: 30s
    models:
      meta-llama/Llama-3.1-8B: {context_tokens: 8192, timeout: 5m}
aliases:
  smart: [anthropic/sonnet, openai/gpt-4o-mini]
retry: {max_attempts: 2, max_retry_after: 10s}
budget: {cache_ttl: 5s}
`

func TestConfigYAML(t *testing.T) {
	var cfg Config
	if err := yaml.Unmarshal([]byte(sampleYAML), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw, err := NewGateway(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	targets, err := gw.Targets("smart")
	if err != nil || strings.Join(targets, ",") != "anthropic/sonnet,openai/gpt-4o-mini" {
		t.Errorf("targets %v %v", targets, err)
	}
	if !gw.Has("local/meta-llama/Llama-3.1-8B") {
		t.Error("model names with a slash")
	}
	tg := gw.routes.Load().targets["anthropic/sonnet"]
	if tg.upstream != "claude-sonnet-4-5" || tg.maxOutput != 8192 || tg.prov.baseURL != "https://api.anthropic.com" || tg.timeout != DefaultTimeout {
		t.Errorf("target %+v", tg)
	}
	if l := gw.routes.Load().targets["local/meta-llama/Llama-3.1-8B"]; l.timeout.String() != "5m0s" || l.idleTimeout.String() != "30s" {
		t.Errorf("local target %+v", l)
	}
	if gw.routes.Load().retry.maxAttempts != 2 || gw.routes.Load().retry.maxRetryAfter.String() != "10s" {
		t.Errorf("retry %+v", gw.routes.Load().retry)
	}
	if got := gw.Models(); len(got) != 4 || got[0] != "anthropic/sonnet" {
		t.Errorf("models %v", got)
	}
	// Reload swaps the table; an invalid config is refused.
	if err := gw.Reload(Config{Providers: map[string]Provider{"x": {Kind: "nope"}}}); err == nil {
		t.Error("invalid reload accepted")
	}
	if !gw.Has("smart") {
		t.Error("refused reload changed the routes")
	}
	if err := gw.Reload(oneProvider(KindOpenAI, "", map[string]Model{"m": {}})); err != nil {
		t.Fatal(err)
	}
	if gw.Has("smart") || !gw.Has("p/m") {
		t.Error("reload not applied")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := Config{
		Providers: map[string]Provider{
			"x":   {Kind: "nope", Models: map[string]Model{"m": {}}},
			"br":  {Kind: KindBedrock, Models: map[string]Model{"m": {}}},
			"vx":  {Kind: KindVertex, APIKeyEnv: "K", Models: map[string]Model{"m": {Catalogue: "vertex/not-a-model"}}},
			"az":  {Kind: KindAzure, DropParams: []string{"temperature", "colour"}, Models: map[string]Model{"m": {}}},
			"y":   {Kind: KindOpenAI, BaseURL: "ftp://host", Timeout: "soon", Models: map[string]Model{"m": {InputPerMTok: -1}}},
			"z":   {Kind: KindGemini, APIKeyEnv: "A", APIKeyFile: "/b"},
			"a/b": {Kind: KindOpenAI, Models: map[string]Model{"m": {}}},
		},
		Aliases: map[string]Alias{"fast": OrderedAlias("y/m", "nope/m"), "empty": {}, "p/q": OrderedAlias("y/m"),
			"lb": {Strategy: "round_robin", Targets: []AliasTarget{{Model: "y/m", Weight: -1}, {Model: "y/m"}}, Fallbacks: []string{"x/none"},
				Cache: &AliasCache{Enabled: true, TTL: "forever"}}},
		Retry:     RetryPolicy{MaxRetryAfter: "-1s"},
		Catalogue: map[string]CatalogueEntry{"flat": {}, "x/m": {AsOf: "last week", Mode: "image"}},
		Cache:     CachePolicy{TTL: "1 hour", MaxMB: -1},
		Cooldown:  CooldownPolicy{Duration: "-1s", Failures: -2},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`kind "nope"`, "ftp://host", "timeout", "negative", "not both", "no models", `"nope/m"`, `alias "empty"`, `"p/q"`,
		"retry.max_retry_after", `provider "a/b"`, `"br": kind bedrock needs region`, `"vx": kind vertex needs project`,
		"Application Default Credentials", `catalogue entry "vertex/not-a-model" is unknown`, `"az": kind azure needs base_url`,
		`drop_params: "colour"`, `strategy "round_robin"`, "weight must not be negative", `"y/m" is listed twice`, `fallback "x/none"`,
		`cache.ttl`, `catalogue "flat": keys are`, `as_of "last week"`, `mode "image"`, "cache.ttl:", "cache.max_mb", "cooldown.duration",
		"cooldown.failures"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := NewGateway(bad, Deps{}); err == nil {
		t.Error("NewGateway accepted an invalid config")
	}
}

func TestCredentialFile(t *testing.T) {
	clock := newFakeClock()
	reads := 0
	value := "key-one"
	c := newCredential(Provider{APIKeyFile: "/run/secrets/k"}, nil, func(string) ([]byte, error) {
		reads++
		return []byte(value + "\n"), nil
	}, clock.Now)
	for i := 0; i < 3; i++ {
		if v, err := c.get(); err != nil || v != "key-one" {
			t.Fatalf("get %q %v", v, err)
		}
	}
	if reads != 1 {
		t.Errorf("%d reads", reads)
	}
	value = "key-two"
	clock.Advance(secretFileTTL)
	if v, _ := c.get(); v != "key-two" {
		t.Errorf("rotation not picked up: %q", v)
	}
	none := newCredential(Provider{}, nil, nil, clock.Now)
	if v, err := none.get(); v != "" || err != nil {
		t.Errorf("no credential: %q %v", v, err)
	}
}

func TestEstimates(t *testing.T) {
	req := &ChatRequest{Messages: []Message{
		TextMessage("system", strings.Repeat("a", 600)),
		{Role: "user", Content: []byte(`[{"type":"text","text":"` + strings.Repeat("b", 300) + `"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]`)},
	}}
	s := measurePrompt(req)
	if s.textBytes != 900 || s.images != 1 || s.messages != 2 {
		t.Fatalf("size %+v", s)
	}
	if s.lower() != 150 {
		t.Errorf("lower %d", s.lower())
	}
	if want := int64(300 + 8 + 3 + tokensPerImage); s.upper() != want {
		t.Errorf("upper %d, want %d", s.upper(), want)
	}
}
