package catalog

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Access is the outcome of Authorize: who may call which version, under
// which terms, and the headers every answer of the call must carry.
type Access struct {
	// API is the whole API (as its owner sees it), Version the version
	// called.
	API     *API
	Version *APIVersion
	// Owner is true when the caller's tenant owns the API (no grant, no
	// plan limits).
	Owner bool
	// Grant and Plan are the consumer's active subscription and its plan.
	Grant *Subscription
	Plan  *Plan
	// Consumer and ConsumerApp name who is served, for call records: the
	// caller's tenant, and the app of its grant (the key's app for the
	// owner).
	Consumer    string
	ConsumerApp string
	// Header holds the lifecycle headers of a deprecated version
	// (Deprecation, Sunset, Link).
	Header http.Header
}

// Deprecated reports whether the version called is deprecated.
func (a *Access) Deprecated() bool { return a.Version.State == wire.StateDeprecated }

// accessState is the per-replica state of enforcement: one token bucket
// per grant for the plan's rate limit, and the quotas.
type accessState struct {
	quotas *Quotas
	now    func() time.Time

	mu       sync.Mutex
	limiters map[string]*planLimiter
}

type planLimiter struct {
	rl  wire.RateLimit
	lim *rate.Limiter
}

func newAccessState(q *Quotas, now func() time.Time) *accessState {
	return &accessState{quotas: q, now: now, limiters: map[string]*planLimiter{}}
}

// allow takes one token from the grant's bucket, or says when to retry.
func (st *accessState) allow(grant string, rl wire.RateLimit) (time.Duration, bool) {
	if rl.RPS <= 0 {
		return 0, true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	l := st.limiters[grant]
	if l == nil || l.rl != rl {
		burst := rl.Burst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(rl.RPS)))
		}
		l = &planLimiter{rl: rl, lim: rate.NewLimiter(rate.Limit(rl.RPS), burst)}
		st.limiters[grant] = l
	}
	now := st.now()
	r := l.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// pickVersion returns the version a call runs: the one named, else the
// newest published, else the newest deprecated, else (for the owner) the
// newest draft, else the newest retired (which answers 410).
func pickVersion(a *API, version string, owner bool) (*APIVersion, error) {
	if version != "" {
		v := a.Version(version)
		if v == nil || (v.State == wire.StateDraft && !owner) {
			return nil, newError(ErrNotFound, "version_not_found", "API %s has no version %q", a.Name, version)
		}
		return v, nil
	}
	for _, state := range []string{wire.StatePublished, wire.StateDeprecated, wire.StateDraft, wire.StateRetired} {
		if state == wire.StateDraft && !owner {
			continue
		}
		for i := len(a.Versions) - 1; i >= 0; i-- {
			if a.Versions[i].State == state {
				return &a.Versions[i], nil
			}
		}
	}
	return nil, newError(ErrNotFound, "api_not_found", "API %q not found", a.Name)
}

// LifecycleHeaders are the headers of an answer of version v of a: for a
// deprecated version, Deprecation (RFC 9745: when it was deprecated),
// Sunset (RFC 8594: when it is planned to go) and Link to the successor
// (rel="successor-version") and to the API's catalogue entry
// (rel="deprecation"); for a retired one, the Link to the successor.
func LifecycleHeaders(a *API, v *APIVersion) http.Header {
	h := http.Header{}
	if v.State != wire.StateDeprecated && v.State != wire.StateRetired {
		return h
	}
	entry := "/v1/catalog/" + url.PathEscape(a.Name)
	if v.Successor != "" {
		h.Add("Link", "<"+entry+"?version="+url.QueryEscape(v.Successor)+`>; rel="successor-version"`)
	}
	if v.State == wire.StateDeprecated {
		if v.DeprecatedAt != nil {
			h.Set("Deprecation", "@"+strconv.FormatInt(v.DeprecatedAt.Unix(), 10))
		}
		if v.Sunset != nil {
			h.Set("Sunset", v.Sunset.UTC().Format(http.TimeFormat))
		}
		h.Add("Link", "<"+entry+`>; rel="deprecation"; type="application/json"`)
	}
	return h
}

