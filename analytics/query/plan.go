package query

import (
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	kinds "github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/schema"
)

// level is one table calls (or approvals) can be read from: the raw table
// or a rollup, with its time column and bucket size.
type level struct {
	table string
	col   string
	gran  time.Duration
}

// rawGran is the resolution of the raw table's ts (milliseconds).
const rawGran = time.Millisecond

func (l level) raw() bool { return l.gran == rawGran }

// source is a family of tables holding the same facts at several
// resolutions (coarsest first, raw last), and how to read partial
// aggregates from each so that they can be merged: rollup rows as they
// are, raw rows aggregated by the segment's own GROUP BY.
type source struct {
	levels []level
	// rollupCols and rawCols yield the same partial aggregates, with the
	// same names, from a rollup and from the raw table.
	rollupCols, rawCols string
	// rawWhere restricts the raw table to the source's rows.
	rawWhere string
	// keys are extra grouping columns every segment yields (by the same
	// expression in rollups and raw rows, given as rollup and raw forms).
	rollupKeys, rawKeys string
}

const tdigestLevels = "0.5, 0.95, 0.99"

var calls = source{
	levels: []level{
		{schema.TableCalls1d, "day", 24 * time.Hour},
		{schema.TableCalls1h, "hour", time.Hour},
		{schema.TableCalls1m, "minute", time.Minute},
		{schema.TableCalls, "ts", rawGran},
	},
	rollupCols: `calls, errors, timeouts, tokens_in, tokens_out, cost_usd, latency_sum, latency_max, latency_q`,
	rawCols: `count() AS calls, countIf(outcome != 'ok') AS errors, countIf(outcome = 'timeout') AS timeouts,
		sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, sum(cost_usd) AS cost_usd,
		sum(latency_ms) AS latency_sum, max(latency_ms) AS latency_max,
		quantilesTDigestState(` + tdigestLevels + `)(latency_ms) AS latency_q`,
}

// triggerCalls are the calls that carry a trigger label, with rollups
// keyed by trigger (migration 0006).
var triggerCalls = source{
	levels: []level{
		{schema.TableTriggers1d, "day", 24 * time.Hour},
		{schema.TableTriggers1h, "hour", time.Hour},
		{schema.TableTriggers1m, "minute", time.Minute},
		{schema.TableCalls, "ts", rawGran},
	},
	rollupCols: calls.rollupCols,
	rawCols:    calls.rawCols,
	rawWhere:   "trigger != ''",
}

// apiCalls is the catalogue's family: calls to APIs of the catalogue
// (migration 0007), with the same figures as calls.
var apiCalls = source{
	levels: []level{
		{schema.TableAPICalls1d, "day", 24 * time.Hour},
		{schema.TableAPICalls1h, "hour", time.Hour},
		{schema.TableAPICalls1m, "minute", time.Minute},
		{schema.TableCalls, "ts", rawGran},
	},
	rollupCols: calls.rollupCols,
	rawCols:    calls.rawCols,
	rawWhere:   "api != ''",
}

// apiCount reads only the number of catalogue calls (quotas).
var apiCount = source{
	levels:     apiCalls.levels,
	rollupCols: `calls`,
	rawCols:    `count() AS calls`,
	rawWhere:   "api != ''",
}

// proxyCalls are gateway calls (kind proxy) with their API, version,
// consumer and upstream instance as keys; they yield the same partial
// aggregates as calls (no tokens or cost).
var proxyCalls = source{
	levels: []level{
		{schema.TableProxy1d, "day", 24 * time.Hour},
		{schema.TableProxy1h, "hour", time.Hour},
		{schema.TableProxy1m, "minute", time.Minute},
		{schema.TableCalls, "ts", rawGran},
	},
	rollupCols: `calls, errors, timeouts, toInt64(0) AS tokens_in, toInt64(0) AS tokens_out, toFloat64(0) AS cost_usd,
		latency_sum, latency_max, latency_q`,
	rawCols:  calls.rawCols,
	rawWhere: "kind = 'proxy'",
}

// tokens reads only the token sums of calls (TokensSince).
var tokens = source{
	levels:     calls.levels,
	rollupCols: `tokens_in, tokens_out`,
	rawCols:    `sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out`,
}

