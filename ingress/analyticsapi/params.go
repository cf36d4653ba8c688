package analyticsapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/ingress/api"
)

// DefaultRange is the time range of a question without from: the last 24
// hours.
const DefaultRange = 24 * time.Hour

// ParseTime reads a time parameter: an RFC 3339 time
// ("2026-11-01T00:00:00Z", fractions allowed), or a duration before now
// ("90m", "24h", "7d", "0" for now). The result is UTC, truncated to the
// millisecond.
func ParseTime(s string, now time.Time) (time.Time, error) {
	// Times are resolved to the millisecond, the resolution of the records.
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Truncate(time.Millisecond), nil
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d).UTC().Truncate(time.Millisecond), nil
	}
	return time.Time{}, errors.New("must be an RFC 3339 time (2026-11-01T00:00:00Z) or a duration before now (90m, 24h, 7d)")
}

// parseAgo reads a non-negative duration, accepting a "d" (24 h) unit.
func parseAgo(s string) (time.Duration, bool) {
	if s == "0" {
		return 0, true
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 || n > 100*366 {
			return 0, false
		}
		return time.Duration(n * float64(24*time.Hour)), true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || strings.HasPrefix(s, "-") {
		return 0, false
	}
	return d, true
}

// params reads the query string of one endpoint, collecting every problem
// with its parameter name.
type params struct {
	q       url.Values
	now     time.Time
	details []api.Detail
}

// newParams checks that only allowed parameters are given, each once.
func newParams(r *http.Request, now time.Time, allowed ...string) *params {
	p := &params{q: r.URL.Query(), now: now}
	keys := make([]string, 0, len(p.q))
	for k := range p.q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case k == "tenant":
			p.bad(k, "not accepted: the tenant is the API key's")
		case !slices.Contains(allowed, k):
			p.bad(k, "unknown query parameter; accepted: "+strings.Join(allowed, ", "))
		case len(p.q[k]) != 1:
			p.bad(k, "must be given once")
		}
	}
	return p
}

func (p *params) bad(name, msg string) {
	p.details = append(p.details, api.Detail{Path: name, Message: msg})
}

func (p *params) str(name string) string { return p.q.Get(name) }

// time reads a time parameter, def when absent.
func (p *params) time(name string, def time.Time) time.Time {
	v := p.q.Get(name)
	if v == "" {
		return def
	}
	t, err := ParseTime(v, p.now)
	if err != nil {
		p.bad(name, err.Error())
	}
	return t
}

// rangeAndFilters reads from, to and the call filters into a query.Filter.
func (p *params) rangeAndFilters(tenant string) query.Filter {
	to := p.time("to", p.now.Truncate(time.Millisecond))
	from := p.time("from", to.Add(-DefaultRange))
	if !from.IsZero() && !to.IsZero() && !from.Before(to) && len(p.details) == 0 {
		p.bad("from", fmt.Sprintf("must be before to (%s >= %s)", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano)))
	}
	// kind is documented as an enum: an unknown kind is a mistake (400),
	// not a filter that silently matches nothing.
	kind := p.str("kind")
	if kind != "" {
		kind = p.enum("kind", "", calls.KindNames())
	}
	return query.Filter{Tenant: tenant, From: from, To: to, Kind: kind, Target: p.str("target"),
		Definition: p.str("definition"), StepID: p.str("step"), API: p.str("api"), Consumer: p.str("consumer")}
}

// enum reads a parameter that must be one of values (def when absent).
func (p *params) enum(name, def string, values []string) string {
	v, ok := p.q[name]
	if !ok {
		return def
	}
	if !slices.Contains(values, v[0]) {
		p.bad(name, "must be one of "+strings.Join(quoteAll(values), ", "))
	}
	return v[0]
}

func quoteAll(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		if v == "" {
			out[i] = `"" (none)`
			continue
		}
		out[i] = v
	}
	return out
}

// intRange reads an integer parameter in [lo, hi] (def when absent).
func (p *params) intRange(name string, def, lo, hi int) int {
	v := p.q.Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.bad(name, fmt.Sprintf("must be an integer between %d and %d", lo, hi))
		return def
	}
	return n
}

// err returns the 400 answer for the problems found, or nil.
func (p *params) err() error {
	if len(p.details) == 0 {
		return nil
	}
	slices.SortStableFunc(p.details, func(a, b api.Detail) int { return strings.Compare(a.Path, b.Path) })
	return invalidQuery(p.details)
}

func invalidQuery(details []api.Detail) *api.Error {
	msg := "invalid query: " + details[0].Path + ": " + details[0].Message
	if len(details) > 1 {
		msg += fmt.Sprintf(" (and %d more problems)", len(details)-1)
	}
	return &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: msg, Details: details}
}

// paramOfField names the query parameter of a query.FieldError's field.
func paramOfField(field string) string {
	if field == "step_id" {
		return "step"
	}
	return field
}

func dimensionValues() []string {
	var out []string
	for _, d := range query.Dimensions() {
		out = append(out, string(d))
	}
	return out
}

func metricValues() []string {
	var out []string
	for _, m := range query.Metrics() {
		out = append(out, string(m))
	}
	return out
}

func intervalValues() []string {
	var out []string
	for _, i := range query.Intervals() {
		out = append(out, string(i))
	}
	return out
}
