// Package query answers analysts' questions about call records: volume,
// errors, latency percentiles, tokens and cost over time and by dimension,
// top-N, slowest steps, approval turnaround, period-over-period change, and
// token spend for budgets.
//
// Every question is scoped to one tenant (a required field) and a time
// range [From, To), exact to the millisecond. The range is read from the
// coarsest rollups that fit (see plan): whole days from calls_1d, whole
// hours from calls_1h, whole minutes from calls_1m, and only the partial
// minutes at the ends from the raw table; a trend by minute reads no
// rollup coarser than a minute, by hour none coarser than an hour. The cost
// of a question therefore grows with its number of buckets and groups, not
// with the number of calls. Counts and sums are exact; latency percentiles
// are t-digest estimates (rank within ~0.5 percentage points at p50, 0.1
// at p95, 0.02 at p99; see docs/ANALYTICS.md).
//
// Safety: every value coming from a caller (tenant, filters, times, limits)
// is sent as a ClickHouse query parameter ({name:Type} placeholders), never
// put into the SQL text; identifiers (group-by dimension, interval, sort
// metric) are chosen from fixed whitelists, and anything else is refused
// with ErrInvalid.
//
// Results are plain structs with JSON tags, so an HTTP handler or a CLI
// maps them directly.
package query

import (
	kinds "github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/report"
	"github.com/gateflow/gateflow/analytics/schema"

	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrInvalid marks a request that cannot be answered as asked (missing
// tenant, unknown dimension, bad time range...). Map it to 400. The error
// is a *FieldError naming the request field at fault.
var ErrInvalid = errors.New("invalid analytics request")

// FieldError is an invalid request field; errors.Is(err, ErrInvalid).
type FieldError struct {
	// Field is the JSON name of the field ("from", "interval", "limit"...).
	Field   string
	Message string
}

func (e *FieldError) Error() string { return ErrInvalid.Error() + ": " + e.Field + ": " + e.Message }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, a ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// MaxRange bounds the time range of one request.
const MaxRange = 400 * 24 * time.Hour

// MaxLimit bounds top-N requests.
const MaxLimit = 1000

// Interval is the bucket size of a trend.
type Interval = report.Interval

// Intervals.
const (
	Minute = report.Minute
	Hour   = report.Hour
	Day    = report.Day
)

// Intervals lists the accepted intervals.
func Intervals() []Interval { return report.Intervals() }

// MaxBuckets bounds the buckets (intervals) of one trend.
const MaxBuckets = 20000

var intervalDur = map[Interval]time.Duration{Minute: time.Minute, Hour: time.Hour, Day: 24 * time.Hour}

// Dimension is what results are grouped by.
type Dimension = report.Dimension

// Dimensions.
const (
	ByNone       = report.ByNone
	ByKind       = report.ByKind
	ByTarget     = report.ByTarget
	ByService    = report.ByService
	ByModel      = report.ByModel
	ByDefinition = report.ByDefinition
	ByStep       = report.ByStep
	ByTrigger    = report.ByTrigger
	// The catalogue dimensions: see report.ByAPI.
	ByAPI         = report.ByAPI
	ByAPIVersion  = report.ByAPIVersion
	ByConsumer    = report.ByConsumer
	ByConsumerApp = report.ByConsumerApp
	// ByUpstream: see report.ByUpstream.
	ByUpstream = report.ByUpstream
)

// dimension is a whitelisted group-by: its SQL expression and the fixed
// condition it implies. Both read the same columns in the raw table and
// in the rollups of its source (calls unless src says otherwise; gateway
// dimensions read the proxy rollups).
type dimension struct {
	expr  string
	where string
	src   *source
}

// sourceOf is the source a dimension's questions read.
func (d dimension) sourceOf() source {
	if d.src != nil {
		return *d.src
	}
	return calls
}

var dimensions = map[Dimension]dimension{
	ByNone:       {expr: "''"},
	ByKind:       {expr: "kind"},
	ByTarget:     {expr: "target"},
	ByService:    {expr: "target", where: "kind = 'http'"},
	ByModel:      {expr: "target", where: "kind = 'model'"},
	ByDefinition: {expr: "definition", where: "definition != ''"},
	ByStep:       {expr: "step_id", where: "step_id != ''"},
	ByTrigger:    {expr: "trigger", src: &triggerCalls},
	// Read from the catalogue's family (apiCalls), in its rollups and in
	// the raw table alike.
	ByAPI:         {expr: "api"},
	ByAPIVersion:  {expr: "concat(api, '@', api_version)"},
	ByConsumer:    {expr: "consumer"},
	ByConsumerApp: {expr: "concat(consumer, '/', consumer_app)"},
	ByUpstream:    {expr: "upstream", where: "upstream != ''", src: &proxyCalls},
}

// Dimensions lists the accepted group-by values, for help texts.
func Dimensions() []Dimension { return report.Dimensions() }

// Filter scopes a question. Tenant, From and To are required; the others
// narrow the calls considered when set.
type Filter struct {
	Tenant     string    `json:"tenant"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Kind       string    `json:"kind,omitempty"`
	Target     string    `json:"target,omitempty"`
	Definition string    `json:"definition,omitempty"`
	StepID     string    `json:"step_id,omitempty"`
	// API and Consumer narrow to calls of the catalogue (docs/CATALOG.md).
	API      string `json:"api,omitempty"`
	Consumer string `json:"consumer,omitempty"`
	// OwnedAPIs are the APIs the tenant owns (from the catalogue): a
	// question on the catalogue's calls shows the tenant its own calls as a
	// consumer and every call to these APIs.
	OwnedAPIs []string `json:"-"`
}

// plan picks the rows a question grouped by by reads, the tenant's scope
// in them and the other conditions:
//   - the gateway dimension (upstream) reads the proxy rollups of the APIs
//     the tenant owns (proxy records belong to the API's owner), where the
//     kind is proxy, the target is the API and there are no definitions or
//     steps;
//   - a catalogue dimension, or an api or consumer filter, reads the
//     catalogue's rollups, scoped to the tenant's calls as a consumer and
//     every call to the APIs it owns; they have no target, definition or
//     step;
//   - any other reads its own source (calls unless it names one) in the
//     tenant's scope.
func (f Filter) plan(b *builder, by Dimension) (source, string, []string, error) {
	dim := dimensions[by]
	if dim.src == &proxyCalls {
		switch {
		case f.Kind != "" && f.Kind != string(kinds.KindProxy):
			return source{}, "", nil, invalid("kind", "the gateway dimension (upstream) covers proxy calls only")
		case f.Definition != "":
			return source{}, "", nil, invalid("definition", "does not apply to gateway calls")
		case f.StepID != "":
			return source{}, "", nil, invalid("step_id", "does not apply to gateway calls")
		}
		var conds []string
		if f.Target != "" {
			conds = append(conds, "api = "+b.param("target", "String", f.Target))
		}
		if f.API != "" {
			conds = append(conds, "api = "+b.param("api", "String", f.API))
		}
		if f.Consumer != "" {
			conds = append(conds, "consumer = "+b.param("consumer", "String", f.Consumer))
		}
		if dim.where != "" {
			conds = append(conds, dim.where)
		}
		return proxyCalls, b.tenantScope(f.Tenant), conds, nil
	}
	conds := b.filterConds(f, true)
	if dim.where != "" {
		conds = append(conds, dim.where)
	}
	if !report.IsAPIDimension(by) && f.API == "" && f.Consumer == "" {
		return dim.sourceOf(), b.tenantScope(f.Tenant), conds, nil
	}
	switch {
	case f.Target != "":
		return source{}, "", nil, invalid("target", "does not apply to questions on APIs of the catalogue")
	case f.Definition != "":
		return source{}, "", nil, invalid("definition", "does not apply to questions on APIs of the catalogue")
	case f.StepID != "":
		return source{}, "", nil, invalid("step", "does not apply to questions on APIs of the catalogue")
	case by == ByTarget || by == ByService || by == ByModel || by == ByDefinition || by == ByStep || by == ByTrigger:
		return source{}, "", nil, invalid("by", "%s does not apply with api or consumer filters", by)
	}
	return apiCalls, b.catalogScope(f.Tenant, f.OwnedAPIs), conds, nil
}

// normalize validates f and returns it in UTC with millisecond times.
func (f Filter) normalize() (Filter, error) {
	switch {
	case f.Tenant == "":
		return f, invalid("tenant", "is required")
	case f.From.IsZero():
		return f, invalid("from", "is required")
	case f.To.IsZero():
		return f, invalid("to", "is required")
	}
	f.From, f.To = f.From.UTC().Truncate(time.Millisecond), f.To.UTC().Truncate(time.Millisecond)
	switch {
	case !f.From.Before(f.To):
		return f, invalid("from", "must be before to (%s >= %s)", f.From.Format(time.RFC3339Nano), f.To.Format(time.RFC3339Nano))
	case f.To.Sub(f.From) > MaxRange:
		return f, invalid("to", "time range longer than %d days", int(MaxRange.Hours()/24))
	case f.From.Year() < 2000:
		return f, invalid("from", "before 2000")
	case f.To.Year() >= 2100:
		// DateTime, the rollups' time type, ends in 2106.
		return f, invalid("to", "after 2099")
	}
	return f, nil
}

// Querier runs the questions against ClickHouse.
type Querier struct {
	conn driver.Conn
}

// New returns a Querier on conn (the schema must have been migrated, as the
// sink does at start).
func New(conn driver.Conn) *Querier { return &Querier{conn: conn} }

// Stats are the figures of a set of calls.
type Stats = report.Stats

// statsSQL merges the partial aggregates of the calls source, in statsScan
// order (the percentiles as one Float64 array).
const statsSQL = `sum(calls), sum(errors), sum(timeouts), sum(tokens_in), sum(tokens_out), sum(cost_usd),
	sum(latency_sum), max(latency_max), arrayMap(x -> toFloat64(x), quantilesTDigestMerge(` + tdigestLevels + `)(latency_q))`

// statsScan holds the scan targets of statsSQL.
type statsScan struct {
	calls, errors, timeouts uint64
	tin, tout               int64
	cost, latSum, latMax    float64
	q                       []float64
}

func (s *statsScan) dest() []any {
	return []any{&s.calls, &s.errors, &s.timeouts, &s.tin, &s.tout, &s.cost, &s.latSum, &s.latMax, &s.q}
}

func (s *statsScan) stats() Stats {
	st := Stats{Calls: s.calls, Errors: s.errors, Timeouts: s.timeouts, TokensIn: s.tin, TokensOut: s.tout,
		CostUSD: s.cost, MaxMS: s.latMax}
	if s.calls > 0 {
		st.ErrorRate = float64(s.errors) / float64(s.calls)
		st.AvgMS = s.latSum / float64(s.calls)
		if len(s.q) == 3 {
			st.P50MS, st.P95MS, st.P99MS = finite(s.q[0]), finite(s.q[1]), finite(s.q[2])
		}
	}
	return st
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// Point is one bucket of a trend, for one group.
type Point = report.Point

// TrendRequest asks for volume, errors and latency per interval.
type TrendRequest struct {
	Filter
	Interval Interval  `json:"interval"`
	GroupBy  Dimension `json:"group_by,omitempty"`
}

func (r TrendRequest) build() (string, clickhouse.Parameters, error) {
	f, err := r.Filter.normalize()
	if err != nil {
		return "", nil, err
	}
	step, ok := intervalDur[r.Interval]
	if !ok {
		return "", nil, invalid("interval", "%q: want minute, hour or day", r.Interval)
	}
	if f.To.Sub(f.From)/step > MaxBuckets {
		return "", nil, invalid("interval", "more than %d %s buckets; use a larger interval or a shorter range", MaxBuckets, r.Interval)
	}
	dim, ok := dimensions[r.GroupBy]
	if !ok {
		return "", nil, invalid("group_by", "%q: want one of %s", r.GroupBy, dimensionNames())
	}
	b := newBuilder()
	src, scope, conds, err := f.plan(b, r.GroupBy)
	if err != nil {
		return "", nil, err
	}
	union := b.union(src, []period{{f.From, f.To, 0}}, r.Interval, dim.expr, scope, conds)
	sql := `SELECT t, g, ` + statsSQL + `
FROM (
	` + union + `
)
GROUP BY t, g
ORDER BY t, g`
	return sql, b.params, nil
}

func dimensionNames() string {
	var names []string
	for _, d := range Dimensions() {
		if d == ByNone {
			names = append(names, `"" (none)`)
			continue
		}
		names = append(names, string(d))
	}
	return strings.Join(names, ", ")
}

// Trend returns one point per interval (and group) that has calls, in
// time order.
func (q *Querier) Trend(ctx context.Context, req TrendRequest) ([]Point, error) {
	sql, params, err := req.build()
	if err != nil {
		return nil, err
	}
	rows, err := q.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql)
	if err != nil {
		return nil, fmt.Errorf("trend query: %w", err)
	}
	defer rows.Close()
	out := []Point{}
	for rows.Next() {
		var p Point
		var s statsScan
		if err := rows.Scan(append([]any{&p.Time, &p.Group}, s.dest()...)...); err != nil {
			return nil, fmt.Errorf("trend query: %w", err)
		}
		p.Time = p.Time.UTC()
		p.Stats = s.stats()
		out = append(out, p)
	}
	return out, rows.Err()
}

// Metric is what a top-N ranks by.
type Metric = report.Metric

// Metrics.
const (
	ByCalls     = report.ByCalls
	ByErrors    = report.ByErrors
	ByErrorRate = report.ByErrorRate
	ByCost      = report.ByCost
	ByTokens    = report.ByTokens
	ByLatency   = report.ByLatency
)

// Metrics lists the accepted top-N metrics.
func Metrics() []Metric { return report.Metrics() }

var metricSQL = map[Metric]string{
	ByCalls:     "calls_",
	ByErrors:    "errors_",
	ByErrorRate: "if(calls_ = 0, 0, errors_ / calls_)",
	ByCost:      "cost_",
	ByTokens:    "tin_ + tout_",
	ByLatency:   "q_[2]",
}

// TopRequest asks for the groups with the highest Metric.
type TopRequest struct {
	Filter
	By     Dimension `json:"by"`
	Metric Metric    `json:"metric"`
	Limit  int       `json:"limit"`
}

// Item is one group of a top-N, with the ranking value.
type Item = report.Item

func (r TopRequest) build() (string, clickhouse.Parameters, error) {
	f, err := r.Filter.normalize()
	if err != nil {
		return "", nil, err
	}
	dim, ok := dimensions[r.By]
	if !ok || r.By == ByNone {
		return "", nil, invalid("by", "%q: want one of %s", r.By, strings.TrimPrefix(dimensionNames(), `"" (none), `))
	}
	order, ok := metricSQL[r.Metric]
	if !ok {
		return "", nil, invalid("metric", "%q: want calls, errors, error_rate, cost, tokens or latency_p95", r.Metric)
	}
	if r.Limit <= 0 || r.Limit > MaxLimit {
		return "", nil, invalid("limit", "%d: want 1..%d", r.Limit, MaxLimit)
	}
	b := newBuilder()
	src, scope, conds, err := f.plan(b, r.By)
	if err != nil {
		return "", nil, err
	}
	union := b.union(src, []period{{f.From, f.To, 0}}, "", dim.expr, scope, conds)
	limit := b.param("limit", "UInt32", strconv.Itoa(r.Limit))
	sql := `SELECT g, toFloat64(` + order + `) AS v, calls_, errors_, timeouts_, tin_, tout_, cost_, lsum_, lmax_, q_
FROM (
	SELECT g,
		sum(calls) AS calls_, sum(errors) AS errors_, sum(timeouts) AS timeouts_,
		sum(tokens_in) AS tin_, sum(tokens_out) AS tout_, sum(cost_usd) AS cost_,
		sum(latency_sum) AS lsum_, max(latency_max) AS lmax_,
		arrayMap(x -> toFloat64(x), quantilesTDigestMerge(` + tdigestLevels + `)(latency_q)) AS q_
	FROM (
	` + union + `
	)
	GROUP BY g
)
ORDER BY v DESC, g
LIMIT ` + limit
	return sql, b.params, nil
}

// Top returns up to Limit groups by decreasing Metric.
func (q *Querier) Top(ctx context.Context, req TopRequest) ([]Item, error) {
	sql, params, err := req.build()
	if err != nil {
		return nil, err
	}
	rows, err := q.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql)
	if err != nil {
		return nil, fmt.Errorf("top query: %w", err)
	}
	defer rows.Close()
	out := []Item{}
	for rows.Next() {
		var it Item
		var s statsScan
		if err := rows.Scan(append([]any{&it.Group, &it.Value}, s.dest()...)...); err != nil {
			return nil, fmt.Errorf("top query: %w", err)
		}
		it.Stats = s.stats()
		it.Value = finite(it.Value)
		out = append(out, it)
	}
	return out, rows.Err()
}

// SlowestSteps returns the steps of f.Definition (required) by decreasing
// p95 latency.
func (q *Querier) SlowestSteps(ctx context.Context, f Filter, limit int) ([]Item, error) {
	if f.Definition == "" {
		return nil, invalid("definition", "is required")
	}
	return q.Top(ctx, TopRequest{Filter: f, By: ByStep, Metric: ByLatency, Limit: limit})
}

// Approval is the turnaround of approval decisions made under one role.
type Approval = report.Approval

func approvalsSQL(f Filter) (string, clickhouse.Parameters, error) {
	f, err := f.normalize()
	if err != nil {
		return "", nil, err
	}
	if f.Kind != "" {
		return "", nil, invalid("kind", "does not apply to approvals")
	}
	if f.Target != "" {
		return "", nil, invalid("target", "does not apply to approvals")
	}
	b := newBuilder()
	union := b.union(approvals, []period{{f.From, f.To, 0}}, "", "role", b.tenantScope(f.Tenant), b.filterConds(f, false))
	sql := `SELECT g, sum(decisions),
	sumIf(decisions, decision = 'approve'), sumIf(decisions, decision = 'reject'), sumIf(decisions, decision = 'timeout'),
	sum(turnaround_sum), max(turnaround_max),
	arrayMap(x -> toFloat64(x), quantilesTDigestMerge(` + tdigestLevels + `)(turnaround_q))
FROM (
	` + union + `
)
GROUP BY g
ORDER BY g`
	return sql, b.params, nil
}

// ApprovalTurnaround returns, per approver role, how many decisions were
// made and how long they took from waiting to decided. A decider with
// several roles counts under each (labels["roles"] of approval records).
// Approvals are placed in time by their ts, when the wait started.
// Filter.Definition and StepID apply; Kind and Target are refused.
func (q *Querier) ApprovalTurnaround(ctx context.Context, f Filter) ([]Approval, error) {
	sql, params, err := approvalsSQL(f)
	if err != nil {
		return nil, err
	}
	rows, err := q.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql)
	if err != nil {
		return nil, fmt.Errorf("approval query: %w", err)
	}
	defer rows.Close()
	out := []Approval{}
	for rows.Next() {
		var a Approval
		var sum float64
		var qs []float64
		if err := rows.Scan(&a.Role, &a.Decisions, &a.Approved, &a.Rejected, &a.TimedOut, &sum, &a.MaxMS, &qs); err != nil {
			return nil, fmt.Errorf("approval query: %w", err)
		}
		if a.Decisions > 0 {
			a.AvgMS = sum / float64(a.Decisions)
		}
		if len(qs) == 3 {
			a.P50MS, a.P95MS, a.P99MS = finite(qs[0]), finite(qs[1]), finite(qs[2])
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// CompareRequest compares [From, To) with the period of the same length
// just before it.
type CompareRequest struct {
	Filter
	By Dimension `json:"by,omitempty"`
}

// Change is one group's figures in both periods and the relative changes.
type Change = report.Change

func (r CompareRequest) build() (string, clickhouse.Parameters, error) {
	f, err := r.Filter.normalize()
	if err != nil {
		return "", nil, err
	}
	dim, ok := dimensions[r.By]
	if !ok {
		return "", nil, invalid("by", "%q: want one of %s", r.By, dimensionNames())
	}
	prevFrom := f.From.Add(-f.To.Sub(f.From))
	if prevFrom.Year() < 2000 {
		return "", nil, invalid("from", "the previous period starts before 2000")
	}
	b := newBuilder()
	src, scope, conds, err := f.plan(b, r.By)
	if err != nil {
		return "", nil, err
	}
	union := b.union(src, []period{{prevFrom, f.From, 0}, {f.From, f.To, 1}}, "", dim.expr, scope, conds)
	sql := `SELECT g, p, ` + statsSQL + `
FROM (
	` + union + `
)
GROUP BY g, p
ORDER BY g, p`
	return sql, b.params, nil
}

// Compare returns, per group, the figures of [From, To) and of the period
// before it, with relative changes.
func (q *Querier) Compare(ctx context.Context, req CompareRequest) ([]Change, error) {
	sql, params, err := req.build()
	if err != nil {
		return nil, err
	}
	rows, err := q.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql)
	if err != nil {
		return nil, fmt.Errorf("compare query: %w", err)
	}
	defer rows.Close()
	out := []Change{}
	for rows.Next() {
		var g string
		var p uint8
		var s statsScan
		if err := rows.Scan(append([]any{&g, &p}, s.dest()...)...); err != nil {
			return nil, fmt.Errorf("compare query: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Group != g {
			out = append(out, Change{Group: g})
		}
		c := &out[len(out)-1]
		if p == 1 {
			c.Current = s.stats()
		} else {
			c.Previous = s.stats()
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		c := &out[i]
		c.Calls = change(float64(c.Current.Calls), float64(c.Previous.Calls))
		c.ErrorRate = change(c.Current.ErrorRate, c.Previous.ErrorRate)
		c.P95 = change(c.Current.P95MS, c.Previous.P95MS)
		c.Cost = change(c.Current.CostUSD, c.Previous.CostUSD)
		c.Tokens = change(float64(c.Current.TokensIn+c.Current.TokensOut), float64(c.Previous.TokensIn+c.Previous.TokensOut))
	}
	return out, nil
}

func change(cur, prev float64) *float64 {
	if prev == 0 {
		return nil
	}
	v := (cur - prev) / prev
	return &v
}

// TokensSince returns the tokens (in + out) used by tenant's calls that
// started at or after since, exact to the millisecond: whole days from
// calls_1d, and the partial day before them from the finer levels (for
// since at a UTC day or month start, one read of calls_1d). For budget
// checks.
func (q *Querier) TokensSince(ctx context.Context, tenant string, since time.Time) (int64, error) {
	sql, params, err := tokensSinceSQL(tenant, since)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := q.conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql).Scan(&n); err != nil {
		return 0, fmt.Errorf("tokens since %s for %s: %w", since.Format(time.RFC3339), tenant, err)
	}
	return n, nil
}

// tokensHorizon is how far after since TokensSince looks (records are
// never in the future by more than clock skew; the daily rollup makes the
// long range cheap).
const tokensHorizon = 2 * 366 * 24 * time.Hour

func tokensSinceSQL(tenant string, since time.Time) (string, clickhouse.Parameters, error) {
	if tenant == "" {
		return "", nil, invalid("tenant", "is required")
	}
	since = since.UTC().Truncate(time.Millisecond)
	if since.Year() < 2000 || since.Year() >= 2098 {
		return "", nil, invalid("since", "outside 2000..2097")
	}
	// The end is a day boundary so that the future side costs one segment.
	to := since.Add(tokensHorizon).Truncate(24 * time.Hour)
	b := newBuilder()
	union := b.union(tokens, []period{{since, to, 0}}, "", "''", b.tenantScope(tenant), nil)
	sql := `SELECT toInt64(sum(tokens_in) + sum(tokens_out))
FROM (
	` + union + `
)`
	return sql, b.params, nil
}

// CacheRequest asks for the response cache's figures of the tenant's
// model calls in [From, To), in total or by model (Target may narrow them
// to one provider/model; Kind, when set, must be "model"; definitions and
// steps are not kept by the cache rollups).
type CacheRequest struct {
	Filter
	By Dimension `json:"by,omitempty"`
}

// CacheStats are the response cache's figures of a group.
type CacheStats = report.CacheStats

func (r CacheRequest) build() (string, clickhouse.Parameters, error) {
	f, err := r.Filter.normalize()
	if err != nil {
		return "", nil, err
	}
	switch {
	case f.Kind != "" && f.Kind != "model":
		return "", nil, invalid("kind", "the cache concerns model calls only")
	case f.Definition != "":
		return "", nil, invalid("definition", "the cache figures are not kept per definition")
	case f.StepID != "":
		return "", nil, invalid("step_id", "the cache figures are not kept per step")
	}
	group := "''"
	switch r.By {
	case ByNone:
	case ByModel, ByTarget:
		group = "target"
	default:
		return "", nil, invalid("by", "%q: want model or nothing", r.By)
	}
	b := newBuilder()
	var conds []string
	if f.Target != "" {
		conds = append(conds, "target = "+b.param("target", "String", f.Target))
	}
	union := b.union(modelCache, []period{{f.From, f.To, 0}}, "", group, b.tenantScope(f.Tenant), conds)
	sql := `SELECT g, sum(lookups), sum(hits), sum(cost_saved_usd), sum(cost_usd)
FROM (
	` + union + `
)
GROUP BY g
ORDER BY sum(cost_saved_usd) DESC, g`
	return sql, b.params, nil
}

// Cache returns the response cache's figures: one group (Group "") in
// total, or one per provider/model with By model, the most saved first.
func (q *Querier) Cache(ctx context.Context, req CacheRequest) ([]CacheStats, error) {
	sql, params, err := req.build()
	if err != nil {
		return nil, err
	}
	rows, err := q.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql)
	if err != nil {
		return nil, fmt.Errorf("cache query: %w", err)
	}
	defer rows.Close()
	out := []CacheStats{}
	for rows.Next() {
		var s CacheStats
		if err := rows.Scan(&s.Group, &s.Lookups, &s.Hits, &s.CostSavedUSD, &s.CostUSD); err != nil {
			return nil, fmt.Errorf("cache query: %w", err)
		}
		s.Misses = s.Lookups - min(s.Hits, s.Lookups)
		if s.Lookups > 0 {
			s.HitRate = float64(s.Hits) / float64(s.Lookups)
		}
		s.CostSavedUSD, s.CostUSD = finite(s.CostSavedUSD), finite(s.CostUSD)
		out = append(out, s)
	}
	return out, rows.Err()
}

// APICalls counts the calls served under a grant (api, consumer, app) in
// [from, to), exact to the millisecond: the whole days, hours and minutes
// from the catalogue rollups, the edges from the raw table. For quotas.
func (q *Querier) APICalls(ctx context.Context, api, consumer, app string, from, to time.Time) (int64, error) {
	sql, params, err := apiCallsSQL(api, consumer, app, from, to)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := q.conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql).Scan(&n); err != nil {
		return 0, fmt.Errorf("calls of %s by %s/%s: %w", api, consumer, app, err)
	}
	return n, nil
}

func apiCallsSQL(api, consumer, app string, from, to time.Time) (string, clickhouse.Parameters, error) {
	if api == "" || consumer == "" {
		return "", nil, invalid("api", "api and consumer are required")
	}
	from, to = from.UTC().Truncate(time.Millisecond), to.UTC().Truncate(time.Millisecond)
	if from.Year() < 2000 || to.Year() >= 2100 {
		return "", nil, invalid("from", "outside 2000..2099")
	}
	b := newBuilder()
	conds := []string{"api = " + b.param("api", "String", api), "consumer = " + b.param("consumer", "String", consumer),
		"consumer_app = " + b.param("app", "String", app)}
	union := b.union(apiCount, []period{{from, to, 0}}, "", "''", "", conds)
	if union == "" {
		return "SELECT toInt64(0)", b.params, nil
	}
	sql := `SELECT toInt64(sum(calls))
FROM (
	` + union + `
)`
	return sql, b.params, nil
}

// Tables returns the tables a question reads, sorted by name (for tests,
// the benchmark and operators).
func Tables(req any) ([]string, error) {
	var sql string
	var err error
	switch r := req.(type) {
	case TrendRequest:
		sql, _, err = r.build()
	case TopRequest:
		sql, _, err = r.build()
	case CompareRequest:
		sql, _, err = r.build()
	case CacheRequest:
		sql, _, err = r.build()
	default:
		return nil, fmt.Errorf("tables of %T: unsupported", req)
	}
	if err != nil {
		return nil, err
	}
	t := tables(sql)
	slices.Sort(t)
	return slices.Compact(t), nil
}

// CallsRequest asks for the raw records of the tenant's slowest calls in
// [From, To), narrowed by the filter and, with TraceID, to one trace: the
// way from a slow row to its trace, and from a trace to all its calls.
type CallsRequest struct {
	Filter
	// TraceID is a W3C trace id (32 lower-case hex digits); empty: any.
	TraceID string `json:"trace_id,omitempty"`
	Limit   int    `json:"limit"`
}

// Call is one raw call record (report.Call).
type Call = report.Call

// validTraceID accepts what record.SetTrace writes: 32 lower-case hex
// digits.
func validTraceID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (r CallsRequest) build() (string, clickhouse.Parameters, error) {
	f, err := r.Filter.normalize()
	if err != nil {
		return "", nil, err
	}
	if r.Limit <= 0 || r.Limit > MaxLimit {
		return "", nil, invalid("limit", "must be between 1 and %d", MaxLimit)
	}
	if r.TraceID != "" && !validTraceID(r.TraceID) {
		return "", nil, invalid("trace_id", "want 32 lower-case hexadecimal digits (a W3C trace id)")
	}
	b := newBuilder()
	where := []string{b.tenantScope(f.Tenant),
		"ts >= fromUnixTimestamp64Milli(" + b.param("from", "Int64", strconv.FormatInt(f.From.UnixMilli(), 10)) + ", 'UTC')",
		"ts < fromUnixTimestamp64Milli(" + b.param("to", "Int64", strconv.FormatInt(f.To.UnixMilli(), 10)) + ", 'UTC')"}
	where = append(where, b.filterConds(f, true)...)
	if r.TraceID != "" {
		where = append(where, "trace_id = "+b.param("trace_id", "String", r.TraceID))
	}
	// FINAL: a record delivered twice is one call.
	sql := `SELECT toString(id), ts, kind, target, workflow_id, definition, step_id, attempt, status_code, outcome,
	latency_ms, error_class, trace_id, span_id
FROM ` + schema.TableCalls + ` FINAL
WHERE ` + strings.Join(where, " AND ") + `
ORDER BY latency_ms DESC, id
LIMIT ` + strconv.Itoa(r.Limit)
	return sql, b.params, nil
}

// Calls returns the raw records of the slowest calls of req's scope,
// slowest first, each with its trace and span id.
func (q *Querier) Calls(ctx context.Context, req CallsRequest) ([]Call, error) {
	sql, params, err := req.build()
	if err != nil {
		return nil, err
	}
	rows, err := q.conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql)
	if err != nil {
		return nil, fmt.Errorf("calls query: %w", err)
	}
	defer rows.Close()
	out := []Call{}
	for rows.Next() {
		var c Call
		if err := rows.Scan(&c.ID, &c.TS, &c.Kind, &c.Target, &c.WorkflowID, &c.Definition, &c.StepID, &c.Attempt,
			&c.StatusCode, &c.Outcome, &c.LatencyMS, &c.ErrorClass, &c.TraceID, &c.SpanID); err != nil {
			return nil, fmt.Errorf("calls query: %w", err)
		}
		c.TS = c.TS.UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
