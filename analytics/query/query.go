// Package query answers analysts' questions about call records: volume,
// errors, latency percentiles, tokens and cost over time and by dimension,
// top-N, slowest steps, approval turnaround, period-over-period change, and
// token spend for budgets.
//
// Every question is scoped to one tenant (a required field) and reads the
// per-minute rollups (calls_1m, approvals_1m), so its cost depends on the
// number of minutes (or hours) and groups, not of calls: ranges of whole
// hours read the hourly rollup (calls_1h), others the per-minute one.
// Rollup buckets are whole minutes: a minute is counted when it starts
// within [From, To).
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
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/gateflow/gateflow/analytics/schema"
)

// ErrInvalid marks a request that cannot be answered as asked (missing
// tenant, unknown dimension, bad time range...). Map it to 400.
var ErrInvalid = errors.New("invalid analytics request")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// MaxRange bounds the time range of one request.
const MaxRange = 400 * 24 * time.Hour

// MaxLimit bounds top-N requests.
const MaxLimit = 1000

// Interval is the bucket size of a trend.
type Interval string

// Intervals.
const (
	Minute Interval = "minute"
	Hour   Interval = "hour"
	Day    Interval = "day"
)

// rollup is a per-bucket table of calls and its time column.
type rollup struct {
	table, col string
}

var (
	perMinute = rollup{schema.TableCalls1m, "minute"}
	perHour   = rollup{schema.TableCalls1h, "hour"}
)

// pickRollup reads the hourly rollup when the range is whole hours and the
// buckets asked for are not minutes: far fewer rows on long ranges.
func pickRollup(f Filter, interval Interval) rollup {
	if interval != Minute && f.From.Equal(f.From.Truncate(time.Hour)) && f.To.Equal(f.To.Truncate(time.Hour)) {
		return perHour
	}
	return perMinute
}

func bucketSQL(r rollup, i Interval) (string, bool) {
	switch i {
	case Minute:
		return "toStartOfMinute(" + r.col + ")", true
	case Hour:
		return "toStartOfHour(" + r.col + ")", true
	case Day:
		return "toStartOfDay(" + r.col + ")", true
	}
	return "", false
}

// maxBuckets bounds the rows of a trend.
const maxBuckets = 20000

var intervalDur = map[Interval]time.Duration{Minute: time.Minute, Hour: time.Hour, Day: 24 * time.Hour}

// Dimension is what results are grouped by.
type Dimension string

// Dimensions. Service and Model are the target of http and model calls.
const (
	ByNone       Dimension = ""
	ByKind       Dimension = "kind"
	ByTarget     Dimension = "target"
	ByService    Dimension = "service"
	ByModel      Dimension = "model"
	ByDefinition Dimension = "definition"
	ByStep       Dimension = "step"
)

// dimension is a whitelisted group-by: its SQL expression and the fixed
// condition it implies.
type dimension struct {
	expr  string
	where string
}

var dimensions = map[Dimension]dimension{
	ByNone:       {expr: "''"},
	ByKind:       {expr: "kind"},
	ByTarget:     {expr: "target"},
	ByService:    {expr: "target", where: "kind = 'http'"},
	ByModel:      {expr: "target", where: "kind = 'model'"},
	ByDefinition: {expr: "definition", where: "definition != ''"},
	ByStep:       {expr: "step_id", where: "step_id != ''"},
}

// Dimensions lists the accepted group-by values, for help texts.
func Dimensions() []Dimension {
	return []Dimension{ByNone, ByKind, ByTarget, ByService, ByModel, ByDefinition, ByStep}
}

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
}

func (f Filter) validate() error {
	switch {
	case f.Tenant == "":
		return invalid("tenant is required")
	case f.From.IsZero() || f.To.IsZero():
		return invalid("from and to are required")
	case !f.From.Before(f.To):
		return invalid("from (%s) must be before to (%s)", f.From.Format(time.RFC3339), f.To.Format(time.RFC3339))
	case f.To.Sub(f.From) > MaxRange:
		return invalid("time range longer than %d days", int(MaxRange.Hours()/24))
	}
	return nil
}

// builder accumulates WHERE conditions whose values are parameters.
type builder struct {
	where  []string
	params clickhouse.Parameters
}

func newBuilder() *builder { return &builder{params: clickhouse.Parameters{}} }

