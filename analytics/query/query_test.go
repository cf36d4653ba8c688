package query

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

const evil = "x' OR 1=1 --; DROP TABLE calls"

func evilFilter() Filter {
	return Filter{Tenant: evil, From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
		Kind: evil + "k", Target: evil + "t", Definition: evil + "d", StepID: evil + "s"}
}

// TestFiltersAreParameters: caller values never appear in the SQL text, and
// each is present as a parameter.
func TestFiltersAreParameters(t *testing.T) {
	f := evilFilter()
	builds := map[string]func() (string, clickhouse.Parameters, error){
		"trend":   TrendRequest{Filter: f, Interval: Hour, GroupBy: ByModel}.build,
		"top":     TopRequest{Filter: f, By: ByService, Metric: ByCost, Limit: 5}.build,
		"compare": CompareRequest{Filter: f, By: ByDefinition}.build,
		"calls":   CallsRequest{Filter: f, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Limit: 5}.build,
		"approvals": func() (string, clickhouse.Parameters, error) {
			af := f
			af.Kind, af.Target = "", ""
			return approvalsSQL(af)
		},
		"tokens": func() (string, clickhouse.Parameters, error) {
			return tokensSinceSQL(evil, f.From.Add(1500*time.Millisecond))
		},
		"cache": func() (string, clickhouse.Parameters, error) {
			cf := f
			cf.Kind, cf.Definition, cf.StepID = "", "", ""
			return CacheRequest{Filter: cf, By: ByModel}.build()
		},
	}
	for name, build := range builds {
		t.Run(name, func(t *testing.T) {
			sql, params, err := build()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(sql, "OR 1=1") || strings.Contains(sql, "DROP") {
				t.Fatalf("caller value in SQL:\n%s", sql)
			}
			if params["tenant"] != evil {
				t.Fatalf("tenant parameter = %q", params["tenant"])
			}
			for p := range params {
				if !strings.Contains(sql, "{"+p+":") {
					t.Fatalf("parameter %s not used in SQL:\n%s", p, sql)
				}
			}
			if name == "trend" || name == "top" || name == "compare" || name == "calls" {
				for _, k := range []string{"kind", "target", "definition", "step"} {
					if !strings.HasPrefix(params[k], evil) {
						t.Fatalf("filter %s not passed as a parameter: %v", k, params)
					}
				}
			}
		})
	}
}

