//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/analyticsapi"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/ratelimit"
)

// cliQuerier answers fixed figures and keeps the last trend request.
type cliQuerier struct{ last query.TrendRequest }

func (q *cliQuerier) Trend(_ context.Context, r query.TrendRequest) ([]query.Point, error) {
	q.last = r
	return []query.Point{
		{Time: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), Group: "http", Stats: query.Stats{Calls: 7, Errors: 1, ErrorRate: 1.0 / 7}},
		{Time: time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC), Group: "model", Stats: query.Stats{Calls: 3, CostUSD: 0.25}},
	}, nil
}
func (q *cliQuerier) Top(context.Context, query.TopRequest) ([]query.Item, error) { return nil, nil }
func (q *cliQuerier) SlowestSteps(context.Context, query.Filter, int) ([]query.Item, error) {
	return nil, nil
}
func (q *cliQuerier) ApprovalTurnaround(context.Context, query.Filter) ([]query.Approval, error) {
	return []query.Approval{{Role: "manager", Decisions: 2, Approved: 2}}, nil
}
func (q *cliQuerier) Compare(context.Context, query.CompareRequest) ([]query.Change, error) {
	return nil, nil
}
func (q *cliQuerier) TokensSince(context.Context, string, time.Time) (int64, error) { return 557, nil }
func (q *cliQuerier) Cache(_ context.Context, r query.CacheRequest) ([]query.CacheStats, error) {
	if r.By == query.ByModel {
		return []query.CacheStats{{Group: "openai/gpt-4o", Lookups: 10, Hits: 4, Misses: 6, HitRate: 0.4, CostSavedUSD: 0.02}}, nil
	}
	return []query.CacheStats{{Lookups: 10, Hits: 4, Misses: 6, HitRate: 0.4, CostSavedUSD: 0.02}}, nil
}

func (q *cliQuerier) Calls(context.Context, query.CallsRequest) ([]query.Call, error) {
	return nil, nil
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// cliOrch is the ingress's required orchestrator; the analytics routes
// never call it.
type cliOrch struct{ ingress.Orchestrator }

func runAnalyticsCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestAnalyticsCLI: the analytics commands call the REST API with the
// key, pass the flags as parameters and print table, CSV and JSON.
func TestAnalyticsCLI(t *testing.T) {
	const token = "gf_c00000000001_clianalystsecretclianalystsec"
	store, err := auth.NewStore("", auth.EntryFor(token, "dev", []string{"analyst"}, ""))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ingress.New(ingress.Deps{Orchestrator: cliOrch{}, Keys: store, Log: slog.New(slog.DiscardHandler)},
		ingress.Config{KeyLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}, TenantLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}})
	if err != nil {
		t.Fatal(err)
	}
	q := &cliQuerier{}
	if err := srv.Mount(analyticsapi.Routes(q, analyticsapi.Options{})); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	api := []string{"--api-url", "http://" + ln.Addr().String(), "--api-key", token}

	out, err := runAnalyticsCLI(t, append([]string{"analytics", "trend", "--from", "7d", "--interval", "day", "--group-by", "kind", "--kind", "http", "-o", "csv"}, api...)...)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 3 || recs[0][0] != "time" || recs[0][1] != "group" || recs[1][1] != "http" {
		t.Fatalf("csv %q %v", out, err)
	}
	if q.last.Tenant != "dev" || q.last.Interval != query.Day || q.last.GroupBy != query.ByKind || q.last.Kind != "http" ||
		time.Since(q.last.From) < 7*24*time.Hour-time.Minute {
		t.Errorf("request %+v", q.last)
	}

	// The table writes numbers for people; CSV (above) and JSON keep them whole.
	out, err = runAnalyticsCLI(t, append([]string{"analytics", "trend", "--from", "7d", "--group-by", "kind"}, api...)...)
	if err != nil || !strings.Contains(out, "14.3 %") || !strings.Contains(out, "$0.25") || !strings.Contains(out, "ERROR_RATE") || !strings.Contains(out, "COST ") {
		t.Fatalf("trend table %q %v", out, err)
	}
	if !strings.Contains(recs[1][indexOf(recs[0], "error_rate")], "0.14285714285714") {
		t.Errorf("csv error_rate %q", recs[1])
	}

	out, err = runAnalyticsCLI(t, append([]string{"analytics", "approvals", "--tenant", "dev"}, api...)...)
	if err != nil || !strings.HasPrefix(out, "ROLE") || !strings.Contains(out, "manager") {
		t.Fatalf("table %q %v", out, err)
	}
	out, err = runAnalyticsCLI(t, append([]string{"analytics", "tokens", "--since", "24h", "-o", "json"}, api...)...)
	var tok analyticsapi.TokensResponse
	if err != nil || json.Unmarshal([]byte(out), &tok) != nil || tok.Tokens != 557 || tok.Tenant != "dev" {
		t.Fatalf("json %q %v", out, err)
	}

	out, err = runAnalyticsCLI(t, append([]string{"analytics", "cache", "--by", "model", "-o", "csv"}, api...)...)
	if err != nil || !strings.Contains(out, "openai/gpt-4o,0.02,0,0.4,4,10,6") {
		t.Fatalf("cache csv %q %v", out, err)
	}

	// Errors: another tenant, a bad parameter (with its path), --direct
	// without a tenant, a bad output.
	if _, err := runAnalyticsCLI(t, append([]string{"analytics", "approvals", "--tenant", "acme"}, api...)...); err == nil ||
		!strings.Contains(err.Error(), "tenant dev") {
		t.Errorf("another tenant: %v", err)
	}
	if _, err := runAnalyticsCLI(t, append([]string{"analytics", "trend", "--interval", "week"}, api...)...); err == nil ||
		!strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "interval:") {
		t.Errorf("bad interval: %v", err)
	}
	if _, err := runAnalyticsCLI(t, "analytics", "trend", "--direct"); err == nil || !strings.Contains(err.Error(), "--tenant") {
		t.Errorf("direct without tenant: %v", err)
	}
	if _, err := runAnalyticsCLI(t, append([]string{"analytics", "trend", "-o", "xml"}, api...)...); err == nil {
		t.Errorf("-o xml accepted")
	}
}
