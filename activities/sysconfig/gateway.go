package sysconfig

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
)

// The gateway settings of a service, in Envoy's vocabulary (a service is a
// cluster, its instances are endpoints). The data plane (ingress/proxy)
// reads them from every snapshot, so a reload applies to the next call;
// instance health survives a reload when the instance's base URL stays.

// Instance is one upstream endpoint of a service.
type Instance struct {
	// BaseURL is an absolute http(s) URL; the path after /gw/{service} is
	// appended to it.
	BaseURL string `json:"base_url"`
	// Weight is the instance's share of calls relative to the others
	// (default 1).
	Weight int `json:"weight,omitempty"`
	// Zone is informational (shown in metrics and call records' upstream).
	Zone string `json:"zone,omitempty"`
}

// Load-balancing policies.
const (
	// LBRoundRobin is smooth weighted round robin.
	LBRoundRobin = "round_robin"
	// LBLeastRequest picks the less loaded of two random instances
	// (outstanding requests divided by weight).
	LBLeastRequest = "least_request"
	// LBHash is consistent hashing on HashOn: the same key goes to the same
	// instance while it is healthy.
	LBHash = "hash"
)

// LoadBalancing selects the instance of each call.
type LoadBalancing struct {
	// Policy is round_robin (default), least_request or hash.
	Policy string `json:"policy,omitempty"`
	// HashOn is the key of the hash policy: "consumer" (default) or
	// "header:<Name>" (calls without the header fall back to the consumer).
	HashOn string `json:"hash_on,omitempty"`
}

// HealthCheck probes every instance with GET Path each Interval. An
// instance is unhealthy after UnhealthyThreshold failed probes in a row
// and healthy again after HealthyThreshold passed ones.
type HealthCheck struct {
	Path               string              `json:"path"`
	Interval           definition.Duration `json:"interval,omitempty"`
	Timeout            definition.Duration `json:"timeout,omitempty"`
	HealthyThreshold   int                 `json:"healthy_threshold,omitempty"`
	UnhealthyThreshold int                 `json:"unhealthy_threshold,omitempty"`
}

// OutlierDetection ejects an instance after ConsecutiveFailures 5xx
// answers or connection failures in a row, for BaseEjectionTime times the
// number of its ejections so far (at most MaxEjectionTime), and never
// ejects more than MaxEjectionPercent of the instances (at least one
// always stays).
type OutlierDetection struct {
	// Disabled turns passive ejection off.
	Disabled            bool                `json:"disabled,omitempty"`
	ConsecutiveFailures int                 `json:"consecutive_failures,omitempty"`
	BaseEjectionTime    definition.Duration `json:"base_ejection_time,omitempty"`
	MaxEjectionTime     definition.Duration `json:"max_ejection_time,omitempty"`
	MaxEjectionPercent  int                 `json:"max_ejection_percent,omitempty"`
}

// RetryBudget bounds retries: a failed try of an idempotent call (or one
// with an Idempotency-Key) is retried on another instance at most
// MaxRetries times, and only while the retries in flight stay below
// BudgetPercent of the calls in flight (or MinRetryConcurrency, whichever
// is larger), so that retries cannot multiply the load in an outage.
type RetryBudget struct {
	MaxRetries          *int    `json:"max_retries,omitempty"`
	BudgetPercent       float64 `json:"budget_percent,omitempty"`
	MinRetryConcurrency int     `json:"min_retry_concurrency,omitempty"`
}

// Timeouts of forwarded calls. PerTry bounds one try until the answer's
// headers; Request bounds all tries together; Idle bounds a pause in a
// streamed body either way (so SSE and downloads may last as long as data
// flows); Connect bounds a dial.
type Timeouts struct {
	Connect definition.Duration `json:"connect,omitempty"`
	PerTry  definition.Duration `json:"per_try,omitempty"`
	Request definition.Duration `json:"request,omitempty"`
	Idle    definition.Duration `json:"idle,omitempty"`
}

// Cache stores answers to GET and HEAD as RFC 9111 allows a shared cache
// to, in a bounded in-memory cache per replica.
type Cache struct {
	Enabled bool `json:"enabled,omitempty"`
	// MaxTTL caps the freshness lifetime the upstream grants (default 5m).
	MaxTTL definition.Duration `json:"max_ttl,omitempty"`
	// Public shares stored answers between consumers; by default the cache
	// key holds the consumer, so one consumer never sees another's answer.
	Public bool `json:"public,omitempty"`
	// MaxEntryBytes bounds one stored answer (default 1 MiB); larger ones
	// stream through uncached.
	MaxEntryBytes int64 `json:"max_entry_bytes,omitempty"`
}

