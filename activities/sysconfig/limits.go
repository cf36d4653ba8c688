package sysconfig

import "github.com/gateflow/gateflow/workflows/definition"

// Rate limits are never unlimited by omission (issue 10): a tenant listed
// in gateflow.yaml without rate_limit or key_rate_limit gets the "*"
// entry's, and a "*" entry without them (or no "*" entry) gets
// DefaultTenant's. Only `unlimited: true` lifts a limit.

// Set reports whether the limit was given: a rate or `unlimited`.
func (l RateLimit) Set() bool { return l.RPS > 0 || l.Unlimited }

// problems checks one rate limit of a tenant.
func (l RateLimit) problems(path string) []definition.Problem {
	var ps []definition.Problem
	add := func(p, msg string) { ps = append(ps, definition.Problem{Path: p, Message: msg}) }
	if l.RPS < 0 {
		add(path+".rps", "must not be negative")
	}
	if l.Burst < 0 {
		add(path+".burst", "must not be negative")
	}
	switch {
	case l.Unlimited && (l.RPS != 0 || l.Burst != 0):
		add(path, "unlimited: true takes no rps or burst")
	case !l.Unlimited && l.RPS == 0 && l.Burst > 0:
		add(path+".rps", "required with burst (0 is not unlimited: use unlimited: true)")
	}
	return ps
}

// inheritLimits fills the rate limits a tenant entry leaves out: from the
// "*" entry, whose own missing limits come from DefaultTenant. It runs
// after validation, on every load.
func (c *Config) inheritLimits() {
	base := DefaultTenant("")
	star, hasStar := c.Tenants["*"]
	if hasStar {
		if !star.RateLimit.Set() {
			star.RateLimit = base.RateLimit
		}
		if !star.KeyRateLimit.Set() {
			star.KeyRateLimit = base.KeyRateLimit
		}
		c.Tenants["*"] = star
		base = star
	}
	for name, t := range c.Tenants {
		if !t.RateLimit.Set() {
			t.RateLimit = base.RateLimit
		}
		if !t.KeyRateLimit.Set() {
			t.KeyRateLimit = base.KeyRateLimit
		}
		c.Tenants[name] = t
	}
}