func TestInvalidRequests(t *testing.T) {
	ok := Filter{Tenant: "t", From: time.Unix(1e9, 0), To: time.Unix(1e9+3600, 0)}
	cases := map[string]func() error{
		"no tenant": func() error {
			f := ok
			f.Tenant = ""
			_, _, err := TrendRequest{Filter: f, Interval: Hour}.build()
			return err
		},
		"reversed range": func() error {
			f := ok
			f.From, f.To = f.To, f.From
			_, _, err := TrendRequest{Filter: f, Interval: Hour}.build()
			return err
		},
		"range too long": func() error {
			f := ok
			f.To = f.From.Add(MaxRange + time.Hour)
			_, _, err := TrendRequest{Filter: f, Interval: Day}.build()
			return err
		},
		"bad interval": func() error { _, _, err := TrendRequest{Filter: ok, Interval: "week; DROP"}.build(); return err },
		"too many bucket": func() error {
			f := ok
			f.To = f.From.Add(30 * 24 * time.Hour)
			_, _, err := TrendRequest{Filter: f, Interval: Minute}.build()
			return err
		},
		"bad dimension": func() error {
			_, _, err := TrendRequest{Filter: ok, Interval: Hour, GroupBy: "tenant) --"}.build()
			return err
		},
		"top without by": func() error { _, _, err := TopRequest{Filter: ok, Metric: ByCost, Limit: 3}.build(); return err },
		"bad metric": func() error {
			_, _, err := TopRequest{Filter: ok, By: ByKind, Metric: "1; DROP", Limit: 3}.build()
			return err
		},
		"bad limit": func() error {
			_, _, err := TopRequest{Filter: ok, By: ByKind, Metric: ByCost, Limit: 0}.build()
			return err
		},
		"huge limit": func() error {
			_, _, err := TopRequest{Filter: ok, By: ByKind, Metric: ByCost, Limit: MaxLimit + 1}.build()
			return err
		},
		"compare bad by":   func() error { _, _, err := CompareRequest{Filter: ok, By: "x"}.build(); return err },
		"approvals range":  func() error { f := ok; f.To = f.From; _, _, err := approvalsSQL(f); return err },
		"approvals kind":   func() error { f := ok; f.Kind = "http"; _, _, err := approvalsSQL(f); return err },
		"year 1970":        func() error { f := ok; f.From = time.Unix(0, 0); _, _, err := approvalsSQL(f); return err },
		"tokens no tenant": func() error { _, _, err := tokensSinceSQL("", ok.From); return err },
		"cache kind":       func() error { f := ok; f.Kind = "http"; _, _, err := CacheRequest{Filter: f}.build(); return err },
		"cache definition": func() error { f := ok; f.Definition = "d"; _, _, err := CacheRequest{Filter: f}.build(); return err },
		"cache by step":    func() error { _, _, err := CacheRequest{Filter: ok, By: ByStep}.build(); return err },
		"calls bad trace id": func() error {
			_, _, err := CallsRequest{Filter: ok, TraceID: "4BF92F3577B34DA6A3CE929D0E0E4736' OR 1=1", Limit: 5}.build()
			return err
		},
		"calls no limit": func() error { _, _, err := CallsRequest{Filter: ok}.build(); return err },
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if err := c(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("want ErrInvalid, got %v", err)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	d := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04:05.000", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	type seg struct{ table, from, to string }
	cases := []struct {
		name     string
		from, to string
		max      time.Duration
		want     []seg
	}{
		{"whole days", "2026-01-01 00:00:00.000", "2026-01-08 00:00:00.000", 24 * time.Hour,
			[]seg{{"calls_1d", "2026-01-01 00:00:00.000", "2026-01-08 00:00:00.000"}}},
		{"whole days by hour", "2026-01-01 00:00:00.000", "2026-01-08 00:00:00.000", time.Hour,
			[]seg{{"calls_1h", "2026-01-01 00:00:00.000", "2026-01-08 00:00:00.000"}}},
		{"ragged", "2026-01-01 10:30:15.250", "2026-01-03 05:07:09.001", 24 * time.Hour,
			[]seg{
				{"calls", "2026-01-01 10:30:15.250", "2026-01-01 10:31:00.000"},
				{"calls_1m", "2026-01-01 10:31:00.000", "2026-01-01 11:00:00.000"},
				{"calls_1h", "2026-01-01 11:00:00.000", "2026-01-02 00:00:00.000"},
				{"calls_1d", "2026-01-02 00:00:00.000", "2026-01-03 00:00:00.000"},
				{"calls_1h", "2026-01-03 00:00:00.000", "2026-01-03 05:00:00.000"},
				{"calls_1m", "2026-01-03 05:00:00.000", "2026-01-03 05:07:00.000"},
				{"calls", "2026-01-03 05:07:00.000", "2026-01-03 05:07:09.001"},
			}},
		{"ragged by minute", "2026-01-01 10:30:15.250", "2026-01-01 12:00:00.000", time.Minute,
			[]seg{
				{"calls", "2026-01-01 10:30:15.250", "2026-01-01 10:31:00.000"},
				{"calls_1m", "2026-01-01 10:31:00.000", "2026-01-01 12:00:00.000"},
			}},
		{"within a minute", "2026-01-01 10:30:15.000", "2026-01-01 10:30:45.000", 24 * time.Hour,
			[]seg{{"calls", "2026-01-01 10:30:15.000", "2026-01-01 10:30:45.000"}}},
		{"less than an hour across an hour", "2026-01-01 10:50:00.000", "2026-01-01 11:10:00.000", 24 * time.Hour,
			[]seg{{"calls_1m", "2026-01-01 10:50:00.000", "2026-01-01 11:10:00.000"}}},
		{"empty", "2026-01-01 10:00:00.000", "2026-01-01 10:00:00.000", 24 * time.Hour, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := plan(d(c.from), d(c.to), calls.upTo(c.max))
			if len(got) != len(c.want) {
				t.Fatalf("%d segments, want %d: %+v", len(got), len(c.want), got)
			}
			for i, g := range got {
				w := c.want[i]
				if g.table != w.table || !g.from.Equal(d(w.from)) || !g.to.Equal(d(w.to)) {
					t.Errorf("segment %d: %s [%s, %s), want %s [%s, %s)", i, g.table,
						g.from.Format("2006-01-02 15:04:05.000"), g.to.Format("2006-01-02 15:04:05.000"), w.table, w.from, w.to)
				}
			}
		})
	}
}

// TestPlanCoversRange: on random ranges the segments are contiguous, cover
// [from, to) exactly, and each is whole buckets of its level.
func TestPlanCoversRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 5000 {
		from := base.Add(time.Duration(rng.Int64N(int64(60 * 24 * time.Hour)))).Truncate(time.Millisecond)
		to := from.Add(time.Duration(rng.Int64N(int64(10 * 24 * time.Hour)))).Truncate(time.Millisecond)
		max := []time.Duration{time.Minute, time.Hour, 24 * time.Hour}[rng.IntN(3)]
		segs := plan(from, to, calls.upTo(max))
		cur := from
		for _, s := range segs {
			if !s.from.Equal(cur) || !s.from.Before(s.to) {
				t.Fatalf("[%s, %s): gap or empty segment %+v", from, to, segs)
			}
			if s.gran > max {
				t.Fatalf("segment at %s coarser than %s", s.gran, max)
			}
			if !s.raw() && (!s.from.Equal(s.from.Truncate(s.gran)) || !s.to.Equal(s.to.Truncate(s.gran))) {
				t.Fatalf("segment %+v not whole buckets", s)
			}
			cur = s.to
		}
		if from.Before(to) && !cur.Equal(to) {
			t.Fatalf("[%s, %s) covered up to %s", from, to, cur)
		}
		if len(segs) > 7 {
			t.Fatalf("%d segments", len(segs))
		}
	}
}