var approvals = source{
	levels: []level{
		{schema.TableApprovals1d, "day", 24 * time.Hour},
		{schema.TableApprovals1h, "hour", time.Hour},
		{schema.TableApprovals1m, "minute", time.Minute},
		{schema.TableCalls, "ts", rawGran},
	},
	rollupCols: `decisions, turnaround_sum, turnaround_max, turnaround_q`,
	rawCols: `count() AS decisions, sum(latency_ms) AS turnaround_sum, max(latency_ms) AS turnaround_max,
		quantilesTDigestState(` + tdigestLevels + `)(latency_ms) AS turnaround_q`,
	rawWhere: "kind = 'approval'",
	// The approval rollups count a decision once under each of the
	// decider's roles; so does the raw form.
	rollupKeys: `role, decision`,
	rawKeys: `arrayJoin(if(labels['roles'] = '', [''], splitByChar(',', labels['roles']))) AS role,
		if(labels['decision'] != '', labels['decision'], toString(outcome)) AS decision`,
}

// modelCache reads the response cache's figures of model calls.
var modelCache = source{
	levels: []level{
		{schema.TableModelCache1d, "day", 24 * time.Hour},
		{schema.TableModelCache1h, "hour", time.Hour},
		{schema.TableModelCache1m, "minute", time.Minute},
		{schema.TableCalls, "ts", rawGran},
	},
	rollupCols: `lookups, hits, cost_saved_usd, cost_usd`,
	rawCols: `count() AS lookups, countIf(cache = 'hit') AS hits, sum(cost_saved_usd) AS cost_saved_usd,
		sum(cost_usd) AS cost_usd`,
	rawWhere: "kind = 'model' AND cache != ''",
}

// upTo returns the levels whose buckets fit in one bucket of size max.
func (s source) upTo(max time.Duration) []level {
	var out []level
	for _, l := range s.levels {
		if l.gran <= max {
			out = append(out, l)
		}
	}
	return out
}

// segment is a part of a time range read from one level.
type segment struct {
	level
	from, to time.Time
}

// plan splits [from, to) into segments, each read from the coarsest of
// levels (coarsest first, raw last) whose whole buckets it covers: the
// middle from the coarsest rollup, the partial hours at the ends from the
// finer ones, and only the partial minutes from the raw table. Every call
// in [from, to) is read exactly once, so sums are exact to the
// millisecond, and the number of rows read grows with the number of
// buckets, not of calls.
func plan(from, to time.Time, levels []level) []segment {
	if !from.Before(to) || len(levels) == 0 {
		return nil
	}
	l := levels[0]
	if len(levels) == 1 {
		return []segment{{l, from, to}}
	}
	// Truncate works on absolute time since the zero time (a UTC
	// midnight), so days are UTC days.
	a := from.Truncate(l.gran)
	if a.Before(from) {
		a = a.Add(l.gran)
	}
	b := to.Truncate(l.gran)
	if !a.Before(b) {
		return plan(from, to, levels[1:])
	}
	out := plan(from, a, levels[1:])
	out = append(out, segment{l, a, b})
	return append(out, plan(b, to, levels[1:])...)
}

// period is a time range whose rows are marked with p.
type period struct {
	from, to time.Time
	p        int
}

// builder accumulates the parameters of one statement.
type builder struct {
	params clickhouse.Parameters
	n      int
}

func newBuilder() *builder { return &builder{params: clickhouse.Parameters{}} }

// param adds a parameter and returns its placeholder.
func (b *builder) param(name, typ, value string) string {
	b.params[name] = value
	return "{" + name + ":" + typ + "}"
}

// tenantScope restricts a question to the rows of a tenant.
func (b *builder) tenantScope(tenant string) string {
	return "tenant = " + b.param("tenant", "String", tenant)
}

