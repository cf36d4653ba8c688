// Package analyticsapi is the REST face of analytics/query: GET
// /v1/analytics/... endpoints for keys with the analyst role (admin holds
// every role), mounted on the ingress as an api.Group of plain net/http
// handlers.
//
// Every question is scoped to the tenant of the caller's API key: the
// tenant comes from the authenticated principal and a "tenant" parameter
// is refused. Every filter reaches ClickHouse as a query parameter (the
// query package never puts a caller's value into SQL). Bad parameters are
// answered 400 in the API's error shape with one detail per problem, its
// path being the parameter's name.
package analyticsapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/analytics/report"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/httperr"
)

// Querier answers the questions; *query.Querier implements it.
type Querier interface {
	Trend(ctx context.Context, req query.TrendRequest) ([]query.Point, error)
	Top(ctx context.Context, req query.TopRequest) ([]query.Item, error)
	SlowestSteps(ctx context.Context, f query.Filter, limit int) ([]query.Item, error)
	ApprovalTurnaround(ctx context.Context, f query.Filter) ([]query.Approval, error)
	Compare(ctx context.Context, req query.CompareRequest) ([]query.Change, error)
	TokensSince(ctx context.Context, tenant string, since time.Time) (int64, error)
	Cache(ctx context.Context, req query.CacheRequest) ([]query.CacheStats, error)
	Calls(ctx context.Context, req query.CallsRequest) ([]query.Call, error)
}

// Scope is what every answer echoes (report.Scope).
type Scope = report.Scope

func scopeOf(f query.Filter) Scope {
	return Scope{Tenant: f.Tenant, From: f.From, To: f.To, Kind: f.Kind, Target: f.Target, Definition: f.Definition, Step: f.StepID,
		API: f.API, Consumer: f.Consumer}
}

// The answers, declared with the analytics vocabulary in analytics/report
// so that clients read them without linking a database driver.
type (
	// TrendResponse answers GET /v1/analytics/trend.
	TrendResponse = report.TrendResponse
	// TopResponse answers GET /v1/analytics/top.
	TopResponse = report.TopResponse
	// SlowestStepsResponse answers GET /v1/analytics/slowest-steps.
	SlowestStepsResponse = report.SlowestStepsResponse
	// ApprovalsResponse answers GET /v1/analytics/approvals.
	ApprovalsResponse = report.ApprovalsResponse
	// CompareResponse answers GET /v1/analytics/compare.
	CompareResponse = report.CompareResponse
	// TokensResponse answers GET /v1/analytics/tokens.
	TokensResponse = report.TokensResponse
	// CacheResponse answers GET /v1/analytics/cache.
	CacheResponse = report.CacheResponse
	// CallsResponse answers GET /v1/analytics/calls.
	CallsResponse = report.CallsResponse
)

// Options tune Routes.
type Options struct {
	// Now is the clock for relative times; nil means time.Now.
	Now func() time.Time
	// OwnedAPIs lists the catalogue APIs a tenant owns: questions grouped
	// by or filtered on api, api_version, consumer or consumer_app show a
	// tenant its own calls as a consumer and every call to these APIs.
	// nil: only its calls as a consumer.
	OwnedAPIs func(tenant string) []string
}

// Routes returns the analytics group: mount it with ingress.Server.Mount.
func Routes(q Querier, opts Options) api.Group {
	h := &handlers{q: q, now: opts.Now, owned: opts.OwnedAPIs}
	if h.now == nil {
		h.now = time.Now
	}
	return api.Group{
		Name: "analytics",
		Description: "Call analytics of your tenant (analyst role): trends, top-N, slowest steps, approval turnaround, " +
			"period-over-period change, token spend and the model response cache, from the ClickHouse rollups of the call records.",
		Routes:  h.routes(),
		Schemas: schemas(),
	}
}

type handlers struct {
	q     Querier
	now   func() time.Time
	owned func(tenant string) []string
}

