package query

import (
	"errors"
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
		"trend":     TrendRequest{Filter: f, Interval: Hour, GroupBy: ByModel}.build,
		"top":       TopRequest{Filter: f, By: ByService, Metric: ByCost, Limit: 5}.build,
		"compare":   CompareRequest{Filter: f, By: ByDefinition}.build,
		"approvals": func() (string, clickhouse.Parameters, error) { return approvalsSQL(f) },
		"tokens": func() (string, clickhouse.Parameters, error) {
			s, p := tokensSinceSQL(evil, f.From.Add(1500*time.Millisecond))
			return s, p, nil
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
			if name == "trend" || name == "top" || name == "compare" {
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
	ok := Filter{Tenant: "t", From: time.Unix(0, 0), To: time.Unix(3600, 0)}
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
		"compare bad by":  func() error { _, _, err := CompareRequest{Filter: ok, By: "x"}.build(); return err },
		"approvals range": func() error { f := ok; f.To = f.From; _, _, err := approvalsSQL(f); return err },
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if err := c(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("want ErrInvalid, got %v", err)
			}
		})
	}
}

func TestTokensSinceBoundary(t *testing.T) {
	since := time.Date(2026, 1, 1, 10, 0, 30, 0, time.UTC)
	_, p := tokensSinceSQL("t", since)
	if p["boundary"] != "1767261660" { // 10:01:00
		t.Fatalf("boundary %s", p["boundary"])
	}
	_, p = tokensSinceSQL("t", since.Truncate(time.Minute))
	if p["boundary"] != "1767261600" { // aligned: no raw part
		t.Fatalf("boundary %s", p["boundary"])
	}
}
