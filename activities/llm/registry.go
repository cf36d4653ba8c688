package llm

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Provider kinds (wire formats).
const (
	KindOpenAI    = "openai"
	KindAnthropic = "anthropic"
	KindGemini    = "gemini"
)

// Defaults applied when the configuration leaves a value out.
const (
	DefaultTimeout          = 120 * time.Second
	DefaultMaxOutputTokens  = 4096
	DefaultAnthropicVersion = "2023-06-01"
	defaultMaxAttempts      = 3
	defaultInitialBackoff   = 500 * time.Millisecond
	defaultMaxBackoff       = 8 * time.Second
	defaultMaxRetryAfter    = 30 * time.Second
)

// defaultBaseURLs are the public endpoints of each kind.
var defaultBaseURLs = map[string]string{
	KindOpenAI:    "https://api.openai.com/v1",
	KindAnthropic: "https://api.anthropic.com",
	KindGemini:    "https://generativelanguage.googleapis.com/v1beta",
}

// Validate reports every problem of the configuration at once: unknown
// kinds, unparsable URLs or durations, negative prices, aliases pointing
// nowhere.
func (c Config) Validate() error {
	var errs []error
	for _, pn := range sortedKeys(c.Providers) {
		p := c.Providers[pn]
		if pn == "" || strings.Contains(pn, "/") {
			errs = append(errs, fmt.Errorf("provider %q: name must be non-empty and contain no '/'", pn))
		}
		if _, ok := defaultBaseURLs[p.Kind]; !ok {
			errs = append(errs, fmt.Errorf("provider %q: kind %q is not one of openai, anthropic, gemini", pn, p.Kind))
		}
		if p.BaseURL != "" {
			u, err := url.Parse(p.BaseURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("provider %q: base_url %q is not an http(s) URL", pn, p.BaseURL))
			}
		}
		if p.APIKeyEnv != "" && p.APIKeyFile != "" {
			errs = append(errs, fmt.Errorf("provider %q: set api_key_env or api_key_file, not both", pn))
		}
		for field, v := range map[string]string{"timeout": p.Timeout, "stream_idle_timeout": p.StreamIdleTimeout} {
			if _, err := parseDuration(v, 0); err != nil {
				errs = append(errs, fmt.Errorf("provider %q: %s: %w", pn, field, err))
			}
		}
		if len(p.Models) == 0 {
			errs = append(errs, fmt.Errorf("provider %q: no models", pn))
		}
		for _, mn := range sortedKeys(p.Models) {
			m := p.Models[mn]
			if mn == "" {
				errs = append(errs, fmt.Errorf("provider %q: empty model name", pn))
			}
			if m.InputPerMTok < 0 || m.OutputPerMTok < 0 || m.ContextTokens < 0 || m.MaxOutputTokens < 0 {
				errs = append(errs, fmt.Errorf("model %s/%s: prices and token counts must not be negative", pn, mn))
			}
			if _, err := parseDuration(m.Timeout, 0); err != nil {
				errs = append(errs, fmt.Errorf("model %s/%s: timeout: %w", pn, mn, err))
			}
		}
	}
	for _, a := range sortedKeys(c.Aliases) {
		targets := c.Aliases[a]
		if len(targets) == 0 {
			errs = append(errs, fmt.Errorf("alias %q: no targets", a))
		}
		if _, _, isModel := strings.Cut(a, "/"); isModel {
			errs = append(errs, fmt.Errorf("alias %q: must not contain '/' (it would shadow provider/model names)", a))
		}
		for _, t := range targets {
			if !c.isModel(t) {
				errs = append(errs, fmt.Errorf("alias %q: target %q is not a configured provider/model", a, t))
			}
		}
	}
	r := c.Retry
	for field, v := range map[string]string{"initial_backoff": r.InitialBackoff, "max_backoff": r.MaxBackoff, "max_retry_after": r.MaxRetryAfter} {
		if _, err := parseDuration(v, 0); err != nil {
			errs = append(errs, fmt.Errorf("retry.%s: %w", field, err))
		}
	}
	if r.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("retry.max_attempts must not be negative"))
	}
	b := c.Budget
	for field, v := range map[string]string{"cache_ttl": b.CacheTTL, "ingest_lag": b.IngestLag, "max_stale": b.MaxStale} {
		if _, err := parseDuration(v, 0); err != nil {
			errs = append(errs, fmt.Errorf("budget.%s: %w", field, err))
		}
	}
	return errors.Join(errs...)
}

