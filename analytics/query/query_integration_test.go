//go:build integration

package query_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/callgen"
	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/schema"
	"github.com/gateflow/gateflow/analytics/sink"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

func TestMain(m *testing.M) { embeddedtest.Main(m) }

// agg is computed in the test, independently of ClickHouse.
type agg struct {
	calls, errors, timeouts uint64
	tin, tout               int64
	cost, sum, max          float64
	lat                     []float64
}

func (a *agg) add(r record.Record) {
	a.calls++
	if r.Outcome != record.OutcomeOK {
		a.errors++
	}
	if r.Outcome == record.OutcomeTimeout {
		a.timeouts++
	}
	a.tin += r.TokensIn
	a.tout += r.TokensOut
	a.cost += r.CostUSD
	a.sum += r.LatencyMS
	a.max = max(a.max, r.LatencyMS)
	a.lat = append(a.lat, r.LatencyMS)
}

// quantile is the exact quantile: linear interpolation at level*(n-1) of
// the sorted values.
func quantile(vals []float64, level float64) float64 {
	s := slices.Clone(vals)
	sort.Float64s(s)
	idx := level * float64(len(s)-1)
	lo := int(idx)
	if lo+1 >= len(s) {
		return s[lo]
	}
	return s[lo]*(float64(lo+1)-idx) + s[lo+1]*(idx-float64(lo))
}

// tdigestEpsilon is ClickHouse's t-digest accuracy parameter; the rank
// error docs/ANALYTICS.md states for level q is 2·ε·q(1−q) of the values.
const tdigestEpsilon = 0.01

// rankAllowance is how many values a t-digest answer may lie from the
// exact quantile's position, as docs/ANALYTICS.md states it: the rank
// error 2·ε·q(1−q)·n, plus one value (the step between neighbouring
// values, which is all a small group or a tail level can be off by).
func rankAllowance(level float64, n int) float64 {
	return 2*tdigestEpsilon*level*(1-level)*float64(n) + 1
}

// rankDistance is how many values v lies from the exact level-quantile
// of vals: 0 when v is between the two values the exact quantile
// interpolates, else the distance from v's position among the sorted
// values (fractional, linear between neighbours) to level·(n−1).
func rankDistance(vals []float64, level, v float64) float64 {
	s := slices.Clone(vals)
	sort.Float64s(s)
	idx := level * float64(len(s)-1)
	if v >= s[int(math.Floor(idx))] && v <= s[int(math.Ceil(idx))] {
		return 0
	}
	i := sort.SearchFloat64s(s, v) // first value >= v
	var pos float64
	switch {
	case i == 0:
		pos = 0
	case i == len(s):
		pos = float64(len(s) - 1)
	case s[i] == v:
		j := i // ties: the equal value nearest to idx
		for j+1 < len(s) && s[j+1] == v {
			j++
		}
		pos = math.Max(float64(i), math.Min(idx, float64(j)))
	default:
		pos = float64(i-1) + (v-s[i-1])/(s[i]-s[i-1])
	}
	return math.Abs(pos - idx)
}

// rankUse records, per level, the largest share of rankAllowance an
// answer used, and the largest rank error in percentage points among
// groups of at least 1000 values; the test logs them (docs/ANALYTICS.md
// quotes them).
var rankUse = map[float64]*struct{ share, pp1000 float64 }{}

// quantileOK reports whether v, ClickHouse's answer for the
// level-quantile of vals, is within rankAllowance of the exact rank.
// Answers are Float32: rounding moves v by ~1e-7 relative, i.e. a tiny
// fraction of a value, hence the 0.05 of slack.
func quantileOK(vals []float64, level, v float64) bool {
	d := rankDistance(vals, level, v)
	allow := rankAllowance(level, len(vals))
	u := rankUse[level]
	if u == nil {
		u = &struct{ share, pp1000 float64 }{}
		rankUse[level] = u
	}
	u.share = max(u.share, d/allow)
	if len(vals) >= 1000 {
		u.pp1000 = max(u.pp1000, 100*d/float64(len(vals)))
	}
	return d <= allow+0.05
}

