// Package llm puts AI model providers behind one request/response format
// (OpenAI chat-completions shaped), with routing, fallbacks, budgets and
// token/cost accounting.
package llm

import (
	"encoding/json"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the model registry: the `models:` section of gateflow.yaml.
type Config struct {
	// Providers by name; a model is addressed as "provider/model".
	Providers map[string]Provider `yaml:"providers" json:"providers"`
	// Aliases map a name to "provider/model" targets: a plain list is tried
	// in order (the second and later targets are fallbacks); the object
	// form spreads load across its targets (Alias.Strategy) and may add
	// fallbacks and a response cache.
	Aliases map[string]Alias `yaml:"aliases,omitempty" json:"aliases,omitempty"`
	// Retry bounds the gateway's own retries (the model activity leaves
	// retries to Temporal and only falls back across alias targets).
	Retry RetryPolicy `yaml:"retry,omitempty" json:"retry,omitempty"`
	// Budget tunes how per-tenant token budgets are enforced.
	Budget BudgetPolicy `yaml:"budget,omitempty" json:"budget,omitempty"`
	// Catalogue overrides or extends the built-in model catalogue
	// (catalogue.json): keys are "<catalogue>/<model>" such as
	// "openai/gpt-4o"; a field set here replaces the built-in one, an
	// unknown key adds a model. No release is needed for a new price.
	Catalogue map[string]CatalogueEntry `yaml:"catalogue,omitempty" json:"catalogue,omitempty"`
	// Cache is the exact-match response cache (see CachePolicy).
	Cache CachePolicy `yaml:"cache,omitempty" json:"cache,omitempty"`
	// Cooldown is how long a failing deployment is left out of balancing
	// (Envoy's outlier detection).
	Cooldown CooldownPolicy `yaml:"cooldown,omitempty" json:"cooldown,omitempty"`
}

// RetryPolicy is how the gateway retries a call whose targets all failed
// with a retryable error (rate limit, overloaded, 5xx, timeout, connection).
// Durations are Go duration strings; zero values take the defaults shown.
type RetryPolicy struct {
	// MaxAttempts is the number of rounds over the targets (default 3; 1
	// disables retries, fallbacks still happen).
	MaxAttempts int `yaml:"max_attempts,omitempty" json:"max_attempts,omitempty"`
	// InitialBackoff is the wait before the second round (default "500ms"),
	// doubled each round up to MaxBackoff (default "8s"), with jitter.
	InitialBackoff string `yaml:"initial_backoff,omitempty" json:"initial_backoff,omitempty"`
	MaxBackoff     string `yaml:"max_backoff,omitempty" json:"max_backoff,omitempty"`
	// MaxRetryAfter caps how long a provider's Retry-After is honoured
	// (default "30s"); a longer one ends the retries and the error carries
	// the provider's delay back to the caller.
	MaxRetryAfter string `yaml:"max_retry_after,omitempty" json:"max_retry_after,omitempty"`
}

// BudgetPolicy tunes token budget enforcement (see Budgets).
type BudgetPolicy struct {
	// CacheTTL is how long a tenant's spend read from analytics is reused
	// (default "10s").
	CacheTTL string `yaml:"cache_ttl,omitempty" json:"cache_ttl,omitempty"`
	// IngestLag is how long a call record may take to reach the analytics
	// rollups (default "60s"); local spend younger than that is added to
	// the analytics figure.
	IngestLag string `yaml:"ingest_lag,omitempty" json:"ingest_lag,omitempty"`
	// MaxStale is how long the last known spend is used when analytics
	// cannot be read (default "5m"); after that budgeted calls are refused.
	MaxStale string `yaml:"max_stale,omitempty" json:"max_stale,omitempty"`
}

// Provider is one model provider endpoint.
type Provider struct {
	// Kind is the wire format and, for presets, the vendor: "openai" (any
	// OpenAI-compatible server), "anthropic", "gemini", "azure" (Azure
	// OpenAI), "bedrock" (AWS Bedrock Converse), "vertex" (Gemini on Vertex
	// AI), "cohere", or a preset of an OpenAI-compatible vendor ("groq",
	// "mistral", "deepseek", ...; Presets lists them) that brings its base
	// URL, credential variable and quirks.
	Kind    string `yaml:"kind" json:"kind"`
	BaseURL string `yaml:"base_url" json:"base_url"`
	// APIKeyEnv names the environment variable holding the credential;
	// APIKeyFile names a file holding it (a mounted secret). The value is
	// never logged nor written to records.
	APIKeyEnv  string `yaml:"api_key_env,omitempty" json:"api_key_env,omitempty"`
	APIKeyFile string `yaml:"api_key_file,omitempty" json:"api_key_file,omitempty"`
	// Timeout is a Go duration string such as "60s".
	Timeout string           `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Models  map[string]Model `yaml:"models" json:"models"`
	// StreamIdleTimeout bounds the silence between two stream events once a
	// stream has started (default: the timeout).
	StreamIdleTimeout string `yaml:"stream_idle_timeout,omitempty" json:"stream_idle_timeout,omitempty"`
	// Headers are sent with every request (e.g. OpenAI-Organization,
	// anthropic-beta). Never put credentials here: they are not redacted.
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// APIVersion is the anthropic-version header for kind "anthropic"
	// (default "2023-06-01").
	APIVersion string `yaml:"api_version,omitempty" json:"api_version,omitempty"`
	// RequestIDHeader carries the gateway's stable request id to the
	// provider (default "X-Client-Request-Id" for kind "openai", none for
	// the others, which document no such header).
	RequestIDHeader string `yaml:"request_id_header,omitempty" json:"request_id_header,omitempty"`
	// Region is the AWS region of kind "bedrock" (e.g. "us-east-1").
	Region string `yaml:"region,omitempty" json:"region,omitempty"`
	// Project and Location are the Google Cloud project and location of
	// kind "vertex" (location default "global").
	Project  string `yaml:"project,omitempty" json:"project,omitempty"`
	Location string `yaml:"location,omitempty" json:"location,omitempty"`
	// DropParams names request parameters never sent to this provider, in
	// addition to those its preset drops (e.g. [seed, parallel_tool_calls]
	// for a server that refuses them).
	DropParams []string `yaml:"drop_params,omitempty" json:"drop_params,omitempty"`
	// Catalogue is the catalogue prefix its models' figures are looked up
	// under (default: the kind for hosted vendors, none for a kind
	// "openai" provider with its own base_url, e.g. a local server).
	Catalogue string `yaml:"catalogue,omitempty" json:"catalogue,omitempty"`
}

// Model describes one model of a provider. Figures left out (zero) come
// from the catalogue entry of the model, when there is one.
type Model struct {
	// Prices in US dollars per million tokens; CachedInputPerMTok is the
	// price of prompt tokens read from the provider's prompt cache (default:
	// the input price).
	InputPerMTok       float64 `yaml:"input_per_mtok,omitempty" json:"input_per_mtok,omitempty"`
	OutputPerMTok      float64 `yaml:"output_per_mtok,omitempty" json:"output_per_mtok,omitempty"`
	CachedInputPerMTok float64 `yaml:"cached_input_per_mtok,omitempty" json:"cached_input_per_mtok,omitempty"`
	// ContextTokens is the context window; requests estimated above it are
	// refused before they are sent.
	ContextTokens int `yaml:"context_tokens,omitempty" json:"context_tokens,omitempty"`
	// Name is the provider's id of the model when it differs from the key
	// (e.g. key "sonnet", name "claude-sonnet-4-5").
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Timeout of one attempt, overriding the provider's.
	Timeout string `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// MaxOutputTokens is sent when a request sets no max_tokens and the
	// provider requires one (Anthropic); default 4096.
	MaxOutputTokens int `yaml:"max_output_tokens,omitempty" json:"max_output_tokens,omitempty"`
	// Catalogue names the catalogue entry of the model
	// ("<catalogue>/<model>") when it is not the provider's catalogue and
	// the model's name, e.g. "openai/gpt-4o" for an Azure deployment.
	Catalogue string `yaml:"catalogue,omitempty" json:"catalogue,omitempty"`
}

// Has reports whether name is an alias or a known "provider/model".
func (c Config) Has(name string) bool {
	if _, ok := c.Aliases[name]; ok {
		return true
	}
	prov, model, ok := strings.Cut(name, "/")
	if !ok {
		return false
	}
	p, ok := c.Providers[prov]
	if !ok {
		return false
	}
	_, ok = p.Models[model]
	return ok
}

// Names lists every alias and "provider/model", sorted.
func (c Config) Names() []string {
	var out []string
	for a := range c.Aliases {
		out = append(out, a)
	}
	for pn, p := range c.Providers {
		for mn := range p.Models {
			out = append(out, pn+"/"+mn)
		}
	}
	sort.Strings(out)
	return out
}

// Balancing strategies of an alias (Alias.Strategy).
const (
	// StrategyOrdered tries the targets in their order: the first healthy
	// one takes every call, the others are fallbacks (the default).
	StrategyOrdered = "ordered"
	// StrategyWeighted spreads calls at random in proportion to the
	// targets' weights.
	StrategyWeighted = "weighted"
	// StrategyLeastBusy sends each call to the target with the fewest
	// calls in flight on this replica.
	StrategyLeastBusy = "least_busy"
	// StrategyLatency sends each call to the target with the lowest recent
	// latency (an exponentially weighted average of this replica's calls;
	// targets without a measurement are tried first).
	StrategyLatency = "latency"
)

// Alias is a model name that routes to several "provider/model" targets.
// In gateflow.yaml it is either a list (ordered targets, the historical
// form) or an object:
//
//	smart: [anthropic/sonnet, openai/gpt-4o]        # in order
//	gpt4o:
//	  strategy: weighted                            # ordered | weighted | least_busy | latency
//	  targets: [{model: azure-east/gpt-4o, weight: 3}, azure-west/gpt-4o]
//	  fallbacks: [openai/gpt-4o]                    # after every target failed
//	  cache: {ttl: 1h}                              # or cache: true
type Alias struct {
	// Strategy chooses the order in which a call tries the targets
	// (default "ordered"). Targets cooling down after failures come last.
	Strategy string `yaml:"strategy,omitempty" json:"strategy,omitempty"`
	// Targets share the alias's calls.
	Targets []AliasTarget `yaml:"targets" json:"targets"`
	// Fallbacks are tried in order once every target has failed.
	Fallbacks []string `yaml:"fallbacks,omitempty" json:"fallbacks,omitempty"`
	// Cache, when enabled, caches every answer of the alias (not only
	// deterministic requests).
	Cache *AliasCache `yaml:"cache,omitempty" json:"cache,omitempty"`
}

// AliasTarget is one target of an alias: a "provider/model" and its weight
// for the weighted strategy (default 1). A bare string is a target of
// weight 1.
type AliasTarget struct {
	Model  string `yaml:"model" json:"model"`
	Weight int    `yaml:"weight,omitempty" json:"weight,omitempty"`
}

// AliasCache turns on the response cache for every call of an alias:
// `cache: true` or `cache: {ttl: 1h}`.
type AliasCache struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// TTL overrides the cache's default time to live.
	TTL string `yaml:"ttl,omitempty" json:"ttl,omitempty"`
}