func TestTablesByInterval(t *testing.T) {
	f := Filter{Tenant: "t", From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 8, 0, 0, 0, 0, time.UTC)}
	for interval, want := range map[Interval]string{Minute: "calls_1m", Hour: "calls_1h", Day: "calls_1d"} {
		got, err := Tables(TrendRequest{Filter: f, Interval: interval})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("trend by %s reads %v, want %s", interval, got, want)
		}
	}
	f.To = f.To.Add(-90 * time.Second) // ragged end: finer levels for the last hour
	got, _ := Tables(TopRequest{Filter: f, By: ByKind, Metric: ByCalls, Limit: 1})
	if strings.Join(got, ",") != "calls,calls_1d,calls_1h,calls_1m" {
		t.Errorf("ragged top reads %v", got)
	}
}

func TestCacheReadsItsRollups(t *testing.T) {
	f := Filter{Tenant: "t", From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 8, 0, 0, 0, 0, time.UTC)}
	got, err := Tables(CacheRequest{Filter: f})
	if err != nil || strings.Join(got, ",") != "model_cache_1d" {
		t.Errorf("whole days read %v %v", got, err)
	}
	f.To = f.To.Add(-90 * time.Second)
	got, _ = Tables(CacheRequest{Filter: f, By: ByModel})
	if strings.Join(got, ",") != "calls,model_cache_1d,model_cache_1h,model_cache_1m" {
		t.Errorf("ragged range reads %v", got)
	}
	sql, _, _ := CacheRequest{Filter: f}.build()
	if !strings.Contains(sql, "kind = 'model' AND cache != ''") {
		t.Errorf("raw segments not restricted to cached model calls:\n%s", sql)
	}
}

func TestTokensSinceDayStartReadsOnlyDays(t *testing.T) {
	sql, _, err := tokensSinceSQL("t", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if got := tables(sql); len(got) != 1 || got[0] != "calls_1d" {
		t.Fatalf("reads %v", got)
	}
}

func TestFieldErrors(t *testing.T) {
	ok := Filter{Tenant: "t", From: time.Unix(1e9, 0), To: time.Unix(1e9+3600, 0)}
	_, _, err := TopRequest{Filter: ok, By: ByKind, Metric: ByCost, Limit: 0}.build()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "limit" || !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v", err)
	}
}

