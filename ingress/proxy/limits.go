package proxy

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter holds the gateway's token buckets (per API, per API and
// consumer), per replica. A bucket follows its limit when a reload or the
// catalogue changes it.
type limiter struct {
	mu      sync.RWMutex
	buckets map[string]*rate.Limiter
}

func newLimiter() *limiter { return &limiter{buckets: map[string]*rate.Limiter{}} }

// maxBuckets bounds the buckets kept; beyond, the map starts again (a
// burst of fresh buckets is the worst case).
const maxBuckets = 100_000

func (l *limiter) bucket(key string, r Rate) *rate.Limiter {
	burst := r.Burst
	if burst <= 0 {
		burst = max(1, int(math.Ceil(r.RPS)))
	}
	l.mu.RLock()
	b := l.buckets[key]
	l.mu.RUnlock()
	if b == nil {
		l.mu.Lock()
		if b = l.buckets[key]; b == nil {
			if len(l.buckets) >= maxBuckets {
				l.buckets = map[string]*rate.Limiter{}
			}
			b = rate.NewLimiter(rate.Limit(r.RPS), burst)
			l.buckets[key] = b
		}
		l.mu.Unlock()
	}
	if b.Limit() != rate.Limit(r.RPS) {
		b.SetLimit(rate.Limit(r.RPS))
	}
	if b.Burst() != burst {
		b.SetBurst(burst)
	}
	return b
}

// decision is one bucket's verdict with what RateLimit-* headers show.
type decision struct {
	allowed    bool
	limit      int
	remaining  int
	reset      time.Duration
	retryAfter time.Duration
}

// take takes a token from the bucket of key, or refuses without taking one.
func (l *limiter) take(key string, r Rate, now time.Time) decision {
	b := l.bucket(key, r)
	tok := b.TokensAt(now)
	d := decision{limit: b.Burst()}
	if tok < 1 {
		d.retryAfter = time.Duration((1 - tok) / r.RPS * float64(time.Second))
		d.reset = time.Duration((float64(d.limit) - tok) / r.RPS * float64(time.Second))
		return d
	}
	if !b.AllowN(now, 1) {
		d.retryAfter = time.Duration(float64(time.Second) / r.RPS)
		return d
	}
	tok--
	d.allowed = true
	d.remaining = max(0, int(math.Floor(tok)))
	d.reset = time.Duration((float64(d.limit) - tok) / r.RPS * float64(time.Second))
	return d
}
