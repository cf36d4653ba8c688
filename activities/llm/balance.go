package llm

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Balancing: an alias's targets ("deployments") share its calls according
// to its strategy; every target carries a deployment state (calls in
// flight, recent latency, cool-down) kept per replica across reloads.
// Each call gets its own order of targets: the strategy's choice first,
// then the others, targets cooling down last, fallbacks after all.

// pool is a compiled alias (or a single target).
type pool struct {
	name      string
	strategy  string
	targets   []*target
	weights   []int
	fallbacks []*target
	// cache is on for every call of the alias, with its TTL (0: the
	// cache's default).
	cache    bool
	cacheTTL time.Duration
}

func newPool(name string, a Alias, targets map[string]*target) *pool {
	p := &pool{name: name, strategy: a.Strategy}
	if p.strategy == "" {
		p.strategy = StrategyOrdered
	}
	for _, at := range a.Targets {
		p.targets = append(p.targets, targets[at.Model])
		w := at.Weight
		if w <= 0 {
			w = 1
		}
		p.weights = append(p.weights, w)
	}
	for _, f := range a.Fallbacks {
		p.fallbacks = append(p.fallbacks, targets[f])
	}
	if a.Cache != nil && a.Cache.Enabled {
		p.cache = true
		p.cacheTTL = mustDuration(a.Cache.TTL, 0)
	}
	return p
}

// single is the pool of a "provider/model" called directly.
func single(t *target) *pool {
	return &pool{name: t.name, strategy: StrategyOrdered, targets: []*target{t}, weights: []int{1}}
}

// names lists the pool's targets then fallbacks.
func (p *pool) names() []string {
	out := make([]string, 0, len(p.targets)+len(p.fallbacks))
	for _, t := range p.targets {
		out = append(out, t.name)
	}
	for _, t := range p.fallbacks {
		out = append(out, t.name)
	}
	return out
}

// randSource gives the random numbers of balancing decisions.
type randSource interface {
	// intN returns a number in [0, n).
	intN(n int) int
	float() float64
}

// order returns the targets of one call in the order to try them.
func (p *pool) order(rnd randSource, now time.Time, stream bool) []*target {
	n := len(p.targets)
	if n == 1 && len(p.fallbacks) == 0 {
		return p.targets
	}
	out := make([]*target, 0, n+len(p.fallbacks))
	switch p.strategy {
	case StrategyWeighted:
		out = weightedOrder(p.targets, p.weights, rnd, out)
	case StrategyLeastBusy:
		out = append(out, p.targets...)
		shuffle(out, rnd) // ties go anywhere
		sort.SliceStable(out, func(i, j int) bool { return out[i].state.inflight.Load() < out[j].state.inflight.Load() })
	case StrategyLatency:
		out = latencyOrder(p.targets, rnd, stream, out)
	default:
		out = append(out, p.targets...)
	}
	// Targets cooling down go last, soonest to recover first: they are
	// tried only when the others fail.
	sort.SliceStable(out, func(i, j int) bool {
		ui, uj := out[i].state.coolingUntil(now), out[j].state.coolingUntil(now)
		if ui.IsZero() || uj.IsZero() {
			return ui.IsZero() && !uj.IsZero()
		}
		return ui.Before(uj)
	})
	return append(out, p.fallbacks...)
}