// param adds a parameter and returns its placeholder.
func (b *builder) param(name, typ, value string) string {
	b.params[name] = value
	return "{" + name + ":" + typ + "}"
}

func (b *builder) cond(c string) { b.where = append(b.where, c) }

// scope adds the tenant, the time range on column col, and the optional
// equality filters that apply to the table.
func (b *builder) scope(f Filter, col string, callFilters bool) {
	b.cond("tenant = " + b.param("tenant", "String", f.Tenant))
	b.cond(col + " >= toDateTime(" + b.param("from", "Int64", unix(f.From)) + ", 'UTC')")
	b.cond(col + " < toDateTime(" + b.param("to", "Int64", unix(f.To)) + ", 'UTC')")
	if callFilters {
		if f.Kind != "" {
			b.cond("kind = " + b.param("kind", "String", f.Kind))
		}
		if f.Target != "" {
			b.cond("target = " + b.param("target", "String", f.Target))
		}
	}
	if f.Definition != "" {
		b.cond("definition = " + b.param("definition", "String", f.Definition))
	}
	if f.StepID != "" {
		b.cond("step_id = " + b.param("step", "String", f.StepID))
	}
}

func (b *builder) whereSQL() string { return strings.Join(b.where, " AND ") }

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// Querier runs the questions against ClickHouse.
type Querier struct {
	conn driver.Conn
}

// New returns a Querier on conn (the schema must have been migrated, as the
// sink does at start).
func New(conn driver.Conn) *Querier { return &Querier{conn: conn} }

// Stats are the aggregates of a set of calls.
type Stats struct {
	Calls     uint64  `json:"calls"`
	Errors    uint64  `json:"errors"`
	Timeouts  uint64  `json:"timeouts"`
	ErrorRate float64 `json:"error_rate"`
	TokensIn  int64   `json:"tokens_in"`
	TokensOut int64   `json:"tokens_out"`
	CostUSD   float64 `json:"cost_usd"`
	AvgMS     float64 `json:"latency_avg_ms"`
	P50MS     float64 `json:"latency_p50_ms"`
	P95MS     float64 `json:"latency_p95_ms"`
	P99MS     float64 `json:"latency_p99_ms"`
	MaxMS     float64 `json:"latency_max_ms"`
}

// statsSQL are the aggregate columns over calls_1m, in Stats order (the
// percentiles come as one array). cond, when set, restricts them (-If
// combinators) for period comparisons.
func statsSQL(cond string) string {
	if cond == "" {
		return `sum(calls), sum(errors), sum(timeouts), sum(tokens_in), sum(tokens_out), sum(cost_usd),
	sum(latency_sum), max(latency_max), quantilesMerge(0.5, 0.95, 0.99)(latency_q)`
	}
	return strings.NewReplacer("COND", cond).Replace(`sumIf(calls, COND), sumIf(errors, COND), sumIf(timeouts, COND),
	sumIf(tokens_in, COND), sumIf(tokens_out, COND), sumIf(cost_usd, COND),
	sumIf(latency_sum, COND), maxIf(latency_max, COND), quantilesMergeIf(0.5, 0.95, 0.99)(latency_q, COND)`)
}

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
type Point struct {
	Time  time.Time `json:"time"`
	Group string    `json:"group,omitempty"`
	Stats
}

// TrendRequest asks for volume, errors and latency per interval.
type TrendRequest struct {
	Filter
	Interval Interval  `json:"interval"`
	GroupBy  Dimension `json:"group_by,omitempty"`
}