// TestCatalogQuestions: grouping or filtering by a catalogue dimension
// reads the catalogue rollups, scoped to the caller's calls as consumer
// and the calls to its own APIs; caller values stay parameters; filters
// the catalogue rollups cannot answer are refused.
func TestCatalogQuestions(t *testing.T) {
	f := Filter{Tenant: evil, From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC),
		API: evil + "a", Consumer: evil + "c", OwnedAPIs: []string{"invoices", "quotes"}}
	for _, by := range []Dimension{ByAPI, ByAPIVersion, ByConsumer, ByConsumerApp} {
		sql, params, err := TopRequest{Filter: f, By: by, Metric: ByCalls, Limit: 5}.build()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sql, "OR 1=1") || params["api"] != evil+"a" || params["consumer"] != evil+"c" || params["owned"] != "['invoices','quotes']" {
			t.Fatalf("%s: params %v\n%s", by, params, sql)
		}
		if !strings.Contains(sql, "(consumer = {tenant:String} OR (api IN {owned:Array(String)} AND (kind != 'proxy' OR tenant = {tenant:String})))") {
			t.Fatalf("%s: scope missing:\n%s", by, sql)
		}
	}
	tables, err := Tables(TrendRequest{Filter: Filter{Tenant: "acme", From: f.From, To: f.To.Add(90 * time.Minute)}, Interval: Hour, GroupBy: ByConsumer})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tables, ",") != "api_calls_1h,api_calls_1m" {
		t.Fatalf("tables %v", tables)
	}
	for _, bad := range []Filter{{Target: "x"}, {Definition: "x"}, {StepID: "x"}} {
		bad.Tenant, bad.From, bad.To = "acme", f.From, f.To
		if _, _, err := (TopRequest{Filter: bad, By: ByAPI, Metric: ByCalls, Limit: 1}).build(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v accepted with a catalogue dimension", bad)
		}
	}
	if _, _, err := (TopRequest{Filter: Filter{Tenant: "acme", From: f.From, To: f.To, API: "x"}, By: ByModel, Metric: ByCalls, Limit: 1}).build(); !errors.Is(err, ErrInvalid) {
		t.Error("by model with an api filter accepted")
	}
	sql, params, err := apiCallsSQL("invoices", "beta", "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 5, 12, 30, 1, 0, time.UTC))
	if err != nil || params["app"] != "" || !strings.Contains(sql, "api_calls_1d") || !strings.Contains(sql, "consumer_app = {app:String}") || strings.Contains(sql, "tenant") {
		t.Fatalf("quota count: %v %v\n%s", params, err, sql)
	}
}

// TestGatewayDimensionsReadProxyRollups: grouping by upstream reads the
// proxy rollups; filters they cannot answer are refused.
func TestGatewayDimensionsReadProxyRollups(t *testing.T) {
	f := Filter{Tenant: "t", From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 8, 0, 0, 0, 0, time.UTC).Add(-90 * time.Second)}
	for _, d := range []Dimension{ByUpstream} {
		got, err := Tables(TopRequest{Filter: f, By: d, Metric: ByCalls, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != "calls,proxy_1d,proxy_1h,proxy_1m" {
			t.Errorf("top by %s reads %v", d, got)
		}
		sql, params, err := TrendRequest{Filter: Filter{Tenant: "t", From: f.From, To: f.To, Target: "orders"}, Interval: Hour, GroupBy: d}.build()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sql, "api = {target:String}") || params["target"] != "orders" || !strings.Contains(sql, "kind = 'proxy'") {
			t.Errorf("trend by %s: the API filter or the raw kind condition is missing:\n%s", d, sql)
		}
	}
	for _, bad := range []Filter{{Kind: "http"}, {Definition: "d"}, {StepID: "s"}} {
		bad.Tenant, bad.From, bad.To = "t", f.From, f.To
		if _, err := Tables(TopRequest{Filter: bad, By: ByUpstream, Metric: ByCalls, Limit: 5}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}