// OrderedAlias is the alias that tries targets in order, the list form.
func OrderedAlias(targets ...string) Alias {
	a := Alias{Targets: make([]AliasTarget, len(targets))}
	for i, t := range targets {
		a.Targets[i] = AliasTarget{Model: t}
	}
	return a
}

// Names returns the alias's targets then fallbacks, in order.
func (a Alias) Names() []string {
	out := make([]string, 0, len(a.Targets)+len(a.Fallbacks))
	for _, t := range a.Targets {
		out = append(out, t.Model)
	}
	return append(out, a.Fallbacks...)
}

// UnmarshalJSON reads the list or the object form.
func (a *Alias) UnmarshalJSON(b []byte) error {
	var list []AliasTarget
	if err := json.Unmarshal(b, &list); err == nil {
		*a = Alias{Targets: list}
		return nil
	}
	type plain Alias
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*a = Alias(p)
	return nil
}

// UnmarshalYAML reads the list or the object form.
func (a *Alias) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		var list []AliasTarget
		if err := n.Decode(&list); err != nil {
			return err
		}
		*a = Alias{Targets: list}
		return nil
	}
	type plain Alias
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*a = Alias(p)
	return nil
}

// UnmarshalJSON reads "provider/model" or {"model", "weight"}.
func (t *AliasTarget) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = AliasTarget{Model: s}
		return nil
	}
	type plain AliasTarget
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*t = AliasTarget(p)
	return nil
}

