// Package callgen generates synthetic call records for the analytics tests
// and benchmarks, shaped like real traffic: a bounded set of (tenant, kind,
// target, definition, step) combinations, each called many times.
//
// Cardinality (see Combinations): 4 tenants with skewed shares (50/25/15/10
// %), 5 ingress routes, 5 definitions of 3 to 5 steps where every step
// always calls the same target (11 HTTP services, 4 models, 3 MCP tools;
// 23 targets with the routes, 24 with "approval"), and an approval step in
// 3 of the definitions: 29 combinations per tenant, 116 in all. Traffic
// follows a daily cycle (busiest at 15:00 UTC, a fifth of that at 03:00),
// so 10M records over 7 days put on average ~9 calls in a combination's
// minute, ~1000 calls in the whole minute.
//
// The same seed gives the same records (ids aside).
package callgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
)

// Tenants, in decreasing share of the traffic (50, 25, 15 and 10 %).
var Tenants = []string{"acme", "globex", "initech", "umbrella"}

// Step is one step of a generated definition and the target it calls.
type Step struct {
	ID     string
	Kind   calls.Kind
	Target string
}

// ApprovalStep is the step id of every generated approval record.
const ApprovalStep = "approve"

// Definitions are the generated definitions and their steps (approval
// steps excluded; see Approvals).
var Definitions = map[string][]Step{
	"onboarding": {
		{"validate", calls.KindHTTP, "accounts"},
		{"create_account", calls.KindHTTP, "crm"},
		{"kyc", calls.KindHTTP, "identity"},
		{"welcome_mail", calls.KindHTTP, "mailer"},
	},
	"triage": {
		{"classify", calls.KindModel, "openai/gpt-4o"},
		{"lookup", calls.KindMCP, "search/lookup"},
		{"summarize", calls.KindModel, "anthropic/claude-sonnet"},
		{"route", calls.KindHTTP, "tickets"},
	},
	"billing": {
		{"fetch_invoice", calls.KindHTTP, "invoices"},
		{"charge", calls.KindHTTP, "payments"},
		{"book", calls.KindHTTP, "ledger"},
		{"notify", calls.KindHTTP, "mailer"},
	},
	"support": {
		{"search", calls.KindMCP, "search/lookup"},
		{"read", calls.KindMCP, "files/read"},
		{"answer", calls.KindModel, "gemini/flash"},
		{"translate", calls.KindModel, "openai/gpt-4o-mini"},
		{"escalate", calls.KindHTTP, "tickets"},
	},
	"reporting": {
		{"extract", calls.KindHTTP, "warehouse"},
		{"render", calls.KindHTTP, "pdf"},
		{"archive", calls.KindMCP, "files/write"},
		{"publish", calls.KindHTTP, "cdn"},
	},
}

// Approvals lists the definitions with an approval step.
var Approvals = []string{"billing", "onboarding", "reporting"}

var (
	defNames = []string{"billing", "onboarding", "reporting", "support", "triage"}
	// defWeight is each definition's share of orchestrations, in defNames
	// order.
	defWeight = []int{30, 15, 10, 25, 20}
	routes    = []string{"POST /v1/workflows", "GET /v1/workflows/{id}", "GET /v1/workflows",
		"POST /v1/workflows/{id}/approvals/{step}", "GET /v1/approvals"}
	routeWeight = []int{30, 45, 10, 5, 10}
	roles       = []string{"approver", "manager", "admin"}
	priceIn     = map[string]float64{"openai/gpt-4o": 2.5e-6, "openai/gpt-4o-mini": 0.15e-6, "anthropic/claude-sonnet": 3e-6, "gemini/flash": 0.1e-6}
	priceOut    = map[string]float64{"openai/gpt-4o": 10e-6, "openai/gpt-4o-mini": 0.6e-6, "anthropic/claude-sonnet": 15e-6, "gemini/flash": 0.4e-6}
	baseLatency = map[calls.Kind]float64{calls.KindIngress: 4, calls.KindHTTP: 40, calls.KindModel: 900, calls.KindMCP: 120}
	// slowTargets have twice their kind's base latency.
	slowTargets = map[string]bool{"payments": true, "anthropic/claude-sonnet": true, "warehouse": true, "pdf": true}
)

// Combinations returns the number of distinct (tenant, kind, target,
// definition, step) combinations the generator produces.
func Combinations() int {
	per := len(routes) + len(Approvals)
	for _, steps := range Definitions {
		per += len(steps)
	}
	return per * len(Tenants)
}

// Targets returns the number of distinct targets (routes, services, models,
// MCP tools and "approval").
func Targets() int {
	seen := map[string]bool{"approval": true}
	for _, r := range routes {
		seen[r] = true
	}
	for _, steps := range Definitions {
		for _, s := range steps {
			seen[s.Target] = true
		}
	}
	return len(seen)
}

// Generator produces records spread over [Start, Start+Span).
type Generator struct {
	rng   *rand.Rand
	Start time.Time
	Span  time.Duration
	seq   int
}

// New returns a generator.
func New(seed uint64, start time.Time, span time.Duration) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), Start: start, Span: span}
}

