package ingress

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/ratelimit"
)

// streamRetryAfter is the Retry-After of a refused stream: when a slot
// frees is unknown, and a few seconds keep a client from spinning.
const streamRetryAfter = 5

// streamGate counts the long-lived responses (api.OpenStream) open per API
// key and per tenant, and refuses one beyond either cap (issue 10 item 7).
type streamGate struct {
	limits  api.StreamLimits
	metrics *metrics

	mu       sync.Mutex
	byKey    map[string]int
	byTenant map[string]int
}

func newStreamGate(limits api.StreamLimits, m *metrics) *streamGate {
	return &streamGate{limits: limits, metrics: m, byKey: map[string]int{}, byTenant: map[string]int{}}
}

// Limits implements api.StreamGate.
func (g *streamGate) Limits() api.StreamLimits { return g.limits }

// Acquire implements api.StreamGate.
func (g *streamGate) Acquire(tenant, keyID string) (func(), error) {
	g.mu.Lock()
	var scope ratelimit.Scope
	switch {
	case g.limits.PerKey > 0 && g.byKey[keyID] >= g.limits.PerKey:
		scope = ratelimit.ScopeKey
	case g.limits.PerTenant > 0 && g.byTenant[tenant] >= g.limits.PerTenant:
		scope = ratelimit.ScopeTenant
	}
	if scope != "" {
		g.mu.Unlock()
		g.metrics.streamsRefused.WithLabelValues(string(scope)).Inc()
		limit := g.limits.PerKey
		if scope == ratelimit.ScopeTenant {
			limit = g.limits.PerTenant
		}
		e := api.Errorf(http.StatusTooManyRequests, "too_many_streams",
			"this %s already holds %d open streams (event streams, streamed completions, MCP requests), the limit; close one or retry later", scope, limit)
		e.Details = []api.Detail{}
		e.Header = http.Header{"Retry-After": {strconv.Itoa(streamRetryAfter)}}
		return nil, e
	}
	g.byKey[keyID]++
	g.byTenant[tenant]++
	g.mu.Unlock()
	g.metrics.streams.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			if g.byKey[keyID]--; g.byKey[keyID] <= 0 {
				delete(g.byKey, keyID)
			}
			if g.byTenant[tenant]--; g.byTenant[tenant] <= 0 {
				delete(g.byTenant, tenant)
			}
			g.mu.Unlock()
			g.metrics.streams.Dec()
		})
	}, nil
}

// open reports the streams held by a key and a tenant (tests).
func (g *streamGate) open(tenant, keyID string) (key, ten int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.byKey[keyID], g.byTenant[tenant]
}