// weightedOrder draws targets without replacement, each with probability
// proportional to its weight among those left.
func weightedOrder(ts []*target, weights []int, rnd randSource, out []*target) []*target {
	left := make([]int, len(ts))
	for i := range left {
		left[i] = i
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	for len(left) > 0 {
		r := rnd.intN(total)
		k := 0
		for ; k < len(left)-1; k++ {
			if r < weights[left[k]] {
				break
			}
			r -= weights[left[k]]
		}
		out = append(out, ts[left[k]])
		total -= weights[left[k]]
		left = append(left[:k], left[k+1:]...)
	}
	return out
}

// latencyBuffer is how close to the fastest target's latency another
// target must be to share its calls (10%): near-equal deployments split
// the load instead of one taking all, which also keeps measuring both.
const latencyBuffer = 0.10

// latencyOrder puts targets without a measurement first (so they get
// one), then a random one among those within latencyBuffer of the
// fastest, then the rest by latency.
func latencyOrder(ts []*target, rnd randSource, stream bool, out []*target) []*target {
	out = append(out, ts...)
	shuffle(out, rnd)
	lat := make(map[*target]float64, len(out))
	for _, t := range out {
		lat[t] = t.state.latency(stream)
	}
	sort.SliceStable(out, func(i, j int) bool { return lat[out[i]] < lat[out[j]] })
	if lat[out[0]] == 0 {
		return out // unmeasured first
	}
	best := lat[out[0]]
	k := 1
	for k < len(out) && lat[out[k]] <= best*(1+latencyBuffer) {
		k++
	}
	if k > 1 {
		i := rnd.intN(k)
		out[0], out[i] = out[i], out[0]
	}
	return out
}

func shuffle(ts []*target, rnd randSource) {
	for i := len(ts) - 1; i > 0; i-- {
		j := rnd.intN(i + 1)
		ts[i], ts[j] = ts[j], ts[i]
	}
}

// cooldownPolicy is CooldownPolicy parsed.
type cooldownPolicy struct {
	disabled    bool
	failures    int
	duration    time.Duration
	maxDuration time.Duration
	rateLimit   time.Duration
}

func (c CooldownPolicy) parse() cooldownPolicy {
	p := cooldownPolicy{
		disabled:    c.Disabled,
		failures:    c.Failures,
		duration:    mustDuration(c.Duration, 30*time.Second),
		maxDuration: mustDuration(c.MaxDuration, 5*time.Minute),
		rateLimit:   mustDuration(c.RateLimit, 5*time.Second),
	}
	if p.failures <= 0 {
		p.failures = 3
	}
	return p
}

// latencyAlpha is the weight of a new sample in the latency average.
const latencyAlpha = 0.3

// deployment is the state of one target on this replica.
type deployment struct {
	inflight atomic.Int64

	mu sync.Mutex
	// lat are the exponentially weighted latencies in milliseconds of
	// non-streaming calls [0] and of streams' first output [1]; 0 is
	// "not measured yet".
	lat [2]float64
	// failures counts consecutive failures; ejections consecutive
	// ejections.
	failures  int
	ejections int
	// until is the end of the current cool-down; hard marks one asked for
	// by the provider (Retry-After), which is honoured even when no other
	// target is left.
	until time.Time
	hard  bool
}

// coolingUntil is the end of the cool-down, zero when there is none.
func (d *deployment) coolingUntil(now time.Time) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Before(d.until) {
		return d.until
	}
	return time.Time{}
}

// retryAfter is how long the provider asked to wait before the next call,
// zero when it did not (or the wait is over).
func (d *deployment) retryAfter(now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hard && now.Before(d.until) {
		return d.until.Sub(now)
	}
	return 0
}

func (d *deployment) latency(stream bool) float64 {
	i := 0
	if stream {
		i = 1
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lat[i] == 0 && d.lat[1-i] != 0 {
		return d.lat[1-i]
	}
	return d.lat[i]
}

// succeeded records a successful attempt and its latency.
func (d *deployment) succeeded(latency time.Duration, stream bool) {
	ms := float64(latency.Microseconds())/1000 + 1e-3 // never 0: 0 is "unmeasured"
	i := 0
	if stream {
		i = 1
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lat[i] == 0 {
		d.lat[i] = ms
	} else {
		d.lat[i] = latencyAlpha*ms + (1-latencyAlpha)*d.lat[i]
	}
	d.failures, d.ejections = 0, 0
	d.until, d.hard = time.Time{}, false
}

// failed records a failed attempt and starts a cool-down when the failure
// calls for one: at once for a rate limit or overload (for the provider's
// Retry-After when it gave one), after policy.failures consecutive
// server-side failures otherwise. Failures of the request itself (bad
// request, context, budget) say nothing about the deployment.
func (d *deployment) failed(e *Error, now time.Time, p cooldownPolicy) {
	if p.disabled {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch e.Class {
	case ClassRateLimit, ClassOverloaded:
		if e.RetryAfter > 0 {
			d.setUntil(now.Add(e.RetryAfter), true)
			return
		}
		d.setUntil(now.Add(p.rateLimit), false)
	case ClassServer, ClassTimeout, ClassConnection:
		d.failures++
		if d.failures < p.failures {
			return
		}
		d.failures = 0
		ejection := p.duration << min(d.ejections, 16)
		if ejection > p.maxDuration || ejection <= 0 {
			ejection = p.maxDuration
		}
		d.ejections++
		d.setUntil(now.Add(ejection), false)
	}
}

// setUntil extends the cool-down (never shortens it).
func (d *deployment) setUntil(t time.Time, hard bool) {
	if t.After(d.until) {
		d.until, d.hard = t, hard
	}
}
