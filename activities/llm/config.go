// Package llm puts AI model providers behind one request/response format
// (OpenAI chat-completions shaped), with routing, fallbacks, budgets and
// token/cost accounting.
package llm

import (
	"sort"
	"strings"
)

// Config is the model registry: the `models:` section of gateflow.yaml.
type Config struct {
	// Providers by name; a model is addressed as "provider/model".
	Providers map[string]Provider `yaml:"providers" json:"providers"`
	// Aliases map a name to an ordered list of "provider/model" targets; the
	// second and later targets are fallbacks.
	Aliases map[string][]string `yaml:"aliases,omitempty" json:"aliases,omitempty"`
	// Retry bounds the gateway's own retries (the model activity leaves
	// retries to Temporal and only falls back across alias targets).
	Retry RetryPolicy `yaml:"retry,omitempty" json:"retry,omitempty"`
	// Budget tunes how per-tenant token budgets are enforced.
	Budget BudgetPolicy `yaml:"budget,omitempty" json:"budget,omitempty"`
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
	// Kind is the wire format: "openai" (any OpenAI-compatible server),
	// "anthropic" or "gemini".
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
}

// Model describes one model of a provider.
type Model struct {
	// Prices in US dollars per million tokens.
	InputPerMTok  float64 `yaml:"input_per_mtok,omitempty" json:"input_per_mtok,omitempty"`
	OutputPerMTok float64 `yaml:"output_per_mtok,omitempty" json:"output_per_mtok,omitempty"`
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
