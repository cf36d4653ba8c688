// Package callgen generates synthetic call records with a realistic mix of
// tenants, kinds, targets, definitions, steps, outcomes, latencies, tokens
// and costs, for the analytics tests and benchmarks. The same seed gives
// the same records (ids aside).
package callgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/gateflow/gateflow/analytics/record"
)

// Tenants, in decreasing share of the traffic.
var Tenants = []string{"acme", "globex", "initech", "umbrella"}

// Definitions and their call steps; approval records use step ApprovalStep.
var Definitions = map[string][]string{
	"onboarding": {"validate", "create_account", "welcome_mail"},
	"triage":     {"classify", "summarize", "route"},
	"billing":    {"fetch_invoice", "charge", "notify"},
}

// ApprovalStep is the step id of every generated approval record.
const ApprovalStep = "approve"

var (
	defNames    = []string{"billing", "onboarding", "triage"}
	services    = []string{"accounts", "mailer", "payments", "crm"}
	models      = []string{"openai/gpt-4o", "anthropic/claude-sonnet", "gemini/flash"}
	routes      = []string{"POST /v1/orchestrations", "GET /v1/orchestrations/:id", "POST /v1/approvals/:id"}
	mcpTools    = []string{"search/lookup", "files/read"}
	roles       = []string{"approver", "manager", "admin"}
	priceIn     = map[string]float64{"openai/gpt-4o": 2.5e-6, "anthropic/claude-sonnet": 3e-6, "gemini/flash": 0.1e-6}
	priceOut    = map[string]float64{"openai/gpt-4o": 10e-6, "anthropic/claude-sonnet": 15e-6, "gemini/flash": 0.4e-6}
	baseLatency = map[record.Kind]float64{record.KindIngress: 4, record.KindHTTP: 40, record.KindModel: 900, record.KindMCP: 120}
)

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

// Next returns one record.
func (g *Generator) Next() record.Record {
	g.seq++
	rng := g.rng
	ts := g.Start.Add(time.Duration(rng.Int64N(int64(g.Span))))
	var r record.Record
	r.Schema = record.SchemaVersion
	r.ID = record.NewID()
	r.TS = ts.UnixMilli()
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
	def := g.pick(defNames)
	steps := Definitions[def]
	r.Definition = def
	r.Version = strconv.Itoa(1 + rng.IntN(3))
	r.WorkflowID = fmt.Sprintf("%s-%d", def, g.seq/8)
	r.RunID = fmt.Sprintf("run-%d", g.seq/8)
	r.Attempt = 1
	if rng.IntN(10) == 0 {
		r.Attempt = 2 + rng.Int32N(3)
	}
	switch x := rng.IntN(100); {
	case x < 20:
		r.Kind = record.KindIngress
		r.Target = g.pick(routes)
		r.WorkflowID, r.RunID, r.Definition, r.Version, r.Attempt = "", "", "", "", 0
	case x < 60:
		r.Kind = record.KindHTTP
		r.Target = g.pick(services)
		r.StepID = steps[rng.IntN(len(steps))]
	case x < 85:
		r.Kind = record.KindModel
		r.Target = g.pick(models)
		r.StepID = steps[rng.IntN(len(steps))]
		r.TokensIn = 50 + rng.Int64N(2000)
		r.TokensOut = 10 + rng.Int64N(800)
		r.CostUSD = float64(r.TokensIn)*priceIn[r.Target] + float64(r.TokensOut)*priceOut[r.Target]
	case x < 95:
		r.Kind = record.KindMCP
		r.Target = g.pick(mcpTools)
		r.StepID = steps[rng.IntN(len(steps))]
	default:
		r.Kind = record.KindApproval
		r.Target = "approval"
		r.StepID = ApprovalStep
	}
	if r.Kind == record.KindApproval {
		// Turnaround: minutes to hours, slower for managers.
		mean := 300_000.0
		ra := []string{g.pick(roles)}
		if rng.IntN(4) == 0 {
			ra = append(ra, "admin")
			if ra[0] == "admin" {
				ra = ra[:1]
			}
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
		return r
	}
	// Latency: log-normal around the kind's base, heavier for some targets.
	base := baseLatency[r.Kind]
	if r.Target == "payments" || r.Target == "anthropic/claude-sonnet" {
		base *= 2
	}
	r.LatencyMS = math.Round(base*math.Exp(rng.NormFloat64()*0.6)*1000) / 1000
	r.ReqBytes = 200 + rng.Int64N(4000)
	r.RespBytes = 100 + rng.Int64N(20000)
	r.StatusCode = 200
	r.Outcome = record.OutcomeOK
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
	if r.Kind == record.KindModel && r.Outcome != record.OutcomeOK {
		r.TokensOut, r.CostUSD = 0, float64(r.TokensIn)*priceIn[r.Target]
	}
	if rng.IntN(3) == 0 {
		r.Labels = map[string]string{"region": g.pick([]string{"eu", "us"})}
	}
	return r
}