// Generate returns n records.
func (g *Generator) Generate(n int) []record.Record {
	out := make([]record.Record, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func (g *Generator) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

func (g *Generator) weighted(xs []string, w []int) string {
	total := 0
	for _, x := range w {
		total += x
	}
	n := g.rng.IntN(total)
	for i, x := range w {
		if n < x {
			return xs[i]
		}
		n -= x
	}
	return xs[len(xs)-1]
}

// ts draws a time in the span following the daily cycle: the chance of a
// call at hour h (UTC) is proportional to 0.2 + 0.8*sin²(π(h-3)/24).
func (g *Generator) ts() time.Time {
	for {
		t := g.Start.Add(time.Duration(g.rng.Int64N(int64(g.Span))))
		h := float64(t.UTC().Hour()) + float64(t.UTC().Minute())/60
		s := math.Sin(math.Pi * (h - 3) / 24)
		if g.rng.Float64() < 0.2+0.8*s*s {
			return t
		}
	}
}

// Next returns one record.
func (g *Generator) Next() record.Record {
	g.seq++
	rng := g.rng
	var r record.Record
	r.Schema = record.SchemaVersion
	r.ID = record.NewID()
	r.TS = g.ts().UnixMilli()
	// Skewed tenants: 50%, 25%, 15%, 10%.
	switch x := rng.IntN(100); {
	case x < 50:
		r.Tenant = Tenants[0]
	case x < 75:
		r.Tenant = Tenants[1]
	case x < 90:
		r.Tenant = Tenants[2]
	default:
		r.Tenant = Tenants[3]
	}
	r.KeyID = "key-" + strconv.Itoa(rng.IntN(5))

	switch x := rng.IntN(100); {
	case x < 20:
		r.Kind = calls.KindIngress
		r.Target = g.weighted(routes, routeWeight)
	case x < 96:
		def := g.weighted(defNames, defWeight)
		steps := Definitions[def]
		st := steps[rng.IntN(len(steps))]
		r.Kind, r.Target, r.StepID = st.Kind, st.Target, st.ID
		r.Definition = def
		r.Version = strconv.Itoa(1 + rng.IntN(3))
		r.WorkflowID = fmt.Sprintf("%s-%d", def, g.seq/8)
		r.RunID = fmt.Sprintf("run-%d", g.seq/8)
		r.Attempt = 1
		if rng.IntN(10) == 0 {
			r.Attempt = 2 + rng.Int32N(3)
		}
	default:
		def := g.pick(Approvals)
		r.Kind, r.Target, r.StepID, r.Definition = calls.KindApproval, "approval", ApprovalStep, def
		r.Version = strconv.Itoa(1 + rng.IntN(3))
		r.WorkflowID = fmt.Sprintf("%s-%d", def, g.seq/8)
		r.RunID = fmt.Sprintf("run-%d", g.seq/8)
		g.approval(&r)
		return r
	}
	// Latency: log-normal around the kind's base, heavier for some targets.
	base := baseLatency[r.Kind]
	if slowTargets[r.Target] {
		base *= 2
	}
	r.LatencyMS = math.Round(base*math.Exp(rng.NormFloat64()*0.6)*1000) / 1000
	r.ReqBytes = 200 + rng.Int64N(4000)
	r.RespBytes = 100 + rng.Int64N(20000)
	r.StatusCode = 200
	r.Outcome = record.OutcomeOK
	if r.Kind == calls.KindModel {
		r.TokensIn = 50 + rng.Int64N(2000)
		r.TokensOut = 10 + rng.Int64N(800)
		r.CostUSD = float64(r.TokensIn)*priceIn[r.Target] + float64(r.TokensOut)*priceOut[r.Target]
	}
	switch x := rng.IntN(100); {
	case x < 3:
		r.Outcome, r.StatusCode, r.ErrorClass = record.OutcomeTimeout, 0, "timeout"
		r.ErrorMsg = "context deadline exceeded"
	case x < 8:
		r.Outcome, r.StatusCode, r.ErrorClass = record.OutcomeError, 502, "status"
		r.ErrorMsg = "upstream returned 502 Bad Gateway"
	case x < 9:
		r.Outcome, r.StatusCode, r.ErrorClass = record.OutcomeRejected, 429, "rate_limit"
	}
	if r.Kind == calls.KindModel && r.Outcome != record.OutcomeOK {
		r.TokensOut, r.CostUSD = 0, float64(r.TokensIn)*priceIn[r.Target]
	}
	if r.Kind == calls.KindModel && r.Outcome == record.OutcomeOK {
		// The response cache, decided from a drawn value so that the
		// random sequence (and every other field) stays as it was: 30% of
		// successful model calls are hits (no tokens, no cost, the cost
		// saved), 40% misses, the rest not eligible.
		switch r.ReqBytes % 10 {
		case 0, 1, 2:
			r.Cache, r.CostSavedUSD = "hit", r.CostUSD
			r.TokensIn, r.TokensOut, r.CostUSD = 0, 0, 0
		case 3, 4, 5, 6:
			r.Cache = "miss"
		}
	}
	if rng.IntN(3) == 0 {
		r.Labels = map[string]string{"region": g.pick([]string{"eu", "us"})}
	}
	return r
}

// approval fills an approval record: turnaround of minutes to hours
// (slower for managers), a decision, the decider's roles (sometimes two)
// and user.
func (g *Generator) approval(r *record.Record) {
	rng := g.rng
	mean := 300_000.0
	ra := []string{g.pick(roles)}
	if rng.IntN(4) == 0 && ra[0] != "admin" {
		ra = append(ra, "admin")
	}
	if ra[0] == "manager" {
		mean *= 4
	}
	r.LatencyMS = math.Round(mean*rng.ExpFloat64()*1000) / 1000
	decision := "approve"
	r.Outcome = record.OutcomeOK
	switch x := rng.IntN(20); {
	case x == 0:
		decision, r.Outcome = "timeout", record.OutcomeTimeout
	case x < 4:
		decision, r.Outcome = "reject", record.OutcomeRejected
	}
	roleLabel := ra[0]
	for _, x := range ra[1:] {
		roleLabel += "," + x
	}
	r.Labels = map[string]string{record.LabelDecision: decision, record.LabelRoles: roleLabel, record.LabelUser: "user" + strconv.Itoa(rng.IntN(7))}
}