// UnmarshalYAML reads "provider/model" or {model, weight}.
func (t *AliasTarget) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*t = AliasTarget{Model: n.Value}
		return nil
	}
	type plain AliasTarget
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*t = AliasTarget(p)
	return nil
}

// UnmarshalJSON reads true/false or {"ttl": ...} (enabled).
func (c *AliasCache) UnmarshalJSON(b []byte) error {
	var on bool
	if err := json.Unmarshal(b, &on); err == nil {
		*c = AliasCache{Enabled: on}
		return nil
	}
	var p struct {
		Enabled *bool  `json:"enabled"`
		TTL     string `json:"ttl"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = AliasCache{Enabled: p.Enabled == nil || *p.Enabled, TTL: p.TTL}
	return nil
}

// UnmarshalYAML reads true/false or {ttl: ...} (enabled).
func (c *AliasCache) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var on bool
		if err := n.Decode(&on); err != nil {
			return err
		}
		*c = AliasCache{Enabled: on}
		return nil
	}
	var p struct {
		Enabled *bool  `yaml:"enabled"`
		TTL     string `yaml:"ttl"`
	}
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = AliasCache{Enabled: p.Enabled == nil || *p.Enabled, TTL: p.TTL}
	return nil
}

// CachePolicy is the exact-match response cache: per replica, bounded in
// bytes, entries scoped to the tenant that asked and kept for a TTL. A
// request is cached when the caller asks for it (Gateflow-Cache: on), its
// alias has `cache` on, or it is deterministic (temperature 0 and no tools)
// and Deterministic is not false. Embeddings are deterministic.
type CachePolicy struct {
	// Disabled turns the cache off (it is on by default).
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	// MaxMB bounds the memory of the cached answers (default 64).
	MaxMB int `yaml:"max_mb,omitempty" json:"max_mb,omitempty"`
	// TTL is how long an answer is served (default "10m"); MaxTTL caps a
	// caller's Gateflow-Cache-TTL (default "24h").
	TTL    string `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	MaxTTL string `yaml:"max_ttl,omitempty" json:"max_ttl,omitempty"`
	// Deterministic caches requests with temperature 0 and no tools
	// without being asked (default true).
	Deterministic *bool `yaml:"deterministic,omitempty" json:"deterministic,omitempty"`
	// MaxEntryKB bounds one cached answer (default 1024); larger answers
	// are not cached.
	MaxEntryKB int `yaml:"max_entry_kb,omitempty" json:"max_entry_kb,omitempty"`
}

// CooldownPolicy is how a failing deployment (a "provider/model" target)
// is left out of balancing for a while, per replica — Envoy's outlier
// detection. A 429 or 503 with Retry-After cools the target down for that
// long and it is not called before (a call whose every target is cooling
// that way fails at once with the earliest Retry-After, or waits for it
// when retries allow). Consecutive 5xx, timeouts and connection failures
// eject it for Duration, doubling with each ejection in a row up to
// MaxDuration; an ejected target is still tried when no other target is
// available. A success resets both.
type CooldownPolicy struct {
	// Disabled turns cool-downs off.
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	// Failures is the number of consecutive failures that ejects a
	// deployment (default 3).
	Failures int `yaml:"failures,omitempty" json:"failures,omitempty"`
	// Duration is the first ejection (default "30s"); MaxDuration bounds
	// the doubling (default "5m").
	Duration    string `yaml:"duration,omitempty" json:"duration,omitempty"`
	MaxDuration string `yaml:"max_duration,omitempty" json:"max_duration,omitempty"`
	// RateLimit is the cool-down after a 429 or 503 that gave no
	// Retry-After (default "5s").
	RateLimit string `yaml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
}
