package llm

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// SpendReader reads a tenant's token spend from the analytics rollups in
// ClickHouse: the tokens (in + out) of every model call record since a
// time. analytics/query provides it; any replica reads the same figure,
// and it survives restarts.
type SpendReader interface {
	TokensSince(ctx context.Context, tenant string, since time.Time) (int64, error)
}

// LimitSource gives a tenant's token budgets per UTC day and month; zero
// means unlimited. The tenant registry provides it.
type LimitSource interface {
	BudgetFor(tenant string) (daily, monthly int64)
}

// LimitFunc adapts a function to LimitSource.
type LimitFunc func(tenant string) (daily, monthly int64)

// BudgetFor calls f.
func (f LimitFunc) BudgetFor(tenant string) (daily, monthly int64) { return f(tenant) }

// Budgets enforces per-tenant token budgets (BudgetChecker).
//
// The spend is the analytics figure (shared by all replicas, durable), read
// at most once per CacheTTL per tenant, plus what this replica knows and
// analytics may not show yet:
//
//   - tokens settled locally within the last IngestLag before the figure
//     was read (records still on their way through Kafka), and
//   - reservations of calls in flight (prompt estimate + max_tokens, or
//     1024 when unset).
//
// A call is admitted while spend + reservations is below the limit, so a
// budget is refused "when spent". Overshoot is bounded: on one replica by
// the usage of the calls admitted last (each at most its own size, since
// every admitted call's reservation counts against the next); across N
// replicas, add what the other replicas spend within CacheTTL + IngestLag
// (neither the analytics figure nor local state shows it yet). Local tokens
// younger than IngestLag may be counted twice (once in analytics, once
// locally): enforcement errs on refusing slightly early, never late.
//
// When analytics cannot be read, the last figure is used for up to
// MaxStale; after that budgeted calls are refused with an *Error of class
// internal wrapping ErrBudgetUnavailable. Tenants without limits never
// touch analytics.
type Budgets struct {
	spend  SpendReader
	limits LimitSource
	clock  Clock
	ttl    time.Duration
	lag    time.Duration
	stale  time.Duration

	mu      sync.Mutex
	tenants map[string]*tenantSpend
}

// tenantSpend is one tenant's budget state on this replica.
type tenantSpend struct {
	mu sync.Mutex
	// snapshot from analytics
	readAt     time.Time // when the figure was read (query start)
	okAt       time.Time // last successful read
	nextTry    time.Time // after a failed read, when to try again
	day        time.Time // UTC day start the figure is for
	month      time.Time // UTC month start the figure is for
	daySpent   int64
	monthSpent int64
	// local state
	inflight int64
	local    []spendBucket // settled tokens per second, oldest first
	// refreshing is non-nil while one caller reads analytics; the others
	// wait on it.
	refreshing chan struct{}
}

// spendBucket holds the tokens settled during one second.
type spendBucket struct {
	sec    int64
	tokens int64
}

// NewBudgets returns budgets reading spend from spend and limits from
// limits, tuned by policy (see BudgetPolicy for the defaults).
func NewBudgets(spend SpendReader, limits LimitSource, clock Clock, policy BudgetPolicy) *Budgets {
	if clock == nil {
		clock = SystemClock{}
	}
	return &Budgets{
		spend:   spend,
		limits:  limits,
		clock:   clock,
		ttl:     mustDuration(policy.CacheTTL, 10*time.Second),
		lag:     mustDuration(policy.IngestLag, 60*time.Second),
		stale:   mustDuration(policy.MaxStale, 5*time.Minute),
		tenants: make(map[string]*tenantSpend),
	}
}

// Reserve admits a call of about tokens tokens for tenant, or refuses it
// with a *BudgetError when a budget is spent.
func (b *Budgets) Reserve(ctx context.Context, tenant string, tokens int64) (Settle, error) {
	daily, monthly := b.limits.BudgetFor(tenant)
	if daily <= 0 && monthly <= 0 {
		return func(int64) {}, nil
	}
	ts := b.tenant(tenant)
	if err := b.refresh(ctx, tenant, ts); err != nil {
		return nil, err
	}
	now := b.clock.Now()
	day, month := periodStarts(now)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	dayUsed := ts.daySpent + ts.localSince(day, ts.readAt.Add(-b.lag)) + ts.inflight
	monthUsed := ts.monthSpent + ts.localSince(month, ts.readAt.Add(-b.lag)) + ts.inflight
	if daily > 0 && dayUsed >= daily {
		return nil, &BudgetError{Tenant: tenant, Period: "daily", Limit: daily, Used: dayUsed, ResetAt: day.AddDate(0, 0, 1)}
	}
	if monthly > 0 && monthUsed >= monthly {
		return nil, &BudgetError{Tenant: tenant, Period: "monthly", Limit: monthly, Used: monthUsed, ResetAt: month.AddDate(0, 1, 0)}
	}
	ts.inflight += tokens
	var once sync.Once
	return func(used int64) {
		once.Do(func() {
			at := b.clock.Now()
			ts.mu.Lock()
			defer ts.mu.Unlock()
			ts.inflight -= tokens
			ts.add(at.Unix(), used)
		})
	}, nil
}