// scoped fills in the APIs the tenant owns, for catalogue questions.
func (h *handlers) scoped(f query.Filter) query.Filter {
	if h.owned != nil {
		f.OwnedAPIs = h.owned(f.Tenant)
	}
	return f
}

var analysts = []auth.Role{auth.RoleAnalyst}

// serve wraps one question: it resolves the caller's tenant, runs fn and
// answers its result or error.
func (h *handlers) serve(fn func(r *http.Request, tenant string, now time.Time) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := api.Caller(r.Context())
		if !ok || p.Tenant == "" {
			// The ingress authenticates every non-public route; this is a
			// wiring error, never a client's.
			httperr.Write(w, r, errors.New("analytics: request without an authenticated tenant"))
			return
		}
		res, err := fn(r, p.Tenant, h.now().UTC())
		if err != nil {
			httperr.Write(w, r, answerError(r.Context(), err))
			return
		}
		api.WriteJSON(w, http.StatusOK, res)
	})
}

// Errors answered when ClickHouse fails.
var (
	errUnavailable = &api.Error{Status: http.StatusServiceUnavailable, Code: "analytics_unavailable",
		Message: "the analytics store did not answer; try again", Details: []api.Detail{}}
	errTooSlow = &api.Error{Status: http.StatusGatewayTimeout, Code: "query_timeout",
		Message: "the analytics query took too long; use a shorter range or a larger interval", Details: []api.Detail{}}
)

// answerError maps the query package's errors: invalid fields to 400 with
// the parameter's name, timeouts to 504, anything else (ClickHouse down) to
// 503. The original error stays wrapped for the access log.
func answerError(ctx context.Context, err error) error {
	var fe *query.FieldError
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return err
	case errors.As(err, &fe):
		return invalidQuery([]api.Detail{{Path: paramOfField(fe.Field), Message: fe.Message}})
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return err // the client went away
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", errTooSlow, err)
	}
	return fmt.Errorf("%w: %w", errUnavailable, err)
}

var filterParams = []string{"from", "to", "kind", "target", "definition", "step", "api", "consumer"}

func with(base []string, more ...string) []string {
	return append(append([]string(nil), base...), more...)
}

func (h *handlers) trend(r *http.Request, tenant string, now time.Time) (any, error) {
	p := newParams(r, now, with(filterParams, "interval", "group_by")...)
	f := p.rangeAndFilters(tenant)
	interval := query.Interval(p.enum("interval", string(query.Hour), intervalValues()))
	groupBy := query.Dimension(p.enum("group_by", "", dimensionValues()))
	if err := p.err(); err != nil {
		return nil, err
	}
	pts, err := h.q.Trend(r.Context(), query.TrendRequest{Filter: h.scoped(f), Interval: interval, GroupBy: groupBy})
	if err != nil {
		return nil, err
	}
	return TrendResponse{Scope: scopeOf(f), Interval: interval, GroupBy: groupBy, Points: pts}, nil
}

func (h *handlers) top(r *http.Request, tenant string, now time.Time) (any, error) {
	p := newParams(r, now, with(filterParams, "by", "metric", "limit")...)
	f := p.rangeAndFilters(tenant)
	by := query.Dimension(p.enum("by", string(query.ByTarget), dimensionValues()[1:]))
	metric := query.Metric(p.enum("metric", string(query.ByCalls), metricValues()))
	limit := p.intRange("limit", 10, 1, query.MaxLimit)
	if err := p.err(); err != nil {
		return nil, err
	}
	items, err := h.q.Top(r.Context(), query.TopRequest{Filter: h.scoped(f), By: by, Metric: metric, Limit: limit})
	if err != nil {
		return nil, err
	}
	return TopResponse{Scope: scopeOf(f), By: by, Metric: metric, Limit: limit, Items: items}, nil
}