func (r TrendRequest) build() (string, clickhouse.Parameters, error) {
	if err := r.Filter.validate(); err != nil {
		return "", nil, err
	}
	ru := pickRollup(r.Filter, r.Interval)
	bucket, ok := bucketSQL(ru, r.Interval)
	if !ok {
		return "", nil, invalid("interval %q: want minute, hour or day", r.Interval)
	}
	if r.To.Sub(r.From)/intervalDur[r.Interval] > maxBuckets {
		return "", nil, invalid("too many %s buckets; use a larger interval or a shorter range", r.Interval)
	}
	dim, ok := dimensions[r.GroupBy]
	if !ok {
		return "", nil, invalid("group by %q: want one of %s", r.GroupBy, dimensionNames())
	}
	b := newBuilder()
	b.scope(r.Filter, ru.col, true)
	if dim.where != "" {
		b.cond(dim.where)
	}
	sql := `SELECT ` + bucket + ` AS t, ` + dim.expr + ` AS g, ` + statsSQL("") + `
FROM ` + ru.table + `
WHERE ` + b.whereSQL() + `
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
	var out []Point
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
type Metric string

// Metrics.
const (
	ByCalls     Metric = "calls"
	ByErrors    Metric = "errors"
	ByErrorRate Metric = "error_rate"
	ByCost      Metric = "cost"
	ByTokens    Metric = "tokens"
	ByLatency   Metric = "latency_p95"
)

var metricSQL = map[Metric]string{
	ByCalls:     "calls_",
	ByErrors:    "errors_",
	ByErrorRate: "if(calls_ = 0, 0, errors_ / calls_)",
	ByCost:      "cost_",
	ByTokens:    "tokens_",
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
type Item struct {
	Group string  `json:"group"`
	Value float64 `json:"value"`
	Stats
}

func (r TopRequest) build() (string, clickhouse.Parameters, error) {
	if err := r.Filter.validate(); err != nil {
		return "", nil, err
	}
	dim, ok := dimensions[r.By]
	if !ok || r.By == ByNone {
		return "", nil, invalid("by %q: want one of %s", r.By, dimensionNames())
	}
	order, ok := metricSQL[r.Metric]
	if !ok {
		return "", nil, invalid("metric %q: want calls, errors, error_rate, cost, tokens or latency_p95", r.Metric)
	}
	if r.Limit <= 0 || r.Limit > MaxLimit {
		return "", nil, invalid("limit %d: want 1..%d", r.Limit, MaxLimit)
	}
	ru := pickRollup(r.Filter, Hour)
	b := newBuilder()
	b.scope(r.Filter, ru.col, true)
	if dim.where != "" {
		b.cond(dim.where)
	}
	limit := b.param("limit", "UInt32", strconv.Itoa(r.Limit))
	sql := `SELECT g, toFloat64(` + order + `) AS v, calls_, errors_, timeouts_, tin_, tout_, cost_, lsum_, lmax_, q_
FROM (
	SELECT ` + dim.expr + ` AS g,
		sum(calls) AS calls_, sum(errors) AS errors_, sum(timeouts) AS timeouts_,
		sum(tokens_in) AS tin_, sum(tokens_out) AS tout_, tin_ + tout_ AS tokens_, sum(cost_usd) AS cost_,
		sum(latency_sum) AS lsum_, max(latency_max) AS lmax_, quantilesMerge(0.5, 0.95, 0.99)(latency_q) AS q_
	FROM ` + ru.table + `
	WHERE ` + b.whereSQL() + `
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
	var out []Item
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
		return nil, invalid("definition is required")
	}
	return q.Top(ctx, TopRequest{Filter: f, By: ByStep, Metric: ByLatency, Limit: limit})
}

// Approval is the turnaround of approval decisions made under one role.
type Approval struct {
	Role      string  `json:"role"`
	Decisions uint64  `json:"decisions"`
	Approved  uint64  `json:"approved"`
	Rejected  uint64  `json:"rejected"`
	TimedOut  uint64  `json:"timed_out"`
	AvgMS     float64 `json:"turnaround_avg_ms"`
	P50MS     float64 `json:"turnaround_p50_ms"`
	P95MS     float64 `json:"turnaround_p95_ms"`
	P99MS     float64 `json:"turnaround_p99_ms"`
	MaxMS     float64 `json:"turnaround_max_ms"`
}

func approvalsSQL(f Filter) (string, clickhouse.Parameters, error) {
	if err := f.validate(); err != nil {
		return "", nil, err
	}
	b := newBuilder()
	b.scope(f, "minute", false)
	sql := `SELECT role, sum(decisions),
	sumIf(decisions, decision = 'approve'), sumIf(decisions, decision = 'reject'), sumIf(decisions, decision = 'timeout'),
	sum(turnaround_sum), max(turnaround_max), quantilesMerge(0.5, 0.95, 0.99)(turnaround_q)
FROM ` + schema.TableApprovals1m + `
WHERE ` + b.whereSQL() + `
GROUP BY role
ORDER BY role`
	return sql, b.params, nil
}

// ApprovalTurnaround returns, per approver role, how many decisions were
// made and how long they took from waiting to decided. A decider with
// several roles counts under each (labels["roles"] of approval records).
// Filter.Definition and StepID apply; Kind and Target do not.
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
	var out []Approval
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

