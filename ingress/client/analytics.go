package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gateflow/gateflow/analytics/report"
)

// Answers of the analytics endpoints, shared with the server.
type (
	// AnalyticsTrend answers AnalyticsTrend.
	AnalyticsTrend = report.TrendResponse
	// AnalyticsTop answers AnalyticsTop.
	AnalyticsTop = report.TopResponse
	// AnalyticsSlowestSteps answers AnalyticsSlowestSteps.
	AnalyticsSlowestSteps = report.SlowestStepsResponse
	// AnalyticsApprovals answers AnalyticsApprovals.
	AnalyticsApprovals = report.ApprovalsResponse
	// AnalyticsCompare answers AnalyticsCompare.
	AnalyticsCompare = report.CompareResponse
	// AnalyticsTokens answers AnalyticsTokens.
	AnalyticsTokens = report.TokensResponse
	// AnalyticsCache answers AnalyticsCache.
	AnalyticsCache = report.CacheResponse
	// AnalyticsCalls answers AnalyticsCalls.
	AnalyticsCalls = report.CallsResponse
)

// AnalyticsFilter selects the calls an analytics question is about; empty
// fields are not sent. From and To are RFC 3339 times or durations before
// now ("90m", "24h", "7d"), resolved by the server; without them the
// server answers for the last 24 hours. The tenant is always the API
// key's.
type AnalyticsFilter struct {
	From, To   string
	Kind       string
	Target     string
	Definition string
	Step       string
	// API and Consumer narrow to calls of the catalogue: the caller's own
	// calls as a consumer and every call to its own APIs.
	API      string
	Consumer string
}

func (f AnalyticsFilter) values(extra ...string) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("from", f.From)
	set("to", f.To)
	set("kind", f.Kind)
	set("target", f.Target)
	set("definition", f.Definition)
	set("step", f.Step)
	set("api", f.API)
	set("consumer", f.Consumer)
	for i := 0; i+1 < len(extra); i += 2 {
		set(extra[i], extra[i+1])
	}
	return q
}

// limitString sends any limit but 0 (the server default), so that a
// negative one is refused rather than ignored.
func limitString(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// AnalyticsTrend returns calls, errors, latency percentiles, tokens and
// cost per interval ("minute", "hour", "day"; "" for the server default,
// hour), grouped by groupBy ("" for none, "kind", "target", "service",
// "model", "definition", "step").
func (c *Client) AnalyticsTrend(ctx context.Context, f AnalyticsFilter, interval, groupBy string) (AnalyticsTrend, error) {
	var out AnalyticsTrend
	_, err := c.call(ctx, http.MethodGet, "/v1/analytics/trend", f.values("interval", interval, "group_by", groupBy), nil, nil, &out)
	return out, err
}

// AnalyticsTop returns up to limit groups of dimension by (server default
// target) ranked by metric ("calls", "errors", "error_rate", "cost",
// "tokens", "latency_p95"; server default calls). limit 0 means the
// server default (10).
func (c *Client) AnalyticsTop(ctx context.Context, f AnalyticsFilter, by, metric string, limit int) (AnalyticsTop, error) {
	var out AnalyticsTop
	_, err := c.call(ctx, http.MethodGet, "/v1/analytics/top", f.values("by", by, "metric", metric, "limit", limitString(limit)), nil, nil, &out)
	return out, err
}

// AnalyticsSlowestSteps returns the steps of f.Definition (required) by
// decreasing p95 latency.
func (c *Client) AnalyticsSlowestSteps(ctx context.Context, f AnalyticsFilter, limit int) (AnalyticsSlowestSteps, error) {
	var out AnalyticsSlowestSteps
	_, err := c.call(ctx, http.MethodGet, "/v1/analytics/slowest-steps", f.values("limit", limitString(limit)), nil, nil, &out)
	return out, err
}

// AnalyticsCalls returns the slowest calls of f, one raw record each with
// its trace id; with traceID, the calls of that trace (docs/TRACING.md).
func (c *Client) AnalyticsCalls(ctx context.Context, f AnalyticsFilter, traceID string, limit int) (AnalyticsCalls, error) {
	var out AnalyticsCalls
	_, err := c.call(ctx, http.MethodGet, "/v1/analytics/calls", f.values("trace_id", traceID, "limit", limitString(limit)), nil, nil, &out)
	return out, err
}

// AnalyticsApprovals returns approval turnaround by approver role (only
// From, To, Definition and Step of f apply).
func (c *Client) AnalyticsApprovals(ctx context.Context, f AnalyticsFilter) (AnalyticsApprovals, error) {
	var out AnalyticsApprovals
	_, err := c.call(ctx, http.MethodGet, "/v1/analytics/approvals", f.values(), nil, nil, &out)
	return out, err
}

// AnalyticsCompare compares [From, To) with the period of the same length
// before it, per value of by ("" for the whole tenant).
func (c *Client) AnalyticsCompare(ctx context.Context, f AnalyticsFilter, by string) (AnalyticsCompare, error) {
	var out AnalyticsCompare
	_, err := c.call(ctx, http.MethodGet, "/v1/analytics/compare", f.values("by", by), nil, nil, &out)
	return out, err
}

// AnalyticsTokens returns the tokens spent since a time (RFC 3339 or a
// duration before now; "" for today 00:00 UTC).
func (c *Client) AnalyticsTokens(ctx context.Context, since string) (AnalyticsTokens, error) {
	var out AnalyticsTokens
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	_, err := c.call(ctx, http.MethodGet, "/v1/analytics/tokens", q, nil, nil, &out)
	return out, err
}

// AnalyticsCache returns the model response cache's figures (lookups,
// hits, hit rate, cost saved) of f's range and target, per provider/model
// when by is "model".
func (c *Client) AnalyticsCache(ctx context.Context, f AnalyticsFilter, by string) (AnalyticsCache, error) {
	var out AnalyticsCache
	_, err := c.call(ctx, http.MethodGet, "/v1/analytics/cache", f.values("by", by), nil, nil, &out)
	return out, err
}
