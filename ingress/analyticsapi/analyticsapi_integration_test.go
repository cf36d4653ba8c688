//go:build integration

package analyticsapi_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/callgen"
	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/schema"
	"github.com/gateflow/gateflow/analytics/sink"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
	"github.com/gateflow/gateflow/ingress/client"
)

func TestMain(m *testing.M) { embeddedtest.Main(m) }

// totals are computed in the test from the generated records.
type totals struct {
	calls, errors uint64
	tokens        int64
	cost          float64
}

func (t *totals) add(r record.Record) {
	t.calls++
	if r.Outcome != record.OutcomeOK {
		t.errors++
	}
	t.tokens += r.TokensIn + r.TokensOut
	t.cost += r.CostUSD
}

func closeTo(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))+1e-12
}

// TestEndpointsOnClickHouse: records of two tenants in the real ClickHouse
// (inserted as the sink does, views attached), questions asked through a
// real ingress with each tenant's analyst key: every figure equals the one
// computed in Go from that tenant's records only.
func TestEndpointsOnClickHouse(t *testing.T) {
	dsn, _ := embeddedtest.StartClickHouse(t)
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx := context.Background()
	if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-3 * 24 * time.Hour).Truncate(24 * time.Hour)
	recs := callgen.New(9, start, 2*24*time.Hour).Generate(40_000)
	rows := make([]sink.Row, len(recs))
	for i, r := range recs {
		rows[i] = sink.Row{Record: r, Topic: "t", Offset: int64(i)}
	}
	for chunk := range slices.Chunk(rows, 10_000) {
		if err := sink.InsertRows(ctx, conn, chunk); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServer(t, query.New(conn), time.Now)
	// A ragged range: every rollup level and the raw table are read.
	from, to := start.Add(5*time.Hour+7*time.Minute+30*time.Second), start.Add(47*time.Hour+3*time.Minute)
	f := client.AnalyticsFilter{From: from.Format(time.RFC3339Nano), To: to.Format(time.RFC3339Nano)}
	in := func(r record.Record, tenant string) bool {
		ts := time.UnixMilli(r.TS)
		return r.Tenant == tenant && !ts.Before(from) && ts.Before(to)
	}

	for _, key := range []string{"analyst", "other-analyst"} {
		tenant := testKeys[key].tenant
		c := srv.client(t, key)
		t.Run(tenant, func(t *testing.T) {
			// Trend per day by kind.
			type dk struct {
				day  time.Time
				kind string
			}
			want := map[dk]*totals{}
			var all totals
			for _, r := range recs {
				if !in(r, tenant) {
					continue
				}
				k := dk{time.UnixMilli(r.TS).UTC().Truncate(24 * time.Hour), string(r.Kind)}
				if want[k] == nil {
					want[k] = &totals{}
				}
				want[k].add(r)
				all.add(r)
			}
			tr, err := c.AnalyticsTrend(ctx, f, "day", "kind")
			if err != nil {
				t.Fatal(err)
			}
			if tr.Tenant != tenant || len(tr.Points) != len(want) {
				t.Fatalf("trend for %s: %d points, want %d", tr.Tenant, len(tr.Points), len(want))
			}
			var sum uint64
			for _, p := range tr.Points {
				w := want[dk{p.Time, p.Group}]
				if w == nil || p.Calls != w.calls || p.Errors != w.errors || p.TokensIn+p.TokensOut != w.tokens || !closeTo(p.CostUSD, w.cost) {
					t.Errorf("%s %s: %+v, want %+v", p.Time, p.Group, p.Stats, w)
				}
				sum += p.Calls
			}
			if sum != all.calls {
				t.Errorf("trend sums to %d calls, the tenant has %d (another tenant's calls?)", sum, all.calls)
			}

			// Top models by cost.
			byModel := map[string]*totals{}
			for _, r := range recs {
				if in(r, tenant) && r.Kind == calls.KindModel {
					if byModel[r.Target] == nil {
						byModel[r.Target] = &totals{}
					}
					byModel[r.Target].add(r)
				}
			}
			top, err := c.AnalyticsTop(ctx, f, "model", "cost", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(top.Items) != len(byModel) {
				t.Fatalf("%d models, want %d", len(top.Items), len(byModel))
			}
			for i, it := range top.Items {
				w := byModel[it.Group]
				if w == nil || it.Calls != w.calls || !closeTo(it.Value, w.cost) {
					t.Errorf("model %s: %+v, want %+v", it.Group, it, w)
				}
				if i > 0 && it.Value > top.Items[i-1].Value {
					t.Errorf("not sorted by cost")
				}
			}

			// Slowest steps of triage: the step set and counts.
			steps := map[string]uint64{}
			for _, r := range recs {
				if in(r, tenant) && r.Definition == "triage" && r.StepID != "" {
					steps[r.StepID]++
				}
			}
			ss, err := c.AnalyticsSlowestSteps(ctx, client.AnalyticsFilter{From: f.From, To: f.To, Definition: "triage"}, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(ss.Steps) != len(steps) {
				t.Fatalf("%d steps, want %d", len(ss.Steps), len(steps))
			}
			for i, s := range ss.Steps {
				if s.Calls != steps[s.Group] {
					t.Errorf("step %s: %d calls, want %d", s.Group, s.Calls, steps[s.Group])
				}
				if i > 0 && s.P95MS > ss.Steps[i-1].P95MS {
					t.Errorf("steps not sorted by p95")
				}
			}

			// Approvals by role.
			roles := map[string]uint64{}
			for _, r := range recs {
				if in(r, tenant) && r.Kind == calls.KindApproval {
					for _, role := range strings.Split(r.Labels[record.LabelRoles], ",") {
						roles[role]++
					}
				}
			}
			ap, err := c.AnalyticsApprovals(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(ap.Roles) != len(roles) {
				t.Fatalf("%d roles, want %d", len(ap.Roles), len(roles))
			}
			for _, a := range ap.Roles {
				if a.Decisions != roles[a.Role] || a.Approved+a.Rejected+a.TimedOut != a.Decisions {
					t.Errorf("role %s: %+v, want %d decisions", a.Role, a, roles[a.Role])
				}
			}

			// Compare the second day with the first, whole tenant.
			mid := start.Add(24 * time.Hour)
			var cur, prev totals
			for _, r := range recs {
				if r.Tenant != tenant {
					continue
				}
				switch ts := time.UnixMilli(r.TS); {
				case !ts.Before(mid) && ts.Before(mid.Add(24*time.Hour)):
					cur.add(r)
				case !ts.Before(start) && ts.Before(mid):
					prev.add(r)
				}
			}
			cmp, err := c.AnalyticsCompare(ctx, client.AnalyticsFilter{From: mid.Format(time.RFC3339), To: mid.Add(24 * time.Hour).Format(time.RFC3339)}, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(cmp.Groups) != 1 || cmp.Groups[0].Current.Calls != cur.calls || cmp.Groups[0].Previous.Calls != prev.calls ||
				cmp.Groups[0].Calls == nil || !closeTo(*cmp.Groups[0].Calls, (float64(cur.calls)-float64(prev.calls))/float64(prev.calls)) {
				t.Errorf("compare %+v, want %d vs %d", cmp.Groups, cur.calls, prev.calls)
			}

			// Tokens since a ragged time.
			since := start.Add(13*time.Hour + 1234*time.Millisecond)
			var tokens int64
			for _, r := range recs {
				if r.Tenant == tenant && !time.UnixMilli(r.TS).Before(since) {
					tokens += r.TokensIn + r.TokensOut
				}
			}
			tok, err := c.AnalyticsTokens(ctx, since.Format(time.RFC3339Nano))
			if err != nil {
				t.Fatal(err)
			}
			if tok.Tokens != tokens {
				t.Errorf("tokens %d, want %d", tok.Tokens, tokens)
			}

			// The response cache: hits and the cost they saved.
			var hits, lookups uint64
			var saved float64
			for _, r := range recs {
				ts := time.UnixMilli(r.TS)
				if r.Tenant == tenant && r.Kind == calls.KindModel && r.Cache != "" && !ts.Before(start) && ts.Before(start.Add(48*time.Hour)) {
					lookups++
					if r.Cache == "hit" {
						hits++
					}
					saved += r.CostSavedUSD
				}
			}
			ca, err := c.AnalyticsCache(ctx, client.AnalyticsFilter{From: start.Format(time.RFC3339), To: start.Add(48 * time.Hour).Format(time.RFC3339)}, "model")
			if err != nil {
				t.Fatal(err)
			}
			if ca.Total.Lookups != lookups || ca.Total.Hits != hits || !closeTo(ca.Total.CostSavedUSD, saved) || len(ca.Groups) == 0 || hits == 0 {
				t.Errorf("cache %+v, want %d lookups %d hits %v saved", ca.Total, lookups, hits, saved)
			}
		})
	}
}