func (c Config) isModel(name string) bool {
	pn, mn, ok := strings.Cut(name, "/")
	if !ok {
		return false
	}
	p, ok := c.Providers[pn]
	if !ok {
		return false
	}
	_, ok = p.Models[mn]
	return ok
}

// provider is a configured provider ready for calls.
type provider struct {
	name        string
	kind        string
	baseURL     string // without trailing slash
	adapter     adapter
	cred        *credential
	headers     map[string]string
	apiVersion  string
	reqIDHeader string
}

// target is one "provider/model" ready for calls.
type target struct {
	name        string // "provider/model"
	prov        *provider
	model       Model
	upstream    string // the provider's model id
	timeout     time.Duration
	idleTimeout time.Duration
	maxOutput   int
}

// retryPolicy is RetryPolicy parsed.
type retryPolicy struct {
	maxAttempts    int
	initialBackoff time.Duration
	maxBackoff     time.Duration
	maxRetryAfter  time.Duration
}

func (r RetryPolicy) parse() retryPolicy {
	p := retryPolicy{
		maxAttempts:    r.MaxAttempts,
		initialBackoff: mustDuration(r.InitialBackoff, defaultInitialBackoff),
		maxBackoff:     mustDuration(r.MaxBackoff, defaultMaxBackoff),
		maxRetryAfter:  mustDuration(r.MaxRetryAfter, defaultMaxRetryAfter),
	}
	if p.maxAttempts <= 0 {
		p.maxAttempts = defaultMaxAttempts
	}
	return p
}

// compile builds the routing table. The configuration must be valid.
func compile(c Config, deps *Deps) (map[string]*target, map[string][]*target) {
	targets := make(map[string]*target)
	for pn, p := range c.Providers {
		base := p.BaseURL
		if base == "" {
			base = defaultBaseURLs[p.Kind]
		}
		prov := &provider{
			name:       pn,
			kind:       p.Kind,
			baseURL:    strings.TrimRight(base, "/"),
			adapter:    adapterFor(p.Kind),
			cred:       newCredential(p, deps.LookupEnv, deps.ReadFile, deps.Clock.Now),
			headers:    p.Headers,
			apiVersion: p.APIVersion,
		}
		prov.reqIDHeader = p.RequestIDHeader
		if prov.reqIDHeader == "" && p.Kind == KindOpenAI {
			prov.reqIDHeader = "X-Client-Request-Id"
		}
		if prov.apiVersion == "" && p.Kind == KindAnthropic {
			prov.apiVersion = DefaultAnthropicVersion
		}
		provTimeout := mustDuration(p.Timeout, DefaultTimeout)
		for mn, m := range p.Models {
			t := &target{
				name:      pn + "/" + mn,
				prov:      prov,
				model:     m,
				upstream:  mn,
				timeout:   mustDuration(m.Timeout, provTimeout),
				maxOutput: m.MaxOutputTokens,
			}
			if m.Name != "" {
				t.upstream = m.Name
			}
			t.idleTimeout = mustDuration(p.StreamIdleTimeout, t.timeout)
			if t.maxOutput == 0 {
				t.maxOutput = DefaultMaxOutputTokens
			}
			targets[t.name] = t
		}
	}
	aliases := make(map[string][]*target, len(c.Aliases))
	for a, names := range c.Aliases {
		ts := make([]*target, 0, len(names))
		for _, n := range names {
			ts = append(ts, targets[n])
		}
		aliases[a] = ts
	}
	return targets, aliases
}

func parseDuration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}

// mustDuration parses a duration validated before; zero and unset take def.
func mustDuration(s string, def time.Duration) time.Duration {
	d, err := parseDuration(s, def)
	if err != nil || d == 0 {
		return def
	}
	return d
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
