// Package ratelimit applies token buckets per API key and per tenant
// (golang.org/x/time/rate). A request passes only when both buckets have a
// token; a refused request takes no token from either.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket: RPS tokens per second, at most Burst at once.
// Zero never means unlimited (issue 10): only Unlimited lifts a limit, and
// a limit that is not Set is the caller's to resolve (Or); Allow treats
// one as Floor.
type Limit struct {
	RPS       float64 `json:"rps" yaml:"rps"`
	Burst     int     `json:"burst" yaml:"burst"`
	Unlimited bool    `json:"unlimited,omitempty" yaml:"unlimited,omitempty"`
}

// Floor is what Allow applies for a limit that is not Set: a caller that
// forgot to resolve its defaults fails closed, not open.
var Floor = Limit{RPS: 1, Burst: 1}

// Set reports whether l says something: a rate, or Unlimited.
func (l Limit) Set() bool { return l.RPS > 0 || l.Unlimited }

// Or returns l when it is Set, else def.
func (l Limit) Or(def Limit) Limit {
	if l.Set() {
		return l
	}
	return def
}

func (l Limit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return max(1, int(math.Ceil(l.RPS)))
}

// Scope names the bucket that decided.
type Scope string

// Scopes.
const (
	ScopeKey    Scope = "key"
	ScopeTenant Scope = "tenant"
)

// Decision is the outcome of Allow, with what the RateLimit-* headers show:
// the bucket closest to empty.
type Decision struct {
	Allowed bool
	// Scope is the bucket that refused (or, when allowed, the tighter one).
	Scope     Scope
	Limit     int           // bucket size
	Remaining int           // whole tokens left
	Reset     time.Duration // until the bucket is full again
	// RetryAfter is how long to wait before a retry can pass (refused only).
	RetryAfter time.Duration
	// Limited is false when neither bucket applies (no headers to send).
	Limited bool
}

// Limiter holds the buckets. The key and tenant limits are looked up per
// request so that a reload of keys or tenants takes effect at once.
type Limiter struct {
	mu      sync.Mutex
	keys    map[string]*rate.Limiter
	tenants map[string]*rate.Limiter
	now     func() time.Time
}

// New returns an empty Limiter.
func New() *Limiter {
	return &Limiter{keys: map[string]*rate.Limiter{}, tenants: map[string]*rate.Limiter{}, now: time.Now}
}

// bucket returns the bucket of name with limit l, adjusting its settings
// when the limit changed.
func bucket(m map[string]*rate.Limiter, name string, l Limit, now time.Time) *rate.Limiter {
	b, ok := m[name]
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.RPS), l.burst())
		m[name] = b
		return b
	}
	if b.Limit() != rate.Limit(l.RPS) {
		b.SetLimitAt(now, rate.Limit(l.RPS))
	}
	if b.Burst() != l.burst() {
		b.SetBurstAt(now, l.burst())
	}
	return b
}

// Allow takes one token from the key's and the tenant's buckets, or none
// when either is empty.
func (l *Limiter) Allow(keyID string, keyLimit Limit, tenant string, tenantLimit Limit) Decision {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()

	keyLimit, tenantLimit = keyLimit.Or(Floor), tenantLimit.Or(Floor)
	var kb, tb *rate.Limiter
	if !keyLimit.Unlimited {
		kb = bucket(l.keys, keyID, keyLimit, now)
	}
	if !tenantLimit.Unlimited {
		tb = bucket(l.tenants, tenant, tenantLimit, now)
	}
	if kb == nil && tb == nil {
		return Decision{Allowed: true}
	}
	// Refuse without taking a token when either bucket is empty.
	for _, c := range []struct {
		b     *rate.Limiter
		scope Scope
	}{{kb, ScopeKey}, {tb, ScopeTenant}} {
		if c.b == nil {
			continue
		}
		if tok := c.b.TokensAt(now); tok < 1 {
			d := state(c.b, now, c.scope)
			d.RetryAfter = time.Duration((1 - tok) / float64(c.b.Limit()) * float64(time.Second))
			return d
		}
	}
	var best Decision
	for _, c := range []struct {
		b     *rate.Limiter
		scope Scope
	}{{kb, ScopeKey}, {tb, ScopeTenant}} {
		if c.b == nil {
			continue
		}
		c.b.AllowN(now, 1)
		d := state(c.b, now, c.scope)
		if !best.Limited || d.Remaining < best.Remaining {
			best = d
		}
	}
	best.Allowed = true
	return best
}

func state(b *rate.Limiter, now time.Time, scope Scope) Decision {
	tok := b.TokensAt(now)
	burst := b.Burst()
	reset := time.Duration((float64(burst) - tok) / float64(b.Limit()) * float64(time.Second))
	return Decision{
		Scope:     scope,
		Limit:     burst,
		Remaining: max(0, int(math.Floor(tok))),
		Reset:     max(0, reset),
		Limited:   true,
	}
}

// Seconds rounds a duration up to whole seconds, at least 1, as the
// Retry-After and RateLimit-Reset headers want.
func Seconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	return max(1, s)
}
