package sysconfig

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRateLimitsInherit: a tenant listed without limits is never
// unlimited (issue 10 item 5); it inherits "*", then the defaults.
func TestRateLimitsInherit(t *testing.T) {
	def := DefaultTenant("")
	cases := []struct {
		name, yaml        string
		tenant            string
		wantRate, wantKey RateLimit
	}{
		{"listed without limits, no star", "tenants:\n  acme: {allow_urls: true}\n", "acme", def.RateLimit, def.KeyRateLimit},
		{"listed without limits, star with limits",
			"tenants:\n  \"*\": {rate_limit: {rps: 7, burst: 9}, key_rate_limit: {rps: 3}}\n  acme: {allow_urls: true}\n",
			"acme", RateLimit{RPS: 7, Burst: 9}, RateLimit{RPS: 3}},
		{"listed without limits, star without limits", "tenants:\n  \"*\": {allow_urls: false}\n  acme: {}\n", "acme", def.RateLimit, def.KeyRateLimit},
		{"one limit given, the other inherited",
			"tenants:\n  \"*\": {key_rate_limit: {rps: 4, burst: 4}}\n  acme: {rate_limit: {rps: 100}}\n",
			"acme", RateLimit{RPS: 100}, RateLimit{RPS: 4, Burst: 4}},
		{"unlisted tenant gets the star's inherited defaults", "tenants:\n  \"*\": {rate_limit: {rps: 5}}\n", "nobody", RateLimit{RPS: 5}, def.KeyRateLimit},
		{"unlimited is the only way out", "tenants:\n  acme: {rate_limit: {unlimited: true}, key_rate_limit: {unlimited: true}}\n",
			"acme", RateLimit{Unlimited: true}, RateLimit{Unlimited: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, ConfigFile), c.yaml)
			s, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Tenant(c.tenant)
			if got.RateLimit != c.wantRate || got.KeyRateLimit != c.wantKey {
				t.Fatalf("rate %+v key %+v, want %+v %+v", got.RateLimit, got.KeyRateLimit, c.wantRate, c.wantKey)
			}
			if !got.RateLimit.Set() || !got.KeyRateLimit.Set() {
				t.Fatal("a resolved tenant has an unset limit")
			}
		})
	}
}

func TestRateLimitProblems(t *testing.T) {
	for yaml, want := range map[string]string{
		"tenants:\n  acme: {rate_limit: {burst: 10}}\n":                              "tenants.acme.rate_limit.rps: required with burst",
		"tenants:\n  acme: {key_rate_limit: {unlimited: true, rps: 5}}\n":            "tenants.acme.key_rate_limit: unlimited: true takes no rps or burst",
		"tenants:\n  acme: {rate_limit: {rps: -1}}\n":                                "tenants.acme.rate_limit.rps: must not be negative",
		"services:\n  big: {base_url: \"http://x\", max_response_bytes: 10485760}\n": "services.big.max_response_bytes: must be between 0",
	} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, ConfigFile), yaml)
		_, err := Load(dir)
		if err == nil || !strings.Contains(strings.Join(problemsOf(t, err), "\n"), want) {
			t.Errorf("%q: %v, want %q", yaml, err, want)
		}
	}
}
