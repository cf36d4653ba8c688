package catalog

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
)

// CallCounter counts, from the analytics rollups shared by every replica,
// the calls served under a grant (api, consumer, app) in [from, to).
// analytics/query implements it.
type CallCounter interface {
	APICalls(ctx context.Context, api, consumer, app string, from, to time.Time) (int64, error)
}

// QuotaPolicy tunes Quotas; zero values take the defaults.
type QuotaPolicy struct {
	// CacheTTL is how long an analytics figure is reused (default 2 s).
	CacheTTL time.Duration
	// IngestLag is how long a call record may take to reach the rollups
	// (default 10 s): the figure is read up to IngestLag before now, and
	// this replica's own calls since then are counted locally.
	IngestLag time.Duration
	// MaxStale is how long the last figure is used while analytics cannot
	// be read (default 5 min); past it, calls of plans with quotas are
	// refused as unavailable.
	MaxStale time.Duration
}

// Quotas enforces the daily and monthly quotas of grants across replicas.
//
// The count of a grant in a period (UTC day or month) is the analytics
// figure of [period start, readAt - IngestLag), read at most once per
// CacheTTL, plus the calls this replica admitted since readAt - IngestLag.
// The two never overlap, so on one replica the count is exact (a replica
// that restarts forgets its calls of the last IngestLag, which analytics
// may not hold yet). A call is admitted while the count is below the
// quota, and counted at once. Overshoot: calls other replicas admitted
// that are in neither part, i.e. at most what they serve in IngestLag +
// CacheTTL (plus calls admitted at the same instant on this replica, which
// the lock serialises, so none).
type Quotas struct {
	counter CallCounter
	now     func() time.Time
	ttl     time.Duration
	lag     time.Duration
	stale   time.Duration

	mu     sync.Mutex
	grants map[string]*grantCount
}

type grantCount struct {
	mu      sync.Mutex
	readAt  time.Time // when the figure was read
	covered time.Time // the figure counts calls before this (readAt - lag)
	okAt    time.Time
	nextTry time.Time
	day     time.Time
	month   time.Time
	dayN    int64 // analytics, [day, readAt-lag)
	monthN  int64 // analytics, [month, readAt-lag)
	local   []callBucket
}

type callBucket struct {
	sec int64
	n   int64
}

// NewQuotas returns quotas counting with counter (nil: only local counts,
// for tests) on the clock now (nil: time.Now).
func NewQuotas(counter CallCounter, now func() time.Time, p QuotaPolicy) *Quotas {
	if now == nil {
		now = time.Now
	}
	def := func(d, v time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return v
	}
	return &Quotas{counter: counter, now: now, ttl: def(p.CacheTTL, 2*time.Second), lag: def(p.IngestLag, 10*time.Second),
		stale: def(p.MaxStale, 5*time.Minute), grants: map[string]*grantCount{}}
}

// Policy returns the effective policy (for docs and logs).
func (q *Quotas) Policy() QuotaPolicy {
	return QuotaPolicy{CacheTTL: q.ttl, IngestLag: q.lag, MaxStale: q.stale}
}

// Admit counts one call of the grant, or refuses it with ErrQuotaExceeded
// (naming when the quota resets) when the plan's daily or monthly quota is
// used up.
func (q *Quotas) Admit(ctx context.Context, g *Subscription, plan *Plan) error {
	if plan.Quota.Daily <= 0 && plan.Quota.Monthly <= 0 {
		return nil
	}
	gc := q.grant(g.ID)
	gc.mu.Lock()
	defer gc.mu.Unlock()
	now := q.now()
	day, month := periodStarts(now)
	if err := q.refresh(ctx, g, gc, now, day, month); err != nil {
		return err
	}
	dayUsed := gc.dayN + gc.localSince(day, gc.covered)
	monthUsed := gc.monthN + gc.localSince(month, gc.covered)
	refuse := func(period string, limit int64, reset time.Time) error {
		wait := reset.Sub(now)
		return &Error{Kind: ErrQuotaExceeded, Code: "quota_exceeded", RetryAfter: wait,
			Message: fmt.Sprintf("the %s quota of plan %s of API %s (%d calls) is used up; it resets at %s",
				period, plan.Name, g.API, limit, reset.Format(time.RFC3339)),
			Details: []definition.Problem{{Path: "quota." + period, Message: "resets at " + reset.Format(time.RFC3339)}},
			Header:  http.Header{"Retry-After": {strconv.Itoa(int(wait.Seconds()) + 1)}}}
	}
	if plan.Quota.Daily > 0 && dayUsed >= plan.Quota.Daily {
		return refuse("daily", plan.Quota.Daily, day.AddDate(0, 0, 1))
	}
	if plan.Quota.Monthly > 0 && monthUsed >= plan.Quota.Monthly {
		return refuse("monthly", plan.Quota.Monthly, month.AddDate(0, 1, 0))
	}
	gc.add(now.Unix())
	return nil
}