func (b *Budgets) tenant(name string) *tenantSpend {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts, ok := b.tenants[name]
	if !ok {
		ts = &tenantSpend{}
		b.tenants[name] = ts
	}
	return ts
}

// refresh reads the tenant's spend from analytics when the cached figure is
// older than the TTL or from an earlier day or month. One caller reads; the
// others wait for it.
func (b *Budgets) refresh(ctx context.Context, tenant string, ts *tenantSpend) error {
	for {
		now := b.clock.Now()
		day, month := periodStarts(now)
		ts.mu.Lock()
		current := !ts.okAt.IsZero() && ts.day.Equal(day) && ts.month.Equal(month)
		fresh := current && now.Sub(ts.readAt) < b.ttl
		backingOff := current && now.Before(ts.nextTry) && now.Sub(ts.okAt) < b.stale
		if fresh || backingOff {
			ts.mu.Unlock()
			return nil
		}
		if wait := ts.refreshing; wait != nil {
			ts.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		done := make(chan struct{})
		ts.refreshing = done
		ts.mu.Unlock()

		dayN, monthN, err := b.read(ctx, tenant, day, month)

		ts.mu.Lock()
		ts.refreshing = nil
		close(done)
		if err == nil {
			ts.readAt, ts.okAt, ts.day, ts.month = now, now, day, month
			ts.daySpent, ts.monthSpent = dayN, monthN
			ts.prune(now.Add(-b.lag).Unix(), month.Unix())
			ts.mu.Unlock()
			return nil
		}
		usable := current && now.Sub(ts.okAt) < b.stale
		ts.nextTry = now.Add(b.ttl)
		ts.mu.Unlock()
		if usable {
			return nil
		}
		return &Error{Class: ClassInternal, Message: fmt.Sprintf("read token spend of tenant %q: %v", tenant, err), Err: ErrBudgetUnavailable}
	}
}

// read queries the day's and the month's spend.
func (b *Budgets) read(ctx context.Context, tenant string, day, month time.Time) (int64, int64, error) {
	dayN, err := b.spend.TokensSince(ctx, tenant, day)
	if err != nil {
		return 0, 0, err
	}
	monthN, err := b.spend.TokensSince(ctx, tenant, month)
	if err != nil {
		return 0, 0, err
	}
	return dayN, monthN, nil
}

// localSince sums local settled tokens at or after both from (the period
// start) and after (the horizon analytics is assumed to cover).
func (ts *tenantSpend) localSince(from, after time.Time) int64 {
	lo := from.Unix()
	if a := after.Unix(); a > lo {
		lo = a
	}
	var n int64
	for i := len(ts.local) - 1; i >= 0 && ts.local[i].sec >= lo; i-- {
		n += ts.local[i].tokens
	}
	return n
}

func (ts *tenantSpend) add(sec, tokens int64) {
	if tokens <= 0 {
		return
	}
	if n := len(ts.local); n > 0 && ts.local[n-1].sec >= sec {
		// Same second (or a clock step back): merge into the last bucket.
		ts.local[n-1].tokens += tokens
		return
	}
	ts.local = append(ts.local, spendBucket{sec: sec, tokens: tokens})
}

// prune drops buckets analytics is assumed to cover (older than horizon)
// or from an earlier month.
func (ts *tenantSpend) prune(horizon, monthStart int64) {
	keep := 0
	for keep < len(ts.local) && (ts.local[keep].sec < horizon || ts.local[keep].sec < monthStart) {
		keep++
	}
	ts.local = append(ts.local[:0], ts.local[keep:]...)
}

// periodStarts returns the UTC day and month containing t.
func periodStarts(t time.Time) (day, month time.Time) {
	u := t.UTC()
	day = time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
	month = time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC)
	return day, month
}