func near(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))+1e-9
}

// checkStats compares ClickHouse's Stats with the test's aggregate. Counts
// and token sums must be exact; float sums to 1e-9; percentiles within the
// documented t-digest rank error (quantileOK).
func checkStats(t *testing.T, what string, got query.Stats, want *agg) {
	t.Helper()
	if got.Calls != want.calls || got.Errors != want.errors || got.Timeouts != want.timeouts ||
		got.TokensIn != want.tin || got.TokensOut != want.tout {
		t.Errorf("%s: counts %d/%d/%d tokens %d/%d, want %d/%d/%d tokens %d/%d", what,
			got.Calls, got.Errors, got.Timeouts, got.TokensIn, got.TokensOut,
			want.calls, want.errors, want.timeouts, want.tin, want.tout)
		return
	}
	if !near(got.CostUSD, want.cost, 1e-9) || !near(got.AvgMS, want.sum/float64(want.calls), 1e-9) || got.MaxMS != want.max {
		t.Errorf("%s: cost %v avg %v max %v, want %v %v %v", what, got.CostUSD, got.AvgMS, got.MaxMS,
			want.cost, want.sum/float64(want.calls), want.max)
	}
	if !near(got.ErrorRate, float64(want.errors)/float64(want.calls), 1e-12) {
		t.Errorf("%s: error rate %v", what, got.ErrorRate)
	}
	for i, l := range []float64{0.5, 0.95, 0.99} {
		g := []float64{got.P50MS, got.P95MS, got.P99MS}[i]
		if !quantileOK(want.lat, l, g) {
			t.Errorf("%s: p%v = %v, exact %v (n=%d): %.2f values from the exact rank, beyond the documented %.2f",
				what, l*100, g, quantile(want.lat, l), len(want.lat), rankDistance(want.lat, l, g), rankAllowance(l, len(want.lat)))
		}
	}
}

type fixture struct {
	q     *query.Querier
	conn  driver.Conn
	recs  []record.Record
	start time.Time
}

const tenant = "acme"

// migrated opens a connection to the ClickHouse at dsn, closed when the
// test ends, and applies the migrations with opts.
func migrated(t *testing.T, dsn string, opts schema.Options) driver.Conn {
	t.Helper()
	o, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := schema.Migrate(context.Background(), conn, opts); err != nil {
		t.Fatal(err)
	}
	return conn
}

func setup(t *testing.T) fixture {
	dsn, _ := embeddedtest.StartClickHouse(t)
	conn := migrated(t, dsn, schema.Options{})
	ctx := context.Background()
	// Three whole UTC days and a bit, so that questions read every level.
	start := time.Now().UTC().Add(-4 * 24 * time.Hour).Truncate(24 * time.Hour)
	recs := callgen.New(42, start, 3*24*time.Hour+5*time.Hour).Generate(60_000)
	// A seventh of the calls belong to orchestrations started by triggers.
	for i := range recs {
		if i%7 == 0 {
			if recs[i].Labels == nil {
				recs[i].Labels = map[string]string{}
			}
			recs[i].Labels[calls.LabelTrigger] = []string{"webhook:gh", "schedule:nightly", "topic:orders"}[i%3]
		}
	}
	rows := make([]sink.Row, len(recs))
	for i, r := range recs {
		rows[i] = sink.Row{Record: r, Topic: "t", Partition: int32(i % 3), Offset: int64(i)}
	}
	for chunk := range slices.Chunk(rows, 10_000) {
		if err := sink.InsertRows(ctx, conn, chunk); err != nil {
			t.Fatal(err)
		}
	}
	return fixture{q: query.New(conn), conn: conn, recs: recs, start: start}
}