func (q *Quotas) grant(id string) *grantCount {
	q.mu.Lock()
	defer q.mu.Unlock()
	gc := q.grants[id]
	if gc == nil {
		gc = &grantCount{}
		q.grants[id] = gc
	}
	return gc
}

// refresh reads the analytics figure when it is older than the TTL or of
// another period. Called with gc.mu held: calls of one grant wait for one
// read (the read is a small rollup query).
func (q *Quotas) refresh(ctx context.Context, g *Subscription, gc *grantCount, now, day, month time.Time) error {
	current := !gc.okAt.IsZero() && gc.day.Equal(day) && gc.month.Equal(month)
	if current && (now.Sub(gc.readAt) < q.ttl || (now.Before(gc.nextTry) && now.Sub(gc.okAt) < q.stale)) {
		return nil
	}
	if q.counter == nil {
		// Everything is counted locally.
		gc.readAt, gc.okAt, gc.day, gc.month, gc.dayN, gc.monthN, gc.covered = now, now, day, month, 0, 0, month
		gc.prune(month.Unix())
		return nil
	}
	// Whole seconds, so that the local per-second buckets start exactly
	// where the figure ends.
	to := now.Add(-q.lag).Truncate(time.Second)
	dayN, monthN := int64(0), int64(0)
	var err error
	if to.After(month) {
		monthN, err = q.counter.APICalls(ctx, g.API, g.Consumer, g.App, month, to)
		if err == nil && to.After(day) {
			dayN, err = q.counter.APICalls(ctx, g.API, g.Consumer, g.App, day, to)
		}
	}
	if err != nil {
		gc.nextTry = now.Add(q.ttl)
		if current && now.Sub(gc.okAt) < q.stale {
			return nil
		}
		return newError(ErrUnavailable, "quota_unavailable", "the quota of subscription %s cannot be checked (analytics unreachable): %v", g.ID, err)
	}
	gc.readAt, gc.okAt, gc.day, gc.month, gc.dayN, gc.monthN, gc.covered = now, now, day, month, dayN, monthN, to
	gc.prune(max(month.Unix(), to.Unix()))
	return nil
}

// localSince counts local calls at or after both from (the period start)
// and after (the horizon the analytics figure covers).
func (gc *grantCount) localSince(from, after time.Time) int64 {
	lo := max(from.Unix(), after.Unix())
	var n int64
	for i := len(gc.local) - 1; i >= 0 && gc.local[i].sec >= lo; i-- {
		n += gc.local[i].n
	}
	return n
}

func (gc *grantCount) add(sec int64) {
	if n := len(gc.local); n > 0 && gc.local[n-1].sec >= sec {
		gc.local[n-1].n++
		return
	}
	gc.local = append(gc.local, callBucket{sec: sec, n: 1})
}

// prune drops buckets older than horizon.
func (gc *grantCount) prune(horizon int64) {
	keep := 0
	for keep < len(gc.local) && gc.local[keep].sec < horizon {
		keep++
	}
	gc.local = append(gc.local[:0], gc.local[keep:]...)
}

// periodStarts returns the UTC day and month containing t.
func periodStarts(t time.Time) (day, month time.Time) {
	u := t.UTC()
	return time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC), time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC)
}
