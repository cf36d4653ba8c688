package analyticsapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/ingress/api"
)

func (h *handlers) routes() []api.Route {
	get := func(path string, fn func(*http.Request, string, time.Time) (any, error), doc api.Operation) api.Route {
		return api.Route{Method: http.MethodGet, Path: path, Roles: analysts, Handler: h.serve(fn), Doc: doc}
	}
	errs := map[int]api.Response{
		400: {Description: "A parameter is invalid; each detail names one (path = parameter name).", Schema: api.Ref("Error")},
		503: {Description: "ClickHouse did not answer.", Schema: api.Ref("Error")},
		504: {Description: "The query took too long.", Schema: api.Ref("Error")},
	}
	responses := func(schema, desc string) map[int]api.Response {
		out := map[int]api.Response{200: {Description: desc, Schema: api.Ref(schema)}}
		for k, v := range errs {
			out[k] = v
		}
		return out
	}
	return []api.Route{
		get("/v1/analytics/trend", h.trend, api.Operation{
			ID: "analyticsTrend", Summary: "Calls, errors, latency percentiles, tokens and cost per interval",
			Description: "One point per interval (and group) that has calls, in time order. Buckets are UTC minutes, hours or " +
				"days named by their start; the first and last are partial when from/to fall inside them. Counts and sums " +
				"are exact to the millisecond; percentiles are t-digest estimates (see docs/ANALYTICS.md).",
			Params:    with2(rangeParams(), filterParamDocs(), intervalParam(), []api.Param{groupByParam("group_by", "Group the points by this dimension (default: none).")}),
			Responses: responses("AnalyticsTrend", "The trend."),
		}),
		get("/v1/analytics/top", h.top, api.Operation{
			ID: "analyticsTop", Summary: "Top-N groups by calls, errors, error rate, cost, tokens or p95 latency",
			Params: with2(rangeParams(), filterParamDocs(), []api.Param{
				{Name: "by", In: "query", Description: "Dimension to rank (default target).", Schema: enum(dimensionValues()[1:])},
				{Name: "metric", In: "query", Description: "What to rank by (default calls).", Schema: enum(metricValues())},
				limitParam(),
			}),
			Responses: responses("AnalyticsTop", "The groups, highest first."),
		}),
		get("/v1/analytics/slowest-steps", h.slowestSteps, api.Operation{
			ID: "analyticsSlowestSteps", Summary: "Steps of a definition by decreasing p95 latency",
			Description: "`definition` is required.",
			Params:      with2(rangeParams(), filterParamDocs(), []api.Param{limitParam()}),
			Responses:   responses("AnalyticsSlowestSteps", "The steps, slowest first."),
		}),
		get("/v1/analytics/calls", h.calls, api.Operation{
			ID: "analyticsCalls", Summary: "The slowest calls, one record each, with their trace ids",
			Description: "Raw call records (not rollups), slowest first, each with the W3C trace and span id of the call: " +
				"open trace_id in your tracing backend, or pass it back as trace_id to list every call of that trace " +
				"(the ingress request, its workflow's activities, their model calls). See docs/TRACING.md.",
			Params: with2(rangeParams(), filterParamDocs(), []api.Param{
				{Name: "trace_id", In: "query", Description: "Only calls of this trace (32 lower-case hex digits).", Schema: str()},
				{Name: "limit", In: "query", Description: "Number of calls, 1-" + strconv.Itoa(query.MaxLimit) + " (default 20).",
					Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": query.MaxLimit}},
			}),
			Responses: responses("AnalyticsCalls", "The calls, slowest first."),
		}),
		get("/v1/analytics/approvals", h.approvals, api.Operation{
			ID: "analyticsApprovals", Summary: "Approval turnaround (waiting to decided) by approver role",
			Description: "A decider with several roles counts under each. Approvals are placed in time by when the wait started.",
			Params: with2(rangeParams(), []api.Param{
				{Name: "definition", In: "query", Description: "Only approvals of this definition.", Schema: str()},
				{Name: "step", In: "query", Description: "Only approvals of this step.", Schema: str()},
			}),
			Responses: responses("AnalyticsApprovals", "One entry per role."),
		}),
		get("/v1/analytics/compare", h.compare, api.Operation{
			ID: "analyticsCompare", Summary: "Figures of [from, to) against the period of the same length just before",
			Params: with2(rangeParams(), filterParamDocs(), []api.Param{
				groupByParam("by", "Compare per value of this dimension (default: the whole tenant)."),
			}),
			Responses: responses("AnalyticsCompare", "One entry per group, with relative changes (null when the previous value is 0)."),
		}),
		get("/v1/analytics/tokens", h.tokens, api.Operation{
			ID: "analyticsTokens", Summary: "Tokens (in + out) spent by your tenant since a time",
			Params: []api.Param{{Name: "since", In: "query", Description: "RFC 3339 time or a duration before now (default: today 00:00 UTC).",
				Schema: str()}},
			Responses: responses("AnalyticsTokens", "The token count."),
		}),
		get("/v1/analytics/cache", h.cache, api.Operation{
			ID: "analyticsCache", Summary: "The model response cache: lookups, hits, hit rate and the cost hits saved",
			Description: "Model calls eligible for the response cache (docs/MODELS.md): hits were answered without a provider " +
				"call; cost_saved_usd is what their answers had cost, cost_usd what the misses paid. With by=model, one group " +
				"per provider/model (the one whose answer a hit replayed), the most saved first.",
			Params: with2(rangeParams(), []api.Param{
				{Name: "target", In: "query", Description: "Only this provider/model.", Schema: str()},
				{Name: "by", In: "query", Description: "model: one group per provider/model (default: totals only).", Schema: enum([]string{"model"})},
			}),
			Responses: responses("AnalyticsCache", "The totals and, with by=model, the groups."),
		}),
	}
}

func with2(lists ...[]api.Param) []api.Param {
	var out []api.Param
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func str() map[string]any { return map[string]any{"type": "string"} }

func enum(values []string) map[string]any {
	e := make([]any, len(values))
	for i, v := range values {
		e[i] = v
	}
	return map[string]any{"type": "string", "enum": e}
}

func rangeParams() []api.Param {
	const when = " An RFC 3339 time (2026-11-01T00:00:00Z) or a duration before now (90m, 24h, 7d)."
	return []api.Param{
		{Name: "from", In: "query", Description: "Start, inclusive (default: 24 h before to)." + when, Schema: str()},
		{Name: "to", In: "query", Description: "End, exclusive (default: now)." + when, Schema: str()},
	}
}

func filterParamDocs() []api.Param {
	return []api.Param{
		{Name: "kind", In: "query", Description: "Only calls of this kind.", Schema: enum(calls.KindNames())},
		{Name: "target", In: "query", Description: "Only calls to this target (route, service, provider/model, server/tool).", Schema: str()},
		{Name: "definition", In: "query", Description: "Only calls of this definition.", Schema: str()},
		{Name: "step", In: "query", Description: "Only calls of this step.", Schema: str()},
		{Name: "api", In: "query", Description: "Only calls to this catalogue API (read from the catalogue rollups: your calls as a consumer and every call to your APIs).", Schema: str()},
		{Name: "consumer", In: "query", Description: "Only calls served to this consumer tenant (catalogue rollups).", Schema: str()},
	}
}

func intervalParam() []api.Param {
	return []api.Param{{Name: "interval", In: "query", Description: "Bucket size (default hour); at most " +
		strconv.Itoa(query.MaxBuckets) + " buckets.", Schema: enum(intervalValues())}}
}

func groupByParam(name, desc string) api.Param {
	return api.Param{Name: name, In: "query", Description: desc + " service and model are the targets of http and model calls; " +
		"api, api_version (api@version), consumer and consumer_app (consumer/app) group calls of the catalogue: an owner sees every consumer of its APIs, a consumer its own calls.",
		Schema: enum(dimensionValues()[1:])}
}

func limitParam() api.Param {
	return api.Param{Name: "limit", In: "query", Description: "Number of groups, 1-" + strconv.Itoa(query.MaxLimit) + " (default 10).",
		Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": query.MaxLimit}}
}

func obj(required []string, props map[string]any) map[string]any {
	return map[string]any{"type": "object", "required": required, "properties": props}
}

func schemas() map[string]any {
	num := map[string]any{"type": "number"}
	integer := map[string]any{"type": "integer"}
	dt := map[string]any{"type": "string", "format": "date-time"}
	arr := func(items any) map[string]any { return map[string]any{"type": "array", "items": items} }
	stats := map[string]any{
		"calls": integer, "errors": integer, "timeouts": integer, "error_rate": num,
		"tokens_in": integer, "tokens_out": integer, "cost_usd": num,
		"latency_avg_ms": num, "latency_p50_ms": num, "latency_p95_ms": num, "latency_p99_ms": num, "latency_max_ms": num,
	}
	merge := func(ms ...map[string]any) map[string]any {
		out := map[string]any{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	scope := map[string]any{"tenant": str(), "from": dt, "to": dt, "kind": str(), "target": str(), "definition": str(), "step": str(), "api": str(), "consumer": str()}
	scopeReq := []string{"tenant", "from", "to"}
	statsNames := []string{"calls", "errors", "timeouts", "error_rate", "tokens_in", "tokens_out", "cost_usd",
		"latency_avg_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms"}
	item := obj(append([]string{"group", "value"}, statsNames...), merge(stats, map[string]any{"group": str(), "value": num}))
	nullableNum := map[string]any{"type": []any{"number", "null"}}
	return map[string]any{
		"AnalyticsStats": obj(statsNames, stats),
		"AnalyticsTrend": obj(append(scopeReq, "interval", "points"), merge(scope, map[string]any{
			"interval": enum(intervalValues()), "group_by": str(),
			"points": arr(obj(append([]string{"time"}, statsNames...), merge(stats, map[string]any{"time": dt, "group": str()}))),
		})),
		"AnalyticsTop": obj(append(scopeReq, "by", "metric", "limit", "items"), merge(scope, map[string]any{
			"by": str(), "metric": enum(metricValues()), "limit": integer, "items": arr(item),
		})),
		"AnalyticsSlowestSteps": obj(append(scopeReq, "limit", "steps"), merge(scope, map[string]any{"limit": integer, "steps": arr(item)})),
		"AnalyticsApprovals": obj(append(scopeReq, "roles"), merge(scope, map[string]any{
			"roles": arr(obj([]string{"role", "decisions"}, map[string]any{
				"role": str(), "decisions": integer, "approved": integer, "rejected": integer, "timed_out": integer,
				"turnaround_avg_ms": num, "turnaround_p50_ms": num, "turnaround_p95_ms": num, "turnaround_p99_ms": num, "turnaround_max_ms": num,
			})),
		})),
		"AnalyticsCompare": obj(append(scopeReq, "previous_from", "groups"), merge(scope, map[string]any{
			"previous_from": dt, "by": str(),
			"groups": arr(obj([]string{"current", "previous"}, map[string]any{
				"group": str(), "current": api.Ref("AnalyticsStats"), "previous": api.Ref("AnalyticsStats"),
				"calls_change": nullableNum, "error_rate_change": nullableNum, "latency_p95_change": nullableNum,
				"cost_change": nullableNum, "tokens_change": nullableNum,
			})),
		})),
		"AnalyticsCalls": obj(append(scopeReq, "limit", "calls"), merge(scope, map[string]any{
			"trace_id": str(), "limit": integer,
			"calls": arr(obj([]string{"id", "ts", "kind", "target", "outcome", "latency_ms"}, map[string]any{
				"id": str(), "ts": dt, "kind": str(), "target": str(), "workflow_id": str(), "definition": str(), "step_id": str(),
				"attempt": integer, "status_code": integer, "outcome": str(), "latency_ms": num, "error_class": str(),
				"trace_id": str(), "span_id": str(),
			})),
		})),
		"AnalyticsTokens": obj([]string{"tenant", "since", "tokens"}, map[string]any{"tenant": str(), "since": dt, "tokens": integer}),
		"AnalyticsCacheStats": obj([]string{"lookups", "hits", "misses", "hit_rate", "cost_saved_usd", "cost_usd"}, map[string]any{
			"group": str(), "lookups": integer, "hits": integer, "misses": integer, "hit_rate": num, "cost_saved_usd": num, "cost_usd": num,
		}),
		"AnalyticsCache": obj(append(scopeReq, "total"), merge(scope, map[string]any{
			"by": str(), "total": api.Ref("AnalyticsCacheStats"), "groups": arr(api.Ref("AnalyticsCacheStats")),
		})),
	}
}