// each returns the tenant's records in [from, to) that pass keep.
func (fx fixture) each(from, to time.Time, keep func(record.Record) bool) []record.Record {
	var out []record.Record
	for _, r := range fx.recs {
		ts := time.UnixMilli(r.TS)
		if r.Tenant == tenant && !ts.Before(from) && ts.Before(to) && (keep == nil || keep(r)) {
			out = append(out, r)
		}
	}
	return out
}

func TestQueriesMatchIndependentComputation(t *testing.T) {
	clear(rankUse)
	fx := setup(t)
	ranges := []struct {
		name     string
		from, to time.Time
	}{
		// Whole days: the daily and hourly rollups.
		{"whole days", fx.start, fx.start.Add(3 * 24 * time.Hour)},
		// Ragged ends: every level, the raw table for the partial minutes.
		{"ragged", fx.start.Add(10*time.Hour + 17*time.Minute + 3250*time.Millisecond),
			fx.start.Add(2*24*time.Hour + 5*time.Hour + time.Minute + 7500*time.Millisecond)},
	}
	for _, rg := range ranges {
		t.Run(rg.name, func(t *testing.T) { checkQueries(t, fx, rg.from, rg.to) })
	}
	for _, l := range []float64{0.5, 0.95, 0.99} {
		if u := rankUse[l]; u != nil {
			t.Logf("p%v: at most %.0f%% of the documented rank allowance used; worst group of >= 1000 values %.3f pp from the exact rank",
				l*100, 100*u.share, u.pp1000)
		}
	}
}