// Gateway defaults, applied by the Effective* methods.
const (
	DefaultGatewayBodyBytes     = 10 << 20
	DefaultConsecutiveFailures  = 5
	DefaultBaseEjectionTime     = 30 * time.Second
	DefaultMaxEjectionTime      = 300 * time.Second
	DefaultMaxEjectionPercent   = 50
	DefaultMaxRetries           = 2
	DefaultRetryBudgetPercent   = 20.0
	DefaultMinRetryConcurrency  = 3
	DefaultConnectTimeout       = 2 * time.Second
	DefaultPerTryTimeout        = 15 * time.Second
	DefaultRequestTimeout       = 30 * time.Second
	DefaultIdleTimeout          = 5 * time.Minute
	DefaultHealthInterval       = 5 * time.Second
	DefaultHealthTimeout        = 1 * time.Second
	DefaultHealthyThreshold     = 2
	DefaultUnhealthyThreshold   = 3
	DefaultCacheMaxTTL          = 5 * time.Minute
	DefaultCacheMaxEntryBytes   = 1 << 20
	maxGatewayDuration          = 24 * time.Hour
	maxInstances                = 256
	maxInstanceWeight           = 1000
	maxRetriesLimit             = 10
	defaultInstanceWeight       = 1
	minHealthInterval           = 100 * time.Millisecond
	maxGatewayBodyBytesLimit    = 1 << 40
	maxCacheEntryBytesLimit     = 64 << 20
	maxEjectionPercentLimit     = 100
	maxBudgetPercentLimit       = 100.0
	maxMinRetryConcurrencyLimit = 1000
	maxHealthThresholdLimit     = 100
	maxConsecutiveFailuresLimit = 1000
	maxGatewayRateLimitRPS      = 1e7
	maxGatewayRateLimitBurst    = 1e7
)

// Upstreams returns the service's instances: Instances, or one instance
// at BaseURL; weights default to 1.
func (s Service) Upstreams() []Instance {
	if len(s.Instances) == 0 {
		return []Instance{{BaseURL: s.BaseURL, Weight: defaultInstanceWeight}}
	}
	out := make([]Instance, len(s.Instances))
	for i, in := range s.Instances {
		if in.Weight <= 0 {
			in.Weight = defaultInstanceWeight
		}
		out[i] = in
	}
	return out
}

