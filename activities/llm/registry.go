package llm

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Provider kinds with a wire format of their own. OpenAI-compatible
// vendors are kind "openai" or one of the presets (Presets).
const (
	KindOpenAI    = "openai"
	KindAnthropic = "anthropic"
	KindGemini    = "gemini"
	KindAzure     = "azure"
	KindBedrock   = "bedrock"
	KindVertex    = "vertex"
	KindCohere    = "cohere"
)

// Defaults applied when the configuration leaves a value out.
const (
	DefaultTimeout          = 120 * time.Second
	DefaultMaxOutputTokens  = 4096
	DefaultAnthropicVersion = "2023-06-01"
	// DefaultAzureAPIVersion is the api-version of Azure OpenAI calls (the
	// generally available data-plane version).
	DefaultAzureAPIVersion = "2024-10-21"
	// DefaultVertexLocation is the Vertex AI location when none is set.
	DefaultVertexLocation = "global"
	defaultMaxAttempts    = 3
	defaultInitialBackoff = 500 * time.Millisecond
	defaultMaxBackoff     = 8 * time.Second
	defaultMaxRetryAfter  = 30 * time.Second
)

// nativeKinds are the kinds with their own adapter, and their default base
// URLs ("" when the provider's configuration must give one, or when the
// URL is built from region or project).
var nativeKinds = map[string]string{
	KindAnthropic: "https://api.anthropic.com",
	KindGemini:    "https://generativelanguage.googleapis.com/v1beta",
	KindAzure:     "",
	KindBedrock:   "",
	KindVertex:    "",
	KindCohere:    "https://api.cohere.com",
}

// nativeKeyEnv is the environment variable a native kind's key is read
// from when the provider names none and talks to the vendor's own
// endpoint (Bedrock and Vertex AI use their SDKs' credential chains).
var nativeKeyEnv = map[string]string{
	KindAnthropic: "ANTHROPIC_API_KEY",
	KindGemini:    "GEMINI_API_KEY",
	KindAzure:     "AZURE_OPENAI_API_KEY",
	KindCohere:    "COHERE_API_KEY",
}

// knownKind reports whether kind is a native kind or a preset.
func knownKind(kind string) bool {
	if _, ok := nativeKinds[kind]; ok {
		return true
	}
	_, ok := presetByKind[kind]
	return ok
}

// kindList names every kind, for error messages.
func kindList() string {
	kinds := make([]string, 0, len(nativeKinds)+len(presets))
	for k := range nativeKinds {
		kinds = append(kinds, k)
	}
	for _, p := range presets {
		kinds = append(kinds, p.Kind)
	}
	sort.Strings(kinds)
	return strings.Join(kinds, ", ")
}

