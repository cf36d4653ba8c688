package analyticsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/ingress/analyticsapi"
	"github.com/gateflow/gateflow/ingress/client"
)

// fakeQuerier records what reaches it and answers figures that name the
// tenant they were computed for.
type fakeQuerier struct {
	mu   sync.Mutex
	last any
	err  error
}

func (f *fakeQuerier) record(req any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = req
	return f.err
}

func (f *fakeQuerier) lastReq() any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// calls of a tenant's figures: a different number per tenant.
func callsOf(tenant string) uint64 { return uint64(len(tenant) * 1000) }

func (f *fakeQuerier) Trend(_ context.Context, r query.TrendRequest) ([]query.Point, error) {
	if err := f.record(r); err != nil {
		return nil, err
	}
	return []query.Point{{Time: r.From.Truncate(time.Hour), Stats: query.Stats{Calls: callsOf(r.Tenant)}}}, nil
}

func (f *fakeQuerier) Top(_ context.Context, r query.TopRequest) ([]query.Item, error) {
	if err := f.record(r); err != nil {
		return nil, err
	}
	return []query.Item{{Group: r.Tenant + "-svc", Value: 1, Stats: query.Stats{Calls: callsOf(r.Tenant)}}}, nil
}

func (f *fakeQuerier) SlowestSteps(_ context.Context, fl query.Filter, limit int) ([]query.Item, error) {
	if err := f.record(query.TopRequest{Filter: fl, Limit: limit}); err != nil {
		return nil, err
	}
	return []query.Item{{Group: "step", Stats: query.Stats{Calls: callsOf(fl.Tenant)}}}, nil
}

func (f *fakeQuerier) Calls(_ context.Context, r query.CallsRequest) ([]query.Call, error) {
	if err := f.record(r); err != nil {
		return nil, err
	}
	return []query.Call{{ID: "c1", Kind: "http", Target: r.Tenant + "-svc", Outcome: "ok", LatencyMS: 12.5, TraceID: r.TraceID}}, nil
}

func (f *fakeQuerier) ApprovalTurnaround(_ context.Context, fl query.Filter) ([]query.Approval, error) {
	if err := f.record(fl); err != nil {
		return nil, err
	}
	return []query.Approval{{Role: "approver", Decisions: callsOf(fl.Tenant)}}, nil
}

func (f *fakeQuerier) Compare(_ context.Context, r query.CompareRequest) ([]query.Change, error) {
	if err := f.record(r); err != nil {
		return nil, err
	}
	return []query.Change{{Current: query.Stats{Calls: callsOf(r.Tenant)}}}, nil
}

func (f *fakeQuerier) TokensSince(_ context.Context, tenant string, since time.Time) (int64, error) {
	if err := f.record([2]any{tenant, since}); err != nil {
		return 0, err
	}
	return int64(callsOf(tenant)), nil
}

func (f *fakeQuerier) Cache(_ context.Context, r query.CacheRequest) ([]query.CacheStats, error) {
	if err := f.record(r); err != nil {
		return nil, err
	}
	n := uint64(callsOf(r.Tenant))
	total := []query.CacheStats{{Lookups: n, Hits: n / 2, Misses: n - n/2, CostSavedUSD: 0.5}}
	if r.By == "" {
		return total, nil
	}
	return []query.CacheStats{{Group: "a/b", Lookups: n - 2, Hits: n / 2, Misses: n - 2 - n/2, CostSavedUSD: 0.5}, {Group: "x/y", Lookups: 2, Hits: 0, Misses: 2}}, nil
}

var fixedNow = time.Date(2026, 11, 20, 12, 30, 0, 0, time.UTC)

func newFake(t *testing.T) (*fakeQuerier, *server) {
	q := &fakeQuerier{}
	return q, startServer(t, q, func() time.Time { return fixedNow })
}

var allPaths = []string{
	"/v1/analytics/trend", "/v1/analytics/top", "/v1/analytics/slowest-steps?definition=triage",
	"/v1/analytics/approvals", "/v1/analytics/compare", "/v1/analytics/tokens", "/v1/analytics/cache",
}

func TestRoles(t *testing.T) {
	_, srv := newFake(t)
	for _, path := range allPaths {
		for key, want := range map[string]int{"analyst": 200, "admin": 200, "other-analyst": 200, "submitter": 403, "approver": 403, "": 401} {
			code, body := srv.get(t, key, path)
			if code != want {
				t.Errorf("GET %s as %q: %d, want %d: %s", path, key, code, want, body)
				continue
			}
			if code != 200 {
				apiError(t, body)
			}
		}
	}
}