// Effective returns the outlier detection settings with defaults.
func (o OutlierDetection) Effective() OutlierDetection {
	if o.ConsecutiveFailures <= 0 {
		o.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if o.BaseEjectionTime == "" {
		o.BaseEjectionTime = definition.Duration(DefaultBaseEjectionTime.String())
	}
	if o.MaxEjectionTime == "" {
		o.MaxEjectionTime = definition.Duration(DefaultMaxEjectionTime.String())
	}
	if o.MaxEjectionPercent <= 0 {
		o.MaxEjectionPercent = DefaultMaxEjectionPercent
	}
	return o
}

// Effective returns the retry budget with defaults.
func (r RetryBudget) Effective() RetryBudget {
	if r.MaxRetries == nil {
		n := DefaultMaxRetries
		r.MaxRetries = &n
	}
	if r.BudgetPercent <= 0 {
		r.BudgetPercent = DefaultRetryBudgetPercent
	}
	if r.MinRetryConcurrency <= 0 {
		r.MinRetryConcurrency = DefaultMinRetryConcurrency
	}
	return r
}

// EffectiveTimeouts returns the service's gateway timeouts with defaults;
// PerTry defaults to the service's timeout when it has one.
func (s Service) EffectiveTimeouts() (connect, perTry, request, idle time.Duration) {
	t := s.Timeouts
	or := func(d definition.Duration, def time.Duration) time.Duration {
		if v := d.Std(); v > 0 {
			return v
		}
		return def
	}
	perTryDefault := DefaultPerTryTimeout
	if v := s.Timeout.Std(); v > 0 {
		perTryDefault = v
	}
	return or(t.Connect, DefaultConnectTimeout), or(t.PerTry, perTryDefault), or(t.Request, DefaultRequestTimeout), or(t.Idle, DefaultIdleTimeout)
}

// Effective returns the health check with defaults.
func (h HealthCheck) Effective() HealthCheck {
	if h.Interval == "" {
		h.Interval = definition.Duration(DefaultHealthInterval.String())
	}
	if h.Timeout == "" {
		h.Timeout = definition.Duration(DefaultHealthTimeout.String())
	}
	if h.HealthyThreshold <= 0 {
		h.HealthyThreshold = DefaultHealthyThreshold
	}
	if h.UnhealthyThreshold <= 0 {
		h.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	return h
}

// Effective returns the cache settings with defaults.
func (c Cache) Effective() Cache {
	if c.MaxTTL == "" {
		c.MaxTTL = definition.Duration(DefaultCacheMaxTTL.String())
	}
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = DefaultCacheMaxEntryBytes
	}
	return c
}

// GatewayBodyLimit is the largest request body the gateway forwards.
func (s Service) GatewayBodyLimit() int64 {
	if s.MaxRequestBodyBytes > 0 {
		return s.MaxRequestBodyBytes
	}
	return DefaultGatewayBodyBytes
}

// gatewayProblems validates the gateway settings of the service at path p.
func (s Service) gatewayProblems(p string) []definition.Problem {
	var ps []definition.Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, definition.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	dur := func(path string, d definition.Duration) {
		ps = append(ps, definition.DurationProblems(path, d, maxGatewayDuration)...)
	}
	if len(s.Instances) > maxInstances {
		add(p+".instances", "at most %d instances", maxInstances)
	}
	seen := map[string]int{}
	for i, in := range s.Instances {
		ip := fmt.Sprintf("%s.instances[%d]", p, i)
		if in.BaseURL == "" {
			add(ip+".base_url", "required")
		} else if err := definition.CheckHTTPURL(in.BaseURL); err != nil {
			add(ip+".base_url", "%v", err)
		} else if j, dup := seen[in.BaseURL]; dup {
			add(ip+".base_url", "same as instances[%d]", j)
		} else {
			seen[in.BaseURL] = i
		}
		if in.Weight < 0 || in.Weight > maxInstanceWeight {
			add(ip+".weight", "must be between 1 and %d", maxInstanceWeight)
		}
	}
	switch lb := s.LoadBalancing; lb.Policy {
	case "", LBRoundRobin, LBLeastRequest:
		if lb.HashOn != "" {
			add(p+".load_balancing.hash_on", "only applies to policy hash")
		}
	case LBHash:
		name, isHeader := strings.CutPrefix(lb.HashOn, "header:")
		switch {
		case lb.HashOn == "" || lb.HashOn == "consumer":
		case isHeader && definition.ValidHeaderName(name):
			if strings.EqualFold(name, "Authorization") {
				add(p+".load_balancing.hash_on", "must not hash on the caller's credential")
			}
		default:
			add(p+".load_balancing.hash_on", `want "consumer" or "header:<Name>"`)
		}
	default:
		add(p+".load_balancing.policy", "want round_robin, least_request or hash")
	}
	if h := s.HealthCheck; h != nil {
		hp := p + ".health_check"
		if !strings.HasPrefix(h.Path, "/") {
			add(hp+".path", "required, starting with /")
		}
		dur(hp+".interval", h.Interval)
		dur(hp+".timeout", h.Timeout)
		if v := h.Interval.Std(); h.Interval != "" && v < minHealthInterval {
			add(hp+".interval", "at least %s", minHealthInterval)
		}
		for name, v := range map[string]int{"healthy_threshold": h.HealthyThreshold, "unhealthy_threshold": h.UnhealthyThreshold} {
			if v < 0 || v > maxHealthThresholdLimit {
				add(hp+"."+name, "must be between 1 and %d", maxHealthThresholdLimit)
			}
		}
	}
	o := s.OutlierDetection
	op := p + ".outlier_detection"
	if o.ConsecutiveFailures < 0 || o.ConsecutiveFailures > maxConsecutiveFailuresLimit {
		add(op+".consecutive_failures", "must be between 1 and %d", maxConsecutiveFailuresLimit)
	}
	dur(op+".base_ejection_time", o.BaseEjectionTime)
	dur(op+".max_ejection_time", o.MaxEjectionTime)
	if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > maxEjectionPercentLimit {
		add(op+".max_ejection_percent", "must be between 1 and 100")
	}
	r := s.RetryBudget
	rp := p + ".retry_budget"
	if r.MaxRetries != nil && (*r.MaxRetries < 0 || *r.MaxRetries > maxRetriesLimit) {
		add(rp+".max_retries", "must be between 0 and %d", maxRetriesLimit)
	}
	if r.BudgetPercent < 0 || r.BudgetPercent > maxBudgetPercentLimit {
		add(rp+".budget_percent", "must be between 0 and 100")
	}
	if r.MinRetryConcurrency < 0 || r.MinRetryConcurrency > maxMinRetryConcurrencyLimit {
		add(rp+".min_retry_concurrency", "must be between 1 and %d", maxMinRetryConcurrencyLimit)
	}
	tp := p + ".timeouts"
	dur(tp+".connect", s.Timeouts.Connect)
	dur(tp+".per_try", s.Timeouts.PerTry)
	dur(tp+".request", s.Timeouts.Request)
	dur(tp+".idle", s.Timeouts.Idle)
	cp := p + ".cache"
	dur(cp+".max_ttl", s.Cache.MaxTTL)
	if s.Cache.MaxEntryBytes < 0 || s.Cache.MaxEntryBytes > maxCacheEntryBytesLimit {
		add(cp+".max_entry_bytes", "must be between 1 and %d", maxCacheEntryBytesLimit)
	}
	if rl := s.GatewayRateLimit; rl.RPS < 0 || rl.RPS > maxGatewayRateLimitRPS {
		add(p+".rate_limit.rps", "must be between 0 and %g", maxGatewayRateLimitRPS)
	} else if rl.Burst < 0 || rl.Burst > maxGatewayRateLimitBurst {
		add(p+".rate_limit.burst", "must be between 0 and %d", int(maxGatewayRateLimitBurst))
	}
	if s.MaxRequestBodyBytes < 0 || s.MaxRequestBodyBytes > maxGatewayBodyBytesLimit {
		add(p+".max_request_body_bytes", "must be between 1 and %d", int64(maxGatewayBodyBytesLimit))
	}
	for k := range s.Headers {
		if isHopByHop(k) {
			add(p+".headers."+k, "a hop-by-hop header cannot be sent to a service")
		}
	}
	return ps
}

// isHopByHop reports the headers of one connection (RFC 9110 7.6.1).
func isHopByHop(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}