func checkQueries(t *testing.T, fx fixture, from, to time.Time) {
	ctx := context.Background()
	f := query.Filter{Tenant: tenant, From: from, To: to}

	t.Run("trend per hour", func(t *testing.T) {
		pts, err := fx.q.Trend(ctx, query.TrendRequest{Filter: f, Interval: query.Hour})
		if err != nil {
			t.Fatal(err)
		}
		want := map[time.Time]*agg{}
		for _, r := range fx.each(from, to, nil) {
			h := time.UnixMilli(r.TS).UTC().Truncate(time.Hour)
			if want[h] == nil {
				want[h] = &agg{}
			}
			want[h].add(r)
		}
		if len(pts) != len(want) {
			t.Fatalf("%d points, want %d", len(pts), len(want))
		}
		for _, p := range pts {
			checkStats(t, p.Time.String(), p.Stats, want[p.Time])
		}
	})

	t.Run("trend per day by definition", func(t *testing.T) {
		pts, err := fx.q.Trend(ctx, query.TrendRequest{Filter: f, Interval: query.Day, GroupBy: query.ByDefinition})
		if err != nil {
			t.Fatal(err)
		}
		type key struct {
			day time.Time
			def string
		}
		want := map[key]*agg{}
		for _, r := range fx.each(from, to, func(r record.Record) bool { return r.Definition != "" }) {
			k := key{time.UnixMilli(r.TS).UTC().Truncate(24 * time.Hour), r.Definition}
			if want[k] == nil {
				want[k] = &agg{}
			}
			want[k].add(r)
		}
		if len(pts) != len(want) {
			t.Fatalf("%d points, want %d", len(pts), len(want))
		}
		for _, p := range pts {
			checkStats(t, p.Time.String()+" "+p.Group, p.Stats, want[key{p.Time, p.Group}])
		}
	})

	t.Run("trend per hour by trigger", func(t *testing.T) {
		pts, err := fx.q.Trend(ctx, query.TrendRequest{Filter: f, Interval: query.Hour, GroupBy: query.ByTrigger})
		if err != nil {
			t.Fatal(err)
		}
		type key struct {
			hour    time.Time
			trigger string
		}
		want := map[key]*agg{}
		for _, r := range fx.each(from, to, func(r record.Record) bool { return r.Labels[calls.LabelTrigger] != "" }) {
			k := key{time.UnixMilli(r.TS).UTC().Truncate(time.Hour), r.Labels[calls.LabelTrigger]}
			if want[k] == nil {
				want[k] = &agg{}
			}
			want[k].add(r)
		}
		if len(pts) != len(want) {
			t.Fatalf("%d points, want %d", len(pts), len(want))
		}
		for _, p := range pts {
			checkStats(t, p.Time.String()+" "+p.Group, p.Stats, want[key{p.Time, p.Group}])
		}
	})

	t.Run("trend per minute by model, one model", func(t *testing.T) {
		model := "openai/gpt-4o"
		ff := f
		ff.Target = model
		pts, err := fx.q.Trend(ctx, query.TrendRequest{Filter: ff, Interval: query.Minute, GroupBy: query.ByModel})
		if err != nil {
			t.Fatal(err)
		}
		want := map[time.Time]*agg{}
		for _, r := range fx.each(from, to, func(r record.Record) bool { return r.Kind == calls.KindModel && r.Target == model }) {
			m := time.UnixMilli(r.TS).UTC().Truncate(time.Minute)
			if want[m] == nil {
				want[m] = &agg{}
			}
			want[m].add(r)
		}
		if len(pts) != len(want) {
			t.Fatalf("%d points, want %d", len(pts), len(want))
		}
		for _, p := range pts {
			if p.Group != model {
				t.Fatalf("group %q", p.Group)
			}
			checkStats(t, p.Time.String(), p.Stats, want[p.Time])
		}
	})

	groupBy := func(recs []record.Record, key func(record.Record) string) map[string]*agg {
		out := map[string]*agg{}
		for _, r := range recs {
			k := key(r)
			if out[k] == nil {
				out[k] = &agg{}
			}
			out[k].add(r)
		}
		return out
	}

	topCases := []struct {
		by     query.Dimension
		metric query.Metric
		keep   func(record.Record) bool
		key    func(record.Record) string
		value  func(*agg) float64
	}{
		{query.ByService, query.ByErrors, func(r record.Record) bool { return r.Kind == calls.KindHTTP },
			func(r record.Record) string { return r.Target }, func(a *agg) float64 { return float64(a.errors) }},
		{query.ByModel, query.ByCost, func(r record.Record) bool { return r.Kind == calls.KindModel },
			func(r record.Record) string { return r.Target }, func(a *agg) float64 { return a.cost }},
		{query.ByDefinition, query.ByTokens, func(r record.Record) bool { return r.Definition != "" },
			func(r record.Record) string { return r.Definition }, func(a *agg) float64 { return float64(a.tin + a.tout) }},
		{query.ByTarget, query.ByLatency, nil,
			func(r record.Record) string { return r.Target }, func(a *agg) float64 { return quantile(a.lat, 0.95) }},
		{query.ByKind, query.ByErrorRate, nil,
			func(r record.Record) string { return string(r.Kind) }, func(a *agg) float64 { return float64(a.errors) / float64(a.calls) }},
	}
	for _, c := range topCases {
		t.Run(fmt.Sprintf("top %s by %s", c.by, c.metric), func(t *testing.T) {
			items, err := fx.q.Top(ctx, query.TopRequest{Filter: f, By: c.by, Metric: c.metric, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			want := groupBy(fx.each(from, to, c.keep), c.key)
			keys := make([]string, 0, len(want))
			for k := range want {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool {
				vi, vj := c.value(want[keys[i]]), c.value(want[keys[j]])
				if vi != vj {
					return vi > vj
				}
				return keys[i] < keys[j]
			})
			if len(keys) > 3 {
				keys = keys[:3]
			}
			if len(items) != len(keys) {
				t.Fatalf("%d items, want %d", len(items), len(keys))
			}
			for i, it := range items {
				if it.Group != keys[i] {
					t.Errorf("rank %d: %s, want %s", i+1, it.Group, keys[i])
					continue
				}
				checkStats(t, it.Group, it.Stats, want[it.Group])
			}
		})
	}

	t.Run("slowest steps of triage", func(t *testing.T) {
		ff := f
		ff.Definition = "triage"
		items, err := fx.q.SlowestSteps(ctx, ff, 10)
		if err != nil {
			t.Fatal(err)
		}
		want := groupBy(fx.each(from, to, func(r record.Record) bool { return r.Definition == "triage" && r.StepID != "" }),
			func(r record.Record) string { return r.StepID })
		if len(items) != len(want) {
			t.Fatalf("%d steps, want %d", len(items), len(want))
		}
		for i, it := range items {
			checkStats(t, it.Group, it.Stats, want[it.Group])
			if i > 0 && it.P95MS > items[i-1].P95MS {
				t.Errorf("not sorted by p95: %v after %v", it.P95MS, items[i-1].P95MS)
			}
		}
	})

	t.Run("approval turnaround by role", func(t *testing.T) {
		got, err := fx.q.ApprovalTurnaround(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]*agg{}
		decisions := map[string]map[string]uint64{}
		for _, r := range fx.each(from, to, func(r record.Record) bool { return r.Kind == calls.KindApproval }) {
			for _, role := range strings.Split(r.Labels[record.LabelRoles], ",") {
				if want[role] == nil {
					want[role] = &agg{}
					decisions[role] = map[string]uint64{}
				}
				want[role].add(r)
				decisions[role][r.Labels[record.LabelDecision]]++
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d roles, want %d", len(got), len(want))
		}
		for _, a := range got {
			w := want[a.Role]
			if a.Decisions != w.calls || a.Approved != decisions[a.Role]["approve"] ||
				a.Rejected != decisions[a.Role]["reject"] || a.TimedOut != decisions[a.Role]["timeout"] {
				t.Errorf("%s: %+v, want %d decisions %v", a.Role, a, w.calls, decisions[a.Role])
			}
			checkStats(t, "role "+a.Role, query.Stats{Calls: a.Decisions, Errors: w.errors, Timeouts: w.timeouts,
				ErrorRate: float64(w.errors) / float64(w.calls), CostUSD: w.cost, AvgMS: a.AvgMS, MaxMS: a.MaxMS,
				P50MS: a.P50MS, P95MS: a.P95MS, P99MS: a.P99MS}, w)
		}
	})

	t.Run("period over period by kind", func(t *testing.T) {
		mid := from.Add(to.Sub(from) / 2)
		got, err := fx.q.Compare(ctx, query.CompareRequest{Filter: query.Filter{Tenant: tenant, From: mid, To: to}, By: query.ByKind})
		if err != nil {
			t.Fatal(err)
		}
		key := func(r record.Record) string { return string(r.Kind) }
		cur := groupBy(fx.each(mid, to, nil), key)
		prev := groupBy(fx.each(from, mid, nil), key)
		if len(got) != len(cur) {
			t.Fatalf("%d groups, want %d", len(got), len(cur))
		}
		for _, c := range got {
			checkStats(t, "current "+c.Group, c.Current, cur[c.Group])
			checkStats(t, "previous "+c.Group, c.Previous, prev[c.Group])
			w := (float64(cur[c.Group].calls) - float64(prev[c.Group].calls)) / float64(prev[c.Group].calls)
			if c.Calls == nil || !near(*c.Calls, w, 1e-12) {
				t.Errorf("%s: calls change %v, want %v", c.Group, c.Calls, w)
			}
		}
	})

	t.Run("tokens since", func(t *testing.T) {
		for _, since := range []time.Time{from, from.Add(95*time.Minute + 17*time.Second + 250*time.Millisecond), from.Truncate(24 * time.Hour)} {
			got, err := fx.q.TokensSince(ctx, tenant, since)
			if err != nil {
				t.Fatal(err)
			}
			var want int64
			for _, r := range fx.each(since, fx.start.Add(30*24*time.Hour), nil) {
				want += r.TokensIn + r.TokensOut
			}
			if got != want {
				t.Errorf("since %s: %d tokens, want %d", since, got, want)
			}
		}
	})

	t.Run("response cache by model", func(t *testing.T) {
		got, err := fx.q.Cache(ctx, query.CacheRequest{Filter: f, By: query.ByModel})
		if err != nil {
			t.Fatal(err)
		}
		type fig struct {
			lookups, hits uint64
			saved, cost   float64
		}
		want := map[string]*fig{}
		total := &fig{}
		for _, r := range fx.each(from, to, func(r record.Record) bool { return r.Kind == calls.KindModel && r.Cache != "" }) {
			for _, w := range []*fig{total, want[r.Target]} {
				if w == nil {
					w = &fig{}
					want[r.Target] = w
				}
				w.lookups++
				if r.Cache == "hit" {
					w.hits++
				}
				w.saved += r.CostSavedUSD
				w.cost += r.CostUSD
			}
		}
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("%d groups, want %d", len(got), len(want))
		}
		for i, g := range got {
			w := want[g.Group]
			if w == nil || g.Lookups != w.lookups || g.Hits != w.hits || g.Misses != w.lookups-w.hits ||
				!near(g.CostSavedUSD, w.saved, 1e-9) || !near(g.CostUSD, w.cost, 1e-9) || !near(g.HitRate, float64(w.hits)/float64(w.lookups), 1e-12) {
				t.Errorf("%s: %+v, want %+v", g.Group, g, w)
			}
			if i > 0 && g.CostSavedUSD > got[i-1].CostSavedUSD {
				t.Errorf("not ordered by cost saved")
			}
		}
		sum, err := fx.q.Cache(ctx, query.CacheRequest{Filter: f})
		if err != nil || len(sum) != 1 || sum[0].Group != "" || sum[0].Lookups != total.lookups || sum[0].Hits != total.hits ||
			!near(sum[0].CostSavedUSD, total.saved, 1e-9) {
			t.Errorf("total %+v %v, want %+v", sum, err, total)
		}
	})

	t.Run("other tenants are invisible", func(t *testing.T) {
		items, err := fx.q.Top(ctx, query.TopRequest{Filter: query.Filter{Tenant: "nobody", From: from, To: to},
			By: query.ByKind, Metric: query.ByCalls, Limit: 10})
		if err != nil || len(items) != 0 {
			t.Fatalf("got %v, %v", items, err)
		}
	})
}

// TestCatalogRollups: calls to catalogue APIs land in the catalogue
// rollups (migration 0007); counts per grant are exact over ragged ranges
// (quotas), and questions by consumer see the caller's calls as consumer
// and every call to the APIs it owns, nothing else.
func TestCatalogRollups(t *testing.T) {
	dsn, _ := embeddedtest.StartClickHouse(t)
	conn := migrated(t, dsn, schema.Options{})
	ctx := context.Background()
	start := time.Now().UTC().Add(-3 * 24 * time.Hour).Truncate(24 * time.Hour)
	type grant struct{ api, owner, consumer, app string }
	grants := []grant{{"invoices", "acme", "beta", ""}, {"invoices", "acme", "beta", "mobile"}, {"invoices", "acme", "gamma", ""}, {"quotes", "zeta", "beta", ""}}
	var rows []sink.Row
	for i := range 4000 {
		g := grants[i%len(grants)]
		r := record.New(calls.KindIngress, start.Add(time.Duration(i)*61*time.Second+time.Duration(i%997)*time.Millisecond))
		r.Tenant, r.Target, r.Outcome, r.LatencyMS = g.consumer, "POST /v1/catalog/{api}/call", record.OutcomeOK, 5
		r.API, r.APIVersion, r.Consumer, r.ConsumerApp = g.api, "1", g.consumer, g.app
		rows = append(rows, sink.Row{Record: r, Topic: "t", Offset: int64(i)})
	}
	if err := sink.InsertRows(ctx, conn, rows); err != nil {
		t.Fatal(err)
	}
	q := query.New(conn)
	from, to := start.Add(7*time.Hour+13*time.Minute+1500*time.Millisecond), start.Add(2*24*time.Hour+3*time.Minute+250*time.Millisecond)
	for _, g := range grants {
		var want int64
		for _, r := range rows {
			ts := time.UnixMilli(r.TS)
			if r.API == g.api && r.Consumer == g.consumer && r.ConsumerApp == g.app && !ts.Before(from) && ts.Before(to) {
				want++
			}
		}
		got, err := q.APICalls(ctx, g.api, g.consumer, g.app, from, to)
		if err != nil || got != want {
			t.Fatalf("calls of %+v: %d %v, want %d", g, got, err, want)
		}
	}
	top := func(tenant string, owned []string) map[string]uint64 {
		items, err := q.Top(ctx, query.TopRequest{Filter: query.Filter{Tenant: tenant, From: start, To: start.Add(4 * 24 * time.Hour), OwnedAPIs: owned},
			By: query.ByConsumerApp, Metric: query.ByCalls, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]uint64{}
		for _, it := range items {
			out[it.Group] = it.Calls
		}
		return out
	}
	// The owner of invoices sees every consumer of invoices, not quotes.
	if got := top("acme", []string{"invoices"}); len(got) != 3 || got["beta/"] != 1000 || got["beta/mobile"] != 1000 || got["gamma/"] != 1000 {
		t.Fatalf("owner's view: %v", got)
	}
	// beta sees its own calls to invoices (both apps) and quotes, as one
	// group per app.
	if got := top("beta", nil); len(got) != 2 || got["beta/"] != 2000 || got["beta/mobile"] != 1000 {
		t.Fatalf("consumer's view: %v", got)
	}
	if got := top("gamma", nil); len(got) != 1 {
		t.Fatalf("gamma's view: %v", got)
	}
}

// TestCallsByTrace: the raw calls list, from a slow row to its trace and
// back to every call of the trace, within the tenant (issue 15 item 4).
func TestCallsByTrace(t *testing.T) {
	dsn, _ := embeddedtest.StartClickHouse(t)
	conn := migrated(t, dsn, schema.Options{})
	ctx := context.Background()
	const slowTrace, otherTrace = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)
	var rows []sink.Row
	add := func(tenant string, kind calls.Kind, latency float64, traceID string) {
		r := record.New(kind, start.Add(time.Duration(len(rows))*time.Second))
		r.Tenant, r.Target, r.Outcome, r.LatencyMS = tenant, "svc", record.OutcomeOK, latency
		r.TraceID, r.SpanID = traceID, fmt.Sprintf("%016x", len(rows)+1)
		rows = append(rows, sink.Row{Record: r, Topic: "t", Offset: int64(len(rows))})
	}
	add("acme", calls.KindIngress, 900, slowTrace)
	add("acme", calls.KindHTTP, 850, slowTrace)
	add("acme", calls.KindModel, 30, slowTrace)
	add("acme", calls.KindIngress, 5, otherTrace)
	add("beta", calls.KindHTTP, 5000, slowTrace) // another tenant's row of the same id
	add("acme", calls.KindHTTP, 1, "")
	// Inserted twice (a redelivery): FINAL shows each call once.
	for range 2 {
		if err := sink.InsertRows(ctx, conn, rows); err != nil {
			t.Fatal(err)
		}
	}
	q := query.New(conn)
	f := query.Filter{Tenant: "acme", From: start.Add(-time.Minute), To: start.Add(time.Hour)}
	slowest, err := q.Calls(ctx, query.CallsRequest{Filter: f, Limit: 1})
	if err != nil || len(slowest) != 1 || slowest[0].TraceID != slowTrace || slowest[0].LatencyMS != 900 || slowest[0].SpanID == "" {
		t.Fatalf("slowest: %+v %v", slowest, err)
	}
	trace, err := q.Calls(ctx, query.CallsRequest{Filter: f, TraceID: slowest[0].TraceID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range trace {
		kinds = append(kinds, c.Kind)
	}
	if got := strings.Join(kinds, ","); got != "ingress,http,model" {
		t.Fatalf("calls of the trace, slowest first: %s (%+v)", got, trace)
	}
}
