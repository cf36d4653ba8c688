// Package report holds the answers of analytics questions as data: the
// figures of a set of calls, trend points, top-N items, approval
// turnaround, period comparisons, and the vocabularies that select them
// (intervals, dimensions, metrics), together with the JSON answers of the
// REST API's /v1/analytics routes. It imports no database driver, so the Go
// client and the console can use it; analytics/query computes these values
// in ClickHouse.
package report

import "time"

// Interval is the bucket size of a trend.
type Interval string

// Intervals.
const (
	Minute Interval = "minute"
	Hour   Interval = "hour"
	Day    Interval = "day"
)

// Intervals lists the accepted intervals.
func Intervals() []Interval { return []Interval{Minute, Hour, Day} }

// Dimension is what results are grouped by.
type Dimension string

// Dimensions. Service and Model are the target of http and model calls;
// API, Consumer and Upstream group gateway (proxy) calls by the API
// called, its consumer ("tenant/app") and the upstream instance.
const (
	ByNone       Dimension = ""
	ByKind       Dimension = "kind"
	ByTarget     Dimension = "target"
	ByService    Dimension = "service"
	ByModel      Dimension = "model"
	ByDefinition Dimension = "definition"
	ByStep       Dimension = "step"
	// ByTrigger groups by what started the orchestrations ("<kind>:<name>",
	// e.g. "webhook:github-push"): the calls of orchestrations started by
	// a schedule, topic trigger, webhook or event, and the triggers' own
	// records. Calls of orchestrations started through the API have none
	// and are left out.
	ByTrigger Dimension = "trigger"
	// The catalogue dimensions (docs/CATALOG.md): the API called, its
	// version ("api@version"), the consumer tenant served, and its app
	// ("consumer/app"; "consumer/" for a tenant-wide grant). They read the
	// catalogue rollups, which hold the calls to the caller's own APIs
	// (all consumers) and the caller's own calls as a consumer.
	ByAPI         Dimension = "api"
	ByAPIVersion  Dimension = "api_version"
	ByConsumer    Dimension = "consumer"
	ByConsumerApp Dimension = "consumer_app"
	// ByUpstream groups gateway calls (kind proxy) by the upstream
	// instance that answered (host:port); it reads the proxy rollups.
	ByUpstream Dimension = "upstream"
)

// Dimensions lists the accepted group-by values, for help texts.
func Dimensions() []Dimension {
	return []Dimension{ByNone, ByKind, ByTarget, ByService, ByModel, ByDefinition, ByStep, ByTrigger, ByAPI, ByAPIVersion, ByConsumer, ByConsumerApp, ByUpstream}
}

// IsAPIDimension reports whether d is one of the catalogue dimensions.
func IsAPIDimension(d Dimension) bool {
	return d == ByAPI || d == ByAPIVersion || d == ByConsumer || d == ByConsumerApp
}

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

// Point is one bucket of a trend, for one group. A bucket is named by its
// start; the first and last may be partial when From or To fall inside
// one.
type Point struct {
	Time  time.Time `json:"time"`
	Group string    `json:"group,omitempty"`
	Stats
}

// Item is one group of a top-N, with the ranking value.
type Item struct {
	Group string  `json:"group"`
	Value float64 `json:"value"`
	Stats
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

// Metrics lists the accepted top-N metrics.
func Metrics() []Metric {
	return []Metric{ByCalls, ByErrors, ByErrorRate, ByCost, ByTokens, ByLatency}
}

// The JSON answers of the REST API's /v1/analytics routes.

// Scope is what every answer echoes: the tenant, the resolved time range
// and the filters applied.
type Scope struct {
	Tenant     string    `json:"tenant"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Kind       string    `json:"kind,omitempty"`
	Target     string    `json:"target,omitempty"`
	Definition string    `json:"definition,omitempty"`
	Step       string    `json:"step,omitempty"`
	API        string    `json:"api,omitempty"`
	Consumer   string    `json:"consumer,omitempty"`
}

// TrendResponse answers GET /v1/analytics/trend.
type TrendResponse struct {
	Scope
	Interval Interval  `json:"interval"`
	GroupBy  Dimension `json:"group_by,omitempty"`
	Points   []Point   `json:"points"`
}

// TopResponse answers GET /v1/analytics/top.
type TopResponse struct {
	Scope
	By     Dimension `json:"by"`
	Metric Metric    `json:"metric"`
	Limit  int       `json:"limit"`
	Items  []Item    `json:"items"`
}

// SlowestStepsResponse answers GET /v1/analytics/slowest-steps.
type SlowestStepsResponse struct {
	Scope
	Limit int    `json:"limit"`
	Steps []Item `json:"steps"`
}

// ApprovalsResponse answers GET /v1/analytics/approvals.
type ApprovalsResponse struct {
	Scope
	Roles []Approval `json:"roles"`
}

// CompareResponse answers GET /v1/analytics/compare: [from, to) against
// [previous_from, from).
type CompareResponse struct {
	Scope
	PreviousFrom time.Time `json:"previous_from"`
	By           Dimension `json:"by,omitempty"`
	Groups       []Change  `json:"groups"`
}

// TokensResponse answers GET /v1/analytics/tokens.
type TokensResponse struct {
	Tenant string    `json:"tenant"`
	Since  time.Time `json:"since"`
	Tokens int64     `json:"tokens"`
}

// CacheStats are the figures of the model gateway's response cache for a
// set of model calls: lookups (calls eligible for the cache), hits
// (answered from it, without a provider call), misses, the hit rate, the
// cost the hits saved (what their answers had cost) and the cost paid by
// the misses.
type CacheStats struct {
	Group        string  `json:"group,omitempty"`
	Lookups      uint64  `json:"lookups"`
	Hits         uint64  `json:"hits"`
	Misses       uint64  `json:"misses"`
	HitRate      float64 `json:"hit_rate"`
	CostSavedUSD float64 `json:"cost_saved_usd"`
	CostUSD      float64 `json:"cost_usd"`
}

// CacheResponse answers GET /v1/analytics/cache: the totals and, with
// by=model, the figures per provider/model.
type CacheResponse struct {
	Scope
	By     Dimension    `json:"by,omitempty"`
	Total  CacheStats   `json:"total"`
	Groups []CacheStats `json:"groups,omitempty"`
}

// Call is one call record as GET /v1/analytics/calls lists it: enough to
// see why it is there and to open its trace (TraceID in the tracing
// backend; docs/TRACING.md).
type Call struct {
	ID         string    `json:"id"`
	TS         time.Time `json:"ts"`
	Kind       string    `json:"kind"`
	Target     string    `json:"target"`
	WorkflowID string    `json:"workflow_id,omitempty"`
	Definition string    `json:"definition,omitempty"`
	StepID     string    `json:"step_id,omitempty"`
	Attempt    int32     `json:"attempt,omitempty"`
	StatusCode int32     `json:"status_code,omitempty"`
	Outcome    string    `json:"outcome"`
	LatencyMS  float64   `json:"latency_ms"`
	ErrorClass string    `json:"error_class,omitempty"`
	TraceID    string    `json:"trace_id,omitempty"`
	SpanID     string    `json:"span_id,omitempty"`
}

// CallsResponse answers GET /v1/analytics/calls: the slowest calls of the
// scope (of one trace when TraceID is set), slowest first.
type CallsResponse struct {
	Scope
	TraceID string `json:"trace_id,omitempty"`
	Limit   int    `json:"limit"`
	Calls   []Call `json:"calls"`
}