func TestCacheEndpoint(t *testing.T) {
	q, srv := newFake(t)
	code, body := srv.get(t, "analyst", "/v1/analytics/cache?by=model&target=a/b&from=2d")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var got analyticsapi.CacheResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	n := uint64(callsOf("acme"))
	if got.By != "model" || len(got.Groups) != 2 || got.Total.Lookups != n || got.Total.Hits != n/2 || got.Total.CostSavedUSD != 0.5 ||
		got.Total.HitRate != float64(n/2)/float64(n) || got.Target != "a/b" {
		t.Errorf("answer %+v", got)
	}
	if req := q.lastReq().(query.CacheRequest); req.By != query.ByModel || req.Target != "a/b" || req.Tenant != "acme" {
		t.Errorf("request %+v", req)
	}
	for _, bad := range []string{"?by=step", "?kind=http", "?definition=x"} {
		if code, body := srv.get(t, "analyst", "/v1/analytics/cache"+bad); code != 400 {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
}

// TestTenantFromKey: the tenant is the key's; no parameter changes it, and
// a key of one tenant never gets another's figures.
func TestTenantFromKey(t *testing.T) {
	q, srv := newFake(t)
	for _, path := range allPaths {
		for _, key := range []string{"analyst", "other-analyst"} {
			tenant := testKeys[key].tenant
			code, body := srv.get(t, key, path)
			if code != 200 {
				t.Fatalf("GET %s: %d %s", path, code, body)
			}
			got := fmt.Sprint(q.lastReq())
			if !strings.Contains(got, tenant) || strings.Contains(got, map[string]string{"acme": "globex", "globex": "acme"}[tenant]) {
				t.Errorf("GET %s as %s: the query got %s", path, key, got)
			}
			if !strings.Contains(string(body), fmt.Sprint(callsOf(tenant))) || !strings.Contains(string(body), `"tenant":"`+tenant+`"`) {
				t.Errorf("GET %s as %s: answer %s", path, key, body)
			}
		}
		// Asking for another tenant is refused, not ignored.
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		code, body := srv.get(t, "analyst", path+sep+"tenant=globex")
		if code != 400 {
			t.Fatalf("tenant parameter: %d %s", code, body)
		}
		if e := apiError(t, body); len(e.Details) != 1 || e.Details[0].Path != "tenant" {
			t.Errorf("tenant parameter: %+v", e)
		}
	}
}

func TestParameterErrors(t *testing.T) {
	_, srv := newFake(t)
	cases := []struct {
		path  string
		paths []string // detail paths, in order
	}{
		{"/v1/analytics/trend?interval=week", []string{"interval"}},
		{"/v1/analytics/trend?group_by=tenant", []string{"group_by"}},
		{"/v1/analytics/trend?from=yesterday&to=-5h", []string{"from", "to"}},
		{"/v1/analytics/trend?from=1h&to=2h", []string{"from"}},
		{"/v1/analytics/trend?from=2026-11-20T10:00:00Z&to=2026-11-20T09:00:00Z", []string{"from"}},
		{"/v1/analytics/trend?color=red&interval=hour&interval=day", []string{"color", "interval"}},
		{"/v1/analytics/top?limit=0", []string{"limit"}},
		{"/v1/analytics/top?limit=abc&metric=speed&by=", []string{"by", "limit", "metric"}},
		{"/v1/analytics/trend?from=yesterday&to=-5h&interval=year", []string{"from", "interval", "to"}},
		{"/v1/analytics/slowest-steps", []string{"definition"}},
		{"/v1/analytics/approvals?kind=http", []string{"kind"}},
		{"/v1/analytics/top?kind=nope", []string{"kind"}}, // an enum, not a filter matching nothing (issue 10 battery)
		{"/v1/analytics/compare?by=nope", []string{"by"}},
		{"/v1/analytics/tokens?since=tomorrow", []string{"since"}},
	}
	for _, c := range cases {
		code, body := srv.get(t, "analyst", c.path)
		if code != 400 {
			t.Errorf("%s: %d, want 400: %s", c.path, code, body)
			continue
		}
		e := apiError(t, body)
		var got []string
		for _, d := range e.Details {
			got = append(got, d.Path)
			if d.Message == "" {
				t.Errorf("%s: empty message for %s", c.path, d.Path)
			}
		}
		if strings.Join(got, ",") != strings.Join(c.paths, ",") {
			t.Errorf("%s: detail paths %v, want %v (%s)", c.path, got, c.paths, body)
		}
		if e.Code != "invalid_request" {
			t.Errorf("%s: code %q", c.path, e.Code)
		}
	}
}

// TestRealValidation runs the parameter errors of the query package itself
// (not the fake) through the handlers.
func TestRealValidation(t *testing.T) {
	srv := startServer(t, query.New(nil), func() time.Time { return fixedNow })
	for path, param := range map[string]string{
		"/v1/analytics/trend?interval=minute&from=30d":                            "interval", // too many buckets
		"/v1/analytics/trend?from=500d":                                           "to",       // range too long
		"/v1/analytics/compare?from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z": "from",     // previous period before 2000
	} {
		code, body := srv.get(t, "analyst", path)
		if code != 400 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		if e := apiError(t, body); len(e.Details) != 1 || e.Details[0].Path != param {
			t.Errorf("%s: %+v", path, e)
		}
	}
}

func TestDefaultsAndRelativeTimes(t *testing.T) {
	q, srv := newFake(t)
	code, body := srv.get(t, "analyst", "/v1/analytics/trend")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	tr := q.lastReq().(query.TrendRequest)
	if !tr.To.Equal(fixedNow) || !tr.From.Equal(fixedNow.Add(-24*time.Hour)) || tr.Interval != query.Hour || tr.GroupBy != query.ByNone {
		t.Errorf("defaults: %+v", tr)
	}
	srv.get(t, "analyst", "/v1/analytics/trend?from=7d&to=2026-11-20T00:00:00.5%2B01:00&interval=day&group_by=model&kind=model&target=openai%2Fgpt-4o&definition=triage&step=classify")
	tr = q.lastReq().(query.TrendRequest)
	want := query.TrendRequest{Filter: query.Filter{Tenant: "acme", From: fixedNow.Add(-7 * 24 * time.Hour),
		To: time.Date(2026, 11, 19, 23, 0, 0, 5e8, time.UTC), Kind: "model", Target: "openai/gpt-4o", Definition: "triage", StepID: "classify"},
		Interval: query.Day, GroupBy: query.ByModel}
	if fmt.Sprint(tr) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", tr, want)
	}
	srv.get(t, "analyst", "/v1/analytics/top")
	if top := q.lastReq().(query.TopRequest); top.By != query.ByTarget || top.Metric != query.ByCalls || top.Limit != 10 {
		t.Errorf("top defaults: %+v", top)
	}
	srv.get(t, "analyst", "/v1/analytics/tokens")
	if tok := q.lastReq().([2]any); !tok[1].(time.Time).Equal(fixedNow.Truncate(24 * time.Hour)) {
		t.Errorf("tokens default since: %v", tok)
	}
}

func TestStoreErrors(t *testing.T) {
	q, srv := newFake(t)
	for err, want := range map[error]int{
		errors.New("dial tcp 127.0.0.1:9000: connection refused"): 503,
		fmt.Errorf("trend query: %w", context.DeadlineExceeded):   504,
	} {
		q.mu.Lock()
		q.err = err
		q.mu.Unlock()
		code, body := srv.get(t, "analyst", "/v1/analytics/trend")
		if code != want {
			t.Errorf("%v: %d, want %d", err, code, want)
		}
		if e := apiError(t, body); strings.Contains(e.Message, "127.0.0.1") {
			t.Errorf("internal detail leaked: %s", body)
		}
	}
}

func TestOpenAPIDocumentsTheRoutes(t *testing.T) {
	_, srv := newFake(t)
	code, body := srv.get(t, "analyst", "/v1/openapi.json")
	if code != 200 {
		t.Fatalf("%d", code)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range allPaths {
		p, _, _ = strings.Cut(p, "?")
		if _, ok := doc.Paths[p]["get"]; !ok {
			t.Errorf("%s not documented", p)
		}
	}
	for _, s := range []string{"AnalyticsTrend", "AnalyticsTop", "AnalyticsCompare", "AnalyticsStats"} {
		if _, ok := doc.Components.Schemas[s]; !ok {
			t.Errorf("schema %s missing", s)
		}
	}
}

// TestClient: the Go client sends the filters and decodes the answers and
// the errors.
func TestClient(t *testing.T) {
	q, srv := newFake(t)
	c := srv.client(t, "analyst")
	ctx := context.Background()
	f := client.AnalyticsFilter{From: "48h", To: "24h", Kind: "http", Target: "payments", Definition: "billing", Step: "charge"}
	tr, err := c.AnalyticsTrend(ctx, f, "minute", "step")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Tenant != "acme" || tr.Interval != query.Minute || len(tr.Points) != 1 || tr.Points[0].Calls != callsOf("acme") ||
		!tr.From.Equal(fixedNow.Add(-48*time.Hour)) || tr.Target != "payments" || tr.Step != "charge" {
		t.Errorf("trend %+v", tr)
	}
	if got := q.lastReq().(query.TrendRequest); got.StepID != "charge" || got.GroupBy != query.ByStep {
		t.Errorf("trend request %+v", got)
	}
	top, err := c.AnalyticsTop(ctx, client.AnalyticsFilter{}, "model", "cost", 3)
	if err != nil || top.Limit != 3 || top.Metric != query.ByCost || len(top.Items) != 1 {
		t.Errorf("top %+v %v", top, err)
	}
	if _, err := c.AnalyticsSlowestSteps(ctx, client.AnalyticsFilter{}, 0); client.StatusCode(err) != 400 {
		t.Errorf("slowest steps without definition: %v", err)
	} else {
		var ce *client.Error
		if errors.As(err, &ce); ce.Details[0].Path != "definition" {
			t.Errorf("details %+v", ce.Details)
		}
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	if cs, err := c.AnalyticsCalls(ctx, client.AnalyticsFilter{Kind: "http"}, traceID, 0); err != nil || cs.Limit != 20 ||
		cs.TraceID != traceID || len(cs.Calls) != 1 || cs.Calls[0].TraceID != traceID {
		t.Errorf("calls %+v %v", cs, err)
	} else if got := q.lastReq().(query.CallsRequest); got.TraceID != traceID || got.Kind != "http" || got.Tenant != "acme" || got.Limit != 20 {
		t.Errorf("calls request %+v", got)
	}
	if _, err := c.AnalyticsCalls(ctx, client.AnalyticsFilter{}, "", 5000); client.StatusCode(err) != 400 {
		t.Errorf("calls with limit 5000: %v", err)
	}
	if s, err := c.AnalyticsSlowestSteps(ctx, client.AnalyticsFilter{Definition: "triage"}, 5); err != nil || s.Limit != 5 {
		t.Errorf("slowest %+v %v", s, err)
	}
	if a, err := c.AnalyticsApprovals(ctx, client.AnalyticsFilter{From: "7d"}); err != nil || a.Roles[0].Decisions != callsOf("acme") {
		t.Errorf("approvals %+v %v", a, err)
	}
	if cmp, err := c.AnalyticsCompare(ctx, client.AnalyticsFilter{From: "2026-11-19T12:30:00Z"}, "kind"); err != nil ||
		!cmp.PreviousFrom.Equal(fixedNow.Add(-48*time.Hour)) || cmp.By != query.ByKind {
		t.Errorf("compare %+v %v", cmp, err)
	}
	if tok, err := c.AnalyticsTokens(ctx, "2026-11-01T00:00:00Z"); err != nil || tok.Tokens != int64(callsOf("acme")) {
		t.Errorf("tokens %+v %v", tok, err)
	}
	if ca, err := c.AnalyticsCache(ctx, client.AnalyticsFilter{From: "7d"}, "model"); err != nil || len(ca.Groups) != 2 || ca.Total.Lookups != uint64(callsOf("acme")) {
		t.Errorf("cache %+v %v", ca, err)
	}
}

func TestParseTime(t *testing.T) {
	now := fixedNow
	ok := map[string]time.Time{
		"0":                            now,
		"90m":                          now.Add(-90 * time.Minute),
		"1.5d":                         now.Add(-36 * time.Hour),
		"2026-11-01T00:00:00Z":         time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		"2026-11-01T01:00:00.25+01:00": time.Date(2026, 11, 1, 0, 0, 0, 25e7, time.UTC),
	}
	for in, want := range ok {
		got, err := analyticsapi.ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1h", "now", "1w", "2026-11-01", "-2d", url.QueryEscape("1h") + "x"} {
		if _, err := analyticsapi.ParseTime(in, now); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