// Change is one group's figures in both periods and the relative changes
// ((current-previous)/previous; nil when the previous value is 0).
type Change struct {
	Group     string   `json:"group,omitempty"`
	Current   Stats    `json:"current"`
	Previous  Stats    `json:"previous"`
	Calls     *float64 `json:"calls_change"`
	ErrorRate *float64 `json:"error_rate_change"`
	P95       *float64 `json:"latency_p95_change"`
	Cost      *float64 `json:"cost_change"`
	Tokens    *float64 `json:"tokens_change"`
}

func (r CompareRequest) build() (string, clickhouse.Parameters, error) {
	if err := r.Filter.validate(); err != nil {
		return "", nil, err
	}
	dim, ok := dimensions[r.By]
	if !ok {
		return "", nil, invalid("by %q: want one of %s", r.By, dimensionNames())
	}
	wide := r.Filter
	wide.From = r.From.Add(-r.To.Sub(r.From))
	ru := pickRollup(wide, Hour)
	b := newBuilder()
	b.scope(wide, ru.col, true)
	if dim.where != "" {
		b.cond(dim.where)
	}
	cur := ru.col + " >= toDateTime(" + b.param("split", "Int64", unix(r.From)) + ", 'UTC')"
	prev := ru.col + " < toDateTime({split:Int64}, 'UTC')"
	sql := `SELECT ` + dim.expr + ` AS g, ` + statsSQL(cur) + `, ` + statsSQL(prev) + `
FROM ` + ru.table + `
WHERE ` + b.whereSQL() + `
GROUP BY g
ORDER BY g`
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
	var out []Change
	for rows.Next() {
		var c Change
		var cur, prev statsScan
		dest := append([]any{&c.Group}, cur.dest()...)
		if err := rows.Scan(append(dest, prev.dest()...)...); err != nil {
			return nil, fmt.Errorf("compare query: %w", err)
		}
		c.Current, c.Previous = cur.stats(), prev.stats()
		c.Calls = change(float64(c.Current.Calls), float64(c.Previous.Calls))
		c.ErrorRate = change(c.Current.ErrorRate, c.Previous.ErrorRate)
		c.P95 = change(c.Current.P95MS, c.Previous.P95MS)
		c.Cost = change(c.Current.CostUSD, c.Previous.CostUSD)
		c.Tokens = change(float64(c.Current.TokensIn+c.Current.TokensOut), float64(c.Previous.TokensIn+c.Previous.TokensOut))
		out = append(out, c)
	}
	return out, rows.Err()
}

func change(cur, prev float64) *float64 {
	if prev == 0 {
		return nil
	}
	v := (cur - prev) / prev
	return &v
}

// TokensSince returns the tokens (in + out) used by tenant's calls that
// started at or after since: whole minutes from the rollup, and the partial
// first minute from the raw table, so the answer is exact to the
// millisecond. For budget checks.
func (q *Querier) TokensSince(ctx context.Context, tenant string, since time.Time) (int64, error) {
	if tenant == "" {
		return 0, invalid("tenant is required")
	}
	sql, params := tokensSinceSQL(tenant, since)
	var n int64
	if err := q.conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql).Scan(&n); err != nil {
		return 0, fmt.Errorf("tokens since %s for %s: %w", since.Format(time.RFC3339), tenant, err)
	}
	return n, nil
}

func tokensSinceSQL(tenant string, since time.Time) (string, clickhouse.Parameters) {
	b := newBuilder()
	sinceMS := b.param("since_ms", "Int64", strconv.FormatInt(since.UnixMilli(), 10))
	t := b.param("tenant", "String", tenant)
	// First whole minute at or after since.
	boundary := since.Truncate(time.Minute)
	if !boundary.Equal(since) {
		boundary = boundary.Add(time.Minute)
	}
	bnd := b.param("boundary", "Int64", unix(boundary))
	sql := `SELECT toInt64(
	(SELECT sum(tokens_in + tokens_out) FROM ` + schema.TableCalls1m + `
		WHERE tenant = ` + t + ` AND minute >= toDateTime(` + bnd + `, 'UTC'))
	+
	(SELECT sum(tokens_in + tokens_out) FROM ` + schema.TableCalls + ` FINAL
		WHERE tenant = ` + t + ` AND ts >= fromUnixTimestamp64Milli(` + sinceMS + `, 'UTC')
		AND ts < toDateTime(` + bnd + `, 'UTC')))`
	return sql, b.params
}