// catalogScope restricts a question on the catalogue's family to what the
// tenant may see: its calls as a consumer, and every call to the APIs it
// owns. Gateway (proxy) records of its APIs are under its tenant; a proxy
// record under another tenant with the same api is that tenant's call to
// a service of its own by that name (docs/PROXY.md, OwnerAccess), never
// the API owner's to see.
func (b *builder) catalogScope(tenant string, owned []string) string {
	t := b.param("tenant", "String", tenant)
	cond := "consumer = " + t
	if len(owned) > 0 {
		quoted := make([]string, len(owned))
		for i, a := range owned {
			quoted[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(a) + "'"
		}
		cond += " OR (api IN " + b.param("owned", "Array(String)", "["+strings.Join(quoted, ",")+"]") +
			" AND (kind != '" + string(kinds.KindProxy) + "' OR tenant = " + t + "))"
	}
	return "(" + cond + ")"
}

// filterConds returns the conditions of f other than tenant and time, as
// parameters. kindTarget is false for sources without those columns.
func (b *builder) filterConds(f Filter, kindTarget bool) []string {
	var out []string
	if f.API != "" {
		out = append(out, "api = "+b.param("api", "String", f.API))
	}
	if f.Consumer != "" {
		out = append(out, "consumer = "+b.param("consumer", "String", f.Consumer))
	}
	if kindTarget {
		if f.Kind != "" {
			out = append(out, "kind = "+b.param("kind", "String", f.Kind))
		}
		if f.Target != "" {
			out = append(out, "target = "+b.param("target", "String", f.Target))
		}
	}
	if f.Definition != "" {
		out = append(out, "definition = "+b.param("definition", "String", f.Definition))
	}
	if f.StepID != "" {
		out = append(out, "step_id = "+b.param("step", "String", f.StepID))
	}
	return out
}

// bucketSQL is the start of the interval bucket of a level's time column.
func bucketSQL(l level, i Interval) string {
	switch i {
	case Minute:
		if l.gran == time.Minute {
			return l.col
		}
		return "toStartOfMinute(" + l.col + ")"
	case Hour:
		if l.gran == time.Hour {
			return l.col
		}
		return "toStartOfHour(" + l.col + ")"
	case Day:
		if l.gran == 24*time.Hour {
			return l.col
		}
		return "toStartOfDay(" + l.col + ")"
	}
	return "toDateTime(0, 'UTC')"
}

// union returns one SELECT per segment of each period, joined by UNION ALL.
// Each yields t (the interval bucket, or 0 when interval is ""), p (the
// period), g (the group, from groupSQL), the source's keys, and its
// partial aggregates. scope (tenantScope, catalogScope, or "" for
// internal questions) and conds apply to every segment.
func (b *builder) union(src source, periods []period, interval Interval, groupSQL string, scope string, conds []string) string {
	var parts []string
	for _, per := range periods {
		levels := src.levels
		if interval != "" {
			levels = src.upTo(intervalDur[interval])
		}
		for _, seg := range plan(per.from, per.to, levels) {
			i := b.n
			b.n++
			var where []string
			if scope != "" {
				where = append(where, scope)
			}
			if seg.raw() {
				from := b.param("s"+strconv.Itoa(i)+"_from", "Int64", strconv.FormatInt(seg.from.UnixMilli(), 10))
				to := b.param("s"+strconv.Itoa(i)+"_to", "Int64", strconv.FormatInt(seg.to.UnixMilli(), 10))
				where = append(where, "ts >= fromUnixTimestamp64Milli("+from+", 'UTC')", "ts < fromUnixTimestamp64Milli("+to+", 'UTC')")
				if src.rawWhere != "" {
					where = append(where, src.rawWhere)
				}
			} else {
				from := b.param("s"+strconv.Itoa(i)+"_from", "Int64", strconv.FormatInt(seg.from.Unix(), 10))
				to := b.param("s"+strconv.Itoa(i)+"_to", "Int64", strconv.FormatInt(seg.to.Unix(), 10))
				where = append(where, seg.col+" >= toDateTime("+from+", 'UTC')", seg.col+" < toDateTime("+to+", 'UTC')")
			}
			where = append(where, conds...)
			cols := []string{bucketSQL(seg.level, interval) + " AS t", strconv.Itoa(per.p) + " AS p", groupSQL + " AS g"}
			var sql string
			if seg.raw() {
				if src.rawKeys != "" {
					cols = append(cols, src.rawKeys)
				}
				cols = append(cols, src.rawCols)
				group := "t, p, g"
				if src.rollupKeys != "" {
					group += ", " + src.rollupKeys
				}
				sql = "SELECT " + strings.Join(cols, ", ") + "\n\tFROM " + seg.table + "\n\tWHERE " + strings.Join(where, " AND ") +
					"\n\tGROUP BY " + group
			} else {
				if src.rollupKeys != "" {
					cols = append(cols, src.rollupKeys)
				}
				cols = append(cols, src.rollupCols)
				sql = "SELECT " + strings.Join(cols, ", ") + "\n\tFROM " + seg.table + "\n\tWHERE " + strings.Join(where, " AND ")
			}
			parts = append(parts, sql)
		}
	}
	return strings.Join(parts, "\n\tUNION ALL\n\t")
}

// tables returns the tables a statement built by union reads, for tests
// and the benchmark.
func tables(sql string) []string {
	var out []string
	for _, part := range strings.Split(sql, "FROM ")[1:] {
		name, _, _ := strings.Cut(part, "\n")
		name, _, _ = strings.Cut(name, " ")
		if name != "(" && name != "" {
			out = append(out, strings.TrimSpace(name))
		}
	}
	return out
}