func withHeader(e *Error, h http.Header) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	for k, vs := range h {
		for _, v := range vs {
			e.Header.Add(k, v)
		}
	}
	return e
}

// Authorize decides a call by the caller to version ("" for the default
// one) of API name, from this replica's read model: the owner always
// (drafts included); another tenant when it holds an active grant (its
// app's or its tenant's), within the grant's plan rate limit and quota.
// An admitted call counts against the quota. Errors: ErrNotFound (no such
// API or version visible to the caller), ErrGone (retired, naming the
// successor), ErrSubscriptionRequired, ErrRateLimited, ErrQuotaExceeded,
// ErrUnavailable (the catalogue is still loading).
func (s *Service) Authorize(ctx context.Context, c Caller, name, version string) (*Access, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	a, ok := s.rm.API(name)
	if !ok {
		return nil, newError(ErrNotFound, "api_not_found", "API %q not found", name)
	}
	if _, vis := visible(a, c.Tenant); !vis {
		return nil, newError(ErrNotFound, "api_not_found", "API %q not found", name)
	}
	owner := a.Owner == c.Tenant
	v, err := pickVersion(a, version, owner)
	if err != nil {
		return nil, err
	}
	hdr := LifecycleHeaders(a, v)
	if v.State == wire.StateRetired {
		msg := fmt.Sprintf("version %s of API %s is retired", v.Version, a.Name)
		if v.Successor != "" {
			msg += "; use version " + v.Successor
		}
		e := &Error{Kind: ErrGone, Code: "api_retired", Message: msg}
		if v.Successor != "" {
			e.Details = []definition.Problem{{Path: "successor", Message: v.Successor}}
		}
		return nil, withHeader(e, hdr)
	}
	acc := &Access{API: a, Version: v, Owner: owner, Consumer: c.Tenant, Header: hdr}
	if owner {
		acc.ConsumerApp = c.App
		return acc, nil
	}
	grant, ok := s.rm.Grant(name, c.Tenant, c.App)
	if !ok {
		return nil, withHeader(s.subscriptionRequired(a, c), hdr)
	}
	plan := a.Plan(grant.Plan)
	if plan == nil {
		plan = &Plan{Name: grant.Plan}
	}
	acc.Grant, acc.Plan, acc.ConsumerApp = grant, plan, grant.App
	if wait, ok := s.access.allow(grant.ID, plan.RateLimit); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		e := &Error{Kind: ErrRateLimited, Code: "rate_limited", RetryAfter: wait,
			Message: fmt.Sprintf("plan %s of API %s allows %g calls/s; retry in %d s", plan.Name, a.Name, plan.RateLimit.RPS, secs)}
		return nil, withHeader(e, http.Header{"Retry-After": {strconv.Itoa(secs)}})
	}
	if s.access.quotas != nil {
		if err := s.access.quotas.Admit(ctx, grant, plan); err != nil {
			if e, ok := err.(*Error); ok {
				return nil, withHeader(e, hdr)
			}
			return nil, err
		}
	}
	return acc, nil
}

// subscriptionRequired says how to get access, or that it is on its way.
func (s *Service) subscriptionRequired(a *API, c Caller) *Error {
	e := &Error{Kind: ErrSubscriptionRequired, Code: "subscription_required"}
	if live := s.liveSubscription(a.Name, c); live != nil && live.State == wire.SubscriptionPending {
		e.Message = fmt.Sprintf("your subscription %s to API %s is waiting for the owner's approval", live.ID, a.Name)
		e.Details = []definition.Problem{{Path: "subscription", Message: live.ID + " is pending"}}
		return e
	}
	who := "tenant " + c.Tenant
	if c.App != "" {
		who += " (app " + c.App + ")"
	}
	e.Message = fmt.Sprintf("%s has no active subscription to API %s; request one: POST /v1/catalog/%s/subscriptions with {\"plan\": \"...\"} (plans: %s)",
		who, a.Name, a.Name, planNames(a))
	e.Details = []definition.Problem{{Path: "plan", Message: "one of: " + planNames(a)}}
	return e
}