// Validate reports every problem of the configuration at once: unknown
// kinds, unparsable URLs or durations, negative prices, aliases pointing
// nowhere, missing region or project, catalogue entries out of range.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	cat, catErr := NewCatalogue(c.Catalogue)
	if catErr != nil {
		errs = append(errs, catErr)
	}
	for _, pn := range sortedKeys(c.Providers) {
		p := c.Providers[pn]
		if pn == "" || strings.Contains(pn, "/") {
			add("provider %q: name must be non-empty and contain no '/'", pn)
		}
		if !knownKind(p.Kind) {
			add("provider %q: kind %q is not one of %s", pn, p.Kind, kindList())
		}
		if p.BaseURL != "" {
			u, err := url.Parse(p.BaseURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add("provider %q: base_url %q is not an http(s) URL", pn, p.BaseURL)
			}
		}
		if p.APIKeyEnv != "" && p.APIKeyFile != "" {
			add("provider %q: set api_key_env or api_key_file, not both", pn)
		}
		switch p.Kind {
		case KindAzure:
			if p.BaseURL == "" {
				add("provider %q: kind azure needs base_url, the resource endpoint (https://<resource>.openai.azure.com)", pn)
			}
		case KindBedrock:
			if p.Region == "" {
				add("provider %q: kind bedrock needs region (e.g. us-east-1)", pn)
			}
		case KindVertex:
			if p.Project == "" {
				add("provider %q: kind vertex needs project (the Google Cloud project id)", pn)
			}
			if p.APIKeyEnv != "" || p.APIKeyFile != "" {
				add("provider %q: kind vertex authenticates with Application Default Credentials; remove api_key_env/api_key_file", pn)
			}
		}
		for _, d := range p.DropParams {
			if !droppableParams[d] {
				add("provider %q: drop_params: %q is not a request parameter (one of %s)", pn, d, strings.Join(sortedKeys(droppableParams), ", "))
			}
		}
		for field, v := range map[string]string{"timeout": p.Timeout, "stream_idle_timeout": p.StreamIdleTimeout} {
			if _, err := parseDuration(v, 0); err != nil {
				add("provider %q: %s: %w", pn, field, err)
			}
		}
		if len(p.Models) == 0 {
			add("provider %q: no models", pn)
		}
		for _, mn := range sortedKeys(p.Models) {
			m := p.Models[mn]
			if mn == "" {
				add("provider %q: empty model name", pn)
			}
			if m.InputPerMTok < 0 || m.OutputPerMTok < 0 || m.CachedInputPerMTok < 0 || m.ContextTokens < 0 || m.MaxOutputTokens < 0 {
				add("model %s/%s: prices and token counts must not be negative", pn, mn)
			}
			if _, err := parseDuration(m.Timeout, 0); err != nil {
				add("model %s/%s: timeout: %w", pn, mn, err)
			}
			if m.Catalogue != "" && cat != nil {
				if _, ok := cat.Lookup(m.Catalogue); !ok {
					add("model %s/%s: catalogue entry %q is unknown (add it under models.catalogue)", pn, mn, m.Catalogue)
				}
			}
		}
	}
	for _, key := range sortedKeys(c.Catalogue) {
		if !strings.Contains(key, "/") {
			add("catalogue %q: keys are <catalogue>/<model>", key)
		}
		for _, p := range c.Catalogue[key].problems() {
			add("catalogue %q: %s", key, p)
		}
	}
	for _, a := range sortedKeys(c.Aliases) {
		errs = append(errs, c.aliasProblems(a, c.Aliases[a])...)
	}
	r := c.Retry
	for field, v := range map[string]string{"initial_backoff": r.InitialBackoff, "max_backoff": r.MaxBackoff, "max_retry_after": r.MaxRetryAfter} {
		if _, err := parseDuration(v, 0); err != nil {
			add("retry.%s: %w", field, err)
		}
	}
	if r.MaxAttempts < 0 {
		add("retry.max_attempts must not be negative")
	}
	b := c.Budget
	for field, v := range map[string]string{"cache_ttl": b.CacheTTL, "ingest_lag": b.IngestLag, "max_stale": b.MaxStale} {
		if _, err := parseDuration(v, 0); err != nil {
			add("budget.%s: %w", field, err)
		}
	}
	cp := c.Cache
	for field, v := range map[string]string{"ttl": cp.TTL, "max_ttl": cp.MaxTTL} {
		if _, err := parseDuration(v, 0); err != nil {
			add("cache.%s: %w", field, err)
		}
	}
	if cp.MaxMB < 0 || cp.MaxEntryKB < 0 {
		add("cache.max_mb and cache.max_entry_kb must not be negative")
	}
	cd := c.Cooldown
	for field, v := range map[string]string{"duration": cd.Duration, "max_duration": cd.MaxDuration, "rate_limit": cd.RateLimit} {
		if _, err := parseDuration(v, 0); err != nil {
			add("cooldown.%s: %w", field, err)
		}
	}
	if cd.Failures < 0 {
		add("cooldown.failures must not be negative")
	}
	return errors.Join(errs...)
}

// aliasProblems checks one alias.
func (c Config) aliasProblems(name string, a Alias) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("alias %q: "+format, append([]any{name}, args...)...))
	}
	if len(a.Targets) == 0 {
		add("no targets")
	}
	if strings.Contains(name, "/") {
		add("must not contain '/' (it would shadow provider/model names)")
	}
	switch a.Strategy {
	case "", StrategyOrdered, StrategyWeighted, StrategyLeastBusy, StrategyLatency:
	default:
		add("strategy %q is not one of %s, %s, %s, %s", a.Strategy, StrategyOrdered, StrategyWeighted, StrategyLeastBusy, StrategyLatency)
	}
	seen := map[string]bool{}
	for _, t := range a.Targets {
		if !c.isModel(t.Model) {
			add("target %q is not a configured provider/model", t.Model)
		}
		if t.Weight < 0 {
			add("target %q: weight must not be negative", t.Model)
		}
		if seen[t.Model] {
			add("target %q is listed twice", t.Model)
		}
		seen[t.Model] = true
	}
	for _, f := range a.Fallbacks {
		if !c.isModel(f) {
			add("fallback %q is not a configured provider/model", f)
		}
		if seen[f] {
			add("fallback %q is also a target", f)
		}
		seen[f] = true
	}
	if a.Cache != nil {
		if _, err := parseDuration(a.Cache.TTL, 0); err != nil {
			add("cache.ttl: %v", err)
		}
	}
	return errs
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
	auth        authorizer
	headers     map[string]string
	apiVersion  string
	reqIDHeader string
	// quirks adapt requests to an OpenAI-compatible vendor (nil: none).
	quirks *quirks
	// embeddings reports whether the provider serves embeddings.
	embeddings bool
	// project and location of Vertex AI; region of Bedrock.
	project, location, region string
}