func (h *handlers) slowestSteps(r *http.Request, tenant string, now time.Time) (any, error) {
	p := newParams(r, now, with(filterParams, "limit")...)
	f := p.rangeAndFilters(tenant)
	limit := p.intRange("limit", 10, 1, query.MaxLimit)
	if f.Definition == "" {
		p.bad("definition", "is required: the definition whose steps to rank")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	steps, err := h.q.SlowestSteps(r.Context(), f, limit)
	if err != nil {
		return nil, err
	}
	return SlowestStepsResponse{Scope: scopeOf(f), Limit: limit, Steps: steps}, nil
}

// calls lists the slowest raw calls, each with its trace id; with
// trace_id, the calls of one trace.
func (h *handlers) calls(r *http.Request, tenant string, now time.Time) (any, error) {
	p := newParams(r, now, with(filterParams, "trace_id", "limit")...)
	f := p.rangeAndFilters(tenant)
	traceID := p.str("trace_id")
	limit := p.intRange("limit", 20, 1, query.MaxLimit)
	if err := p.err(); err != nil {
		return nil, err
	}
	cs, err := h.q.Calls(r.Context(), query.CallsRequest{Filter: f, TraceID: traceID, Limit: limit})
	if err != nil {
		return nil, err
	}
	return CallsResponse{Scope: scopeOf(f), TraceID: traceID, Limit: limit, Calls: cs}, nil
}

func (h *handlers) approvals(r *http.Request, tenant string, now time.Time) (any, error) {
	p := newParams(r, now, "from", "to", "definition", "step")
	f := p.rangeAndFilters(tenant)
	if err := p.err(); err != nil {
		return nil, err
	}
	roles, err := h.q.ApprovalTurnaround(r.Context(), f)
	if err != nil {
		return nil, err
	}
	return ApprovalsResponse{Scope: scopeOf(f), Roles: roles}, nil
}

func (h *handlers) compare(r *http.Request, tenant string, now time.Time) (any, error) {
	p := newParams(r, now, with(filterParams, "by")...)
	f := p.rangeAndFilters(tenant)
	by := query.Dimension(p.enum("by", "", dimensionValues()))
	if err := p.err(); err != nil {
		return nil, err
	}
	groups, err := h.q.Compare(r.Context(), query.CompareRequest{Filter: h.scoped(f), By: by})
	if err != nil {
		return nil, err
	}
	return CompareResponse{Scope: scopeOf(f), PreviousFrom: f.From.Add(-f.To.Sub(f.From)), By: by, Groups: groups}, nil
}

func (h *handlers) tokens(r *http.Request, tenant string, now time.Time) (any, error) {
	p := newParams(r, now, "since")
	since := p.time("since", now.Truncate(24*time.Hour))
	if err := p.err(); err != nil {
		return nil, err
	}
	n, err := h.q.TokensSince(r.Context(), tenant, since)
	if err != nil {
		return nil, err
	}
	return TokensResponse{Tenant: tenant, Since: since, Tokens: n}, nil
}

func (h *handlers) cache(r *http.Request, tenant string, now time.Time) (any, error) {
	p := newParams(r, now, "from", "to", "target", "by")
	f := p.rangeAndFilters(tenant)
	by := query.Dimension(p.enum("by", "", []string{"", string(query.ByModel)}))
	if err := p.err(); err != nil {
		return nil, err
	}
	groups, err := h.q.Cache(r.Context(), query.CacheRequest{Filter: f, By: by})
	if err != nil {
		return nil, err
	}
	out := CacheResponse{Scope: scopeOf(f), By: by}
	for _, g := range groups {
		t := &out.Total
		t.Lookups += g.Lookups
		t.Hits += g.Hits
		t.Misses += g.Misses
		t.CostSavedUSD += g.CostSavedUSD
		t.CostUSD += g.CostUSD
	}
	if out.Total.Lookups > 0 {
		out.Total.HitRate = float64(out.Total.Hits) / float64(out.Total.Lookups)
	}
	if by != "" {
		out.Groups = groups
	}
	return out, nil
}