// target is one "provider/model" ready for calls.
type target struct {
	name        string // "provider/model"
	prov        *provider
	model       Model // configured figures over the catalogue's
	upstream    string
	timeout     time.Duration
	idleTimeout time.Duration
	maxOutput   int
	info        ModelInfo
	// state is the target's balancing and cool-down state; it outlives
	// reloads (keyed by name in the gateway).
	state *deployment
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

// newProvider builds a configured provider.
func newProvider(pn string, p Provider, deps *Deps) *provider {
	prov := &provider{
		name:        pn,
		kind:        p.Kind,
		headers:     p.Headers,
		apiVersion:  p.APIVersion,
		reqIDHeader: p.RequestIDHeader,
		project:     p.Project,
		location:    p.Location,
		region:      p.Region,
	}
	base := p.BaseURL
	keyEnv := p.APIKeyEnv
	if pre, ok := presetByKind[p.Kind]; ok {
		// An OpenAI-compatible vendor.
		prov.adapter = openaiAdapter{}
		if base == "" {
			base = pre.BaseURL
		}
		if keyEnv == "" && p.APIKeyFile == "" && (p.Kind != KindOpenAI || p.BaseURL == "") {
			// kind openai with its own base_url is any compatible server,
			// often local: no key unless configured.
			keyEnv = pre.KeyEnv
		}
		if prov.reqIDHeader == "" {
			prov.reqIDHeader = pre.RequestIDHeader
		}
		prov.quirks = newQuirks(pre, p.DropParams)
		prov.embeddings = pre.Embeddings || p.Kind == KindOpenAI
	} else {
		if base == "" {
			base = nativeKinds[p.Kind]
		}
		if env, ok := nativeKeyEnv[p.Kind]; ok && keyEnv == "" && p.APIKeyFile == "" && (p.BaseURL == "" || p.Kind == KindAzure) {
			// The vendor's own endpoint: its conventional variable. (A
			// base_url may be a proxy that adds the key itself.)
			keyEnv = env
		}
	}
	cred := newCredential(Provider{APIKeyEnv: keyEnv, APIKeyFile: p.APIKeyFile}, deps.LookupEnv, deps.ReadFile, deps.Clock.Now)
	prov.auth = headerAuth{cred: cred, header: "Authorization", prefix: "Bearer "}
	switch p.Kind {
	case KindAnthropic:
		prov.adapter = anthropicAdapter{}
		prov.auth = headerAuth{cred: cred, header: "X-Api-Key"}
		if prov.apiVersion == "" {
			prov.apiVersion = DefaultAnthropicVersion
		}
	case KindGemini:
		prov.adapter = geminiAdapter{}
		prov.auth = headerAuth{cred: cred, header: "X-Goog-Api-Key"}
		prov.embeddings = true
	case KindAzure:
		prov.adapter = azureAdapter{}
		prov.auth = headerAuth{cred: cred, header: "Api-Key"}
		if prov.apiVersion == "" {
			prov.apiVersion = DefaultAzureAPIVersion
		}
		prov.quirks = newQuirks(&Preset{}, p.DropParams)
		prov.embeddings = true
	case KindBedrock:
		prov.adapter = bedrockAdapter{}
		if base == "" {
			base = "https://bedrock-runtime." + p.Region + ".amazonaws.com"
		}
		if p.APIKeyEnv != "" || p.APIKeyFile != "" {
			// A Bedrock API key (AWS_BEARER_TOKEN_BEDROCK) instead of SigV4.
			prov.auth = headerAuth{cred: cred, header: "Authorization", prefix: "Bearer "}
		} else {
			prov.auth = newSigV4Auth(p.Region, "bedrock", deps.AWSCredentials, deps.Clock.Now)
		}
		prov.embeddings = true
	case KindVertex:
		prov.adapter = vertexAdapter{}
		if prov.location == "" {
			prov.location = DefaultVertexLocation
		}
		if base == "" {
			base = vertexBaseURL(prov.location)
		}
		prov.auth = &oauthAuth{load: deps.GoogleTokenSource}
		prov.embeddings = true
	case KindCohere:
		prov.adapter = cohereAdapter{}
		prov.embeddings = true
	}
	prov.baseURL = strings.TrimRight(base, "/")
	return prov
}

// providerCatalogue is the catalogue prefix of a provider's models.
func providerCatalogue(p Provider) string {
	if p.Catalogue != "" {
		return p.Catalogue
	}
	if pre, ok := presetByKind[p.Kind]; ok {
		if p.Kind == KindOpenAI && p.BaseURL != "" && !strings.HasPrefix(p.BaseURL, pre.BaseURL) {
			return "" // another server speaking OpenAI's format
		}
		return pre.Catalogue
	}
	return p.Kind
}

// compile builds the routing table. The configuration must be valid.
func compile(c Config, deps *Deps, cat *Catalogue, states func(name string) *deployment) (map[string]*target, map[string]*pool) {
	targets := make(map[string]*target)
	for pn, p := range c.Providers {
		prov := newProvider(pn, p, deps)
		provTimeout := mustDuration(p.Timeout, DefaultTimeout)
		provCat := providerCatalogue(p)
		for mn, m := range p.Models {
			t := &target{
				name:     pn + "/" + mn,
				prov:     prov,
				upstream: mn,
				timeout:  mustDuration(m.Timeout, provTimeout),
			}
			if m.Name != "" {
				t.upstream = m.Name
			}
			t.idleTimeout = mustDuration(p.StreamIdleTimeout, t.timeout)
			key := catalogueKeyOf(provCat, m, t.upstream)
			entry, found := cat.Lookup(key)
			t.model = effectiveModel(m, entry)
			t.maxOutput = m.MaxOutputTokens
			if t.maxOutput == 0 {
				// The catalogue's maximum is not used as a default: a
				// large bound on a non-streaming call makes some providers
				// refuse it (Anthropic asks for streaming above ~21k).
				t.maxOutput = DefaultMaxOutputTokens
			}
			t.info = ModelInfo{ID: t.name, Provider: pn, Mode: ModeChat,
				ContextTokens: t.model.ContextTokens, MaxOutputTokens: m.MaxOutputTokens,
				InputPerMTok: t.model.InputPerMTok, OutputPerMTok: t.model.OutputPerMTok, CachedInputPerMTok: t.model.CachedInputPerMTok}
			if found {
				t.info.Catalogue, t.info.Source, t.info.AsOf = key, entry.Source, entry.AsOf
				t.info.Capabilities = entry.capabilities()
				if entry.Mode != "" {
					t.info.Mode = entry.Mode
				}
				if t.info.MaxOutputTokens == 0 && entry.MaxOutputTokens != nil {
					t.info.MaxOutputTokens = *entry.MaxOutputTokens
				}
				if entry.Dimensions != nil {
					t.info.Dimensions = *entry.Dimensions
				}
			}
			t.state = states(t.name)
			targets[t.name] = t
		}
	}
	aliases := make(map[string]*pool, len(c.Aliases))
	for a, al := range c.Aliases {
		aliases[a] = newPool(a, al, targets)
	}
	return targets, aliases
}

// effectiveModel fills the figures a model's configuration leaves out
// from its catalogue entry.
func effectiveModel(m Model, e CatalogueEntry) Model {
	if m.InputPerMTok == 0 && e.InputPerMTok != nil {
		m.InputPerMTok = *e.InputPerMTok
	}
	if m.OutputPerMTok == 0 && e.OutputPerMTok != nil {
		m.OutputPerMTok = *e.OutputPerMTok
	}
	if m.CachedInputPerMTok == 0 && e.CachedInputPerMTok != nil {
		m.CachedInputPerMTok = *e.CachedInputPerMTok
	}
	if m.ContextTokens == 0 && e.ContextTokens != nil {
		m.ContextTokens = *e.ContextTokens
	}
	return m
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
