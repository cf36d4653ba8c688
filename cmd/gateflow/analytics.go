package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/analytics/report"
	"github.com/gateflow/gateflow/ingress/analyticsapi"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/client"
	"github.com/gateflow/gateflow/ingress/httperr"
)

// analyticsFlags are the flags shared by the analytics subcommands. By
// default they call the REST API (GET /v1/analytics/...) with the caller's
// API key; with --direct an operator reads ClickHouse straight, for a
// tenant named with --tenant, through the same handlers in process.
type analyticsFlags struct {
	API        apiFlags
	Output     string
	Direct     bool
	ClickHouse clickhouseConfig
	Tenant     string
	Filter     client.AnalyticsFilter
}

func (a *analyticsFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&a.API.URL, "api-url", "http://127.0.0.1:8080", "Gateflow API URL")
	fs.StringVar(&a.API.Key, "api-key", "", "API key with the analyst role (default: the key in "+defaultDevKeyFile+" when present)")
	fs.StringVarP(&a.Output, "output", "o", "table", "output: table, csv or json")
	fs.StringVar(&a.Output, "format", "table", "same as --output")
	_ = fs.MarkHidden("format")
	fs.BoolVar(&a.Direct, "direct", false, "operators: read ClickHouse directly (--clickhouse-dsn) for --tenant instead of calling the API")
	a.ClickHouse.bind(fs)
	fs.StringVar(&a.Tenant, "tenant", "", "tenant: required with --direct; through the API the tenant is the API key's, and this only checks it")
	const when = "RFC 3339 time or a duration before now (90m, 24h, 7d)"
	fs.StringVar(&a.Filter.From, "from", "", "start, inclusive: "+when+" (default: 24h before --to)")
	fs.StringVar(&a.Filter.To, "to", "", "end, exclusive: "+when+" (default: now)")
	fs.StringVar(&a.Filter.Kind, "kind", "", "only calls of this kind (ingress, http, model, approval, mcp)")
	fs.StringVar(&a.Filter.Target, "target", "", "only calls to this target (route, service, provider/model, server/tool)")
	fs.StringVar(&a.Filter.Definition, "definition", "", "only calls of this definition")
	fs.StringVar(&a.Filter.Step, "step", "", "only calls of this step")
}

// client returns the API client, or with --direct a client whose requests
// are served in process by the analytics handlers over ClickHouse.
func (a *analyticsFlags) client() (c *client.Client, closeFn func(), err error) {
	if a.Output != "table" && a.Output != "csv" && a.Output != "json" {
		return nil, nil, fmt.Errorf("--output %q: want table, csv or json", a.Output)
	}
	if !a.Direct {
		api := a.API
		api.Output = "table" // validated above; apiFlags knows table and json only
		c, err := api.client()
		return c, func() {}, err
	}
	if a.Tenant == "" {
		return nil, nil, errors.New("--direct needs --tenant")
	}
	if err := a.ClickHouse.validate(); err != nil {
		return nil, nil, err
	}
	conn, err := a.ClickHouse.open()
	if err != nil {
		return nil, nil, err
	}
	group := analyticsapi.Routes(query.New(conn), analyticsapi.Options{})
	c, err = client.New("http://clickhouse.direct", "", client.WithHTTPClient(&http.Client{
		Transport: inProcess{group: group, principal: auth.Principal{KeyID: "direct", Tenant: a.Tenant, Roles: []string{string(auth.RoleAnalyst)}}},
	}))
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return c, func() { _ = conn.Close() }, nil
}

// inProcess serves API requests with a route group's handlers in this
// process, as the given principal.
type inProcess struct {
	group     api.Group
	principal auth.Principal
}

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	for _, rt := range t.group.Routes {
		if rt.Method == r.Method && rt.Path == r.URL.Path {
			p := t.principal
			ctx := api.WithInfo(r.Context(), &api.RequestInfo{Route: rt.Path, Principal: &p})
			rt.Handler.ServeHTTP(rec, r.WithContext(ctx))
			return rec.Result(), nil
		}
	}
	httperr.Write(rec, r, api.Errorf(http.StatusNotFound, "route_not_found", "no such route"))
	return rec.Result(), nil
}

// newAnalyticsCmd asks the analytics questions of the REST API (or, with
// --direct, of ClickHouse) and prints the answer as a table, CSV or JSON.
func newAnalyticsCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "analytics",
		Short: "Trend analysis of call records (through the API with an analyst key, or --direct from ClickHouse)",
	}
	// sub builds one question; ask returns the whole answer (printed with
	// -o json) and its rows (printed as a table or CSV).
	sub := func(use, short string, extra func(fs *pflag.FlagSet),
		ask func(ctx context.Context, c *client.Client, f client.AnalyticsFilter) (answer, rows any, err error)) *cobra.Command {
		var a analyticsFlags
		cmd := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, closeFn, err := a.client()
				if err != nil {
					return err
				}
				defer closeFn()
				ctx, cancel := withTimeout(cmd.Context())
				defer cancel()
				answer, rows, err := ask(ctx, c, a.Filter)
				if err != nil {
					return err
				}
				if t := tenantOf(answer); a.Tenant != "" && t != a.Tenant {
					return fmt.Errorf("--tenant %s: the API key is of tenant %s (through the API the tenant is the key's; operators use --direct)", a.Tenant, t)
				}
				if a.Output == "json" {
					return printJSON(cmd.OutOrStdout(), answer)
				}
				return render(cmd.OutOrStdout(), a.Output, rows, valueKind(answer))
			},
		}
		a.bind(cmd.Flags())
		if extra != nil {
			extra(cmd.Flags())
		}
		return cmd
	}
	var interval, groupBy, by, metric, compareBy, cacheBy string
	var limit int
	var since string
	dims := strings.Join(dimensionNames()[1:], ", ")
	root.AddCommand(
		sub("trend", "Volume, errors, latency percentiles, tokens and cost per interval",
			func(fs *pflag.FlagSet) {
				fs.StringVar(&interval, "interval", "hour", "minute, hour or day")
				fs.StringVar(&groupBy, "group-by", "", dims+" (default: none)")
			},
			func(ctx context.Context, c *client.Client, f client.AnalyticsFilter) (any, any, error) {
				res, err := c.AnalyticsTrend(ctx, f, interval, groupBy)
				return res, res.Points, err
			}),
		sub("top", "Top-N groups by calls, errors, error rate, cost, tokens or p95 latency",
			func(fs *pflag.FlagSet) {
				fs.StringVar(&by, "by", "target", dims)
				fs.StringVar(&metric, "metric", "calls", "calls, errors, error_rate, cost, tokens or latency_p95")
				fs.IntVar(&limit, "limit", 10, "number of groups")
			},
			func(ctx context.Context, c *client.Client, f client.AnalyticsFilter) (any, any, error) {
				res, err := c.AnalyticsTop(ctx, f, by, metric, limit)
				return res, res.Items, err
			}),
		sub("slowest-steps", "Steps of a definition (--definition) by p95 latency",
			func(fs *pflag.FlagSet) { fs.IntVar(&limit, "limit", 10, "number of steps") },
			func(ctx context.Context, c *client.Client, f client.AnalyticsFilter) (any, any, error) {
				res, err := c.AnalyticsSlowestSteps(ctx, f, limit)
				return res, res.Steps, err
			}),
		sub("approvals", "Approval turnaround (waiting to decided) by approver role", nil,
			func(ctx context.Context, c *client.Client, f client.AnalyticsFilter) (any, any, error) {
				res, err := c.AnalyticsApprovals(ctx, f)
				return res, res.Roles, err
			}),
		sub("compare", "Figures of [from, to) against the period of the same length before",
			func(fs *pflag.FlagSet) {
				fs.StringVar(&compareBy, "by", "", dims+" (default: the whole tenant)")
			},
			func(ctx context.Context, c *client.Client, f client.AnalyticsFilter) (any, any, error) {
				res, err := c.AnalyticsCompare(ctx, f, compareBy)
				return res, res.Groups, err
			}),
		sub("tokens", "Tokens spent by the tenant since a time (--since)",
			func(fs *pflag.FlagSet) {
				fs.StringVar(&since, "since", "", "RFC 3339 time or a duration before now (default: today 00:00 UTC)")
			},
			func(ctx context.Context, c *client.Client, f client.AnalyticsFilter) (any, any, error) {
				if f != (client.AnalyticsFilter{}) {
					return nil, nil, errors.New("tokens takes --since only")
				}
				res, err := c.AnalyticsTokens(ctx, since)
				return res, []client.AnalyticsTokens{res}, err
			}),
		sub("cache", "The model response cache: lookups, hits, hit rate and the cost hits saved",
			func(fs *pflag.FlagSet) {
				fs.StringVar(&cacheBy, "by", "", "model: per provider/model (default: totals only)")
			},
			func(ctx context.Context, c *client.Client, f client.AnalyticsFilter) (any, any, error) {
				res, err := c.AnalyticsCache(ctx, f, cacheBy)
				rows := res.Groups
				if cacheBy == "" {
					rows = []report.CacheStats{res.Total}
				}
				return res, rows, err
			}),
		newBenchAnalyticsCmd(),
	)
	return root
}

// tenantOf returns the tenant an answer is for.
func tenantOf(answer any) string {
	b, _ := json.Marshal(answer)
	var v struct {
		Tenant string `json:"tenant"`
	}
	_ = json.Unmarshal(b, &v)
	return v.Tenant
}

func dimensionNames() []string {
	var out []string
	for _, d := range query.Dimensions() {
		out = append(out, string(d))
	}
	return out
}

// render prints a slice of result structs as JSON, CSV or an aligned
// table; CSV and table columns are the JSON field names, nested structs
// flattened with a prefix. JSON and CSV keep every number's full
// precision; the table writes numbers for people (humanCell), and value,
// the ranking figure of a top-N, as the kind of figure valueAs names.
func render(w io.Writer, format string, res any, valueAs string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	// Go through JSON to get the field names and flattened values.
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	var header []string
	flat := make([]map[string]string, len(rows))
	for i, r := range rows {
		flat[i] = map[string]string{}
		flatten("", r, flat[i], &header)
	}
	if format == "csv" {
		cw := csv.NewWriter(w)
		_ = cw.Write(header)
		for _, r := range flat {
			rec := make([]string, len(header))
			for j, h := range header {
				rec[j] = r[h]
			}
			_ = cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	}
	cells := make([][]string, 0, len(flat)+1)
	names := make([]string, len(header))
	for j, h := range header {
		names[j] = strings.ToUpper(tableColumn(h))
	}
	cells = append(cells, names)
	for _, r := range flat {
		vals := make([]string, len(header))
		for j, h := range header {
			vals[j] = humanCell(h, r[h], valueAs)
		}
		cells = append(cells, vals)
	}
	return writeTable(w, cells, func(j int) bool { return !textColumns[header[j][strings.LastIndexByte(header[j], '.')+1:]] })
}

// writeTable writes aligned columns two spaces apart: figures (right(j))
// to the right, names and times to the left.
func writeTable(w io.Writer, rows [][]string, right func(col int) bool) error {
	if len(rows) == 0 {
		return nil
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for j, c := range r {
			width[j] = max(width[j], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		line := make([]string, len(r))
		for j, c := range r {
			pad := strings.Repeat(" ", width[j]-utf8.RuneCountInString(c))
			if right(j) {
				line[j] = pad + c
			} else {
				line[j] = c + pad
			}
		}
		b.WriteString(strings.TrimRight(strings.Join(line, "  "), " "))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// valueKind names what the value column of an answer holds: a top-N's
// ranking metric.
func valueKind(answer any) string {
	b, _ := json.Marshal(answer)
	var v struct {
		Metric string `json:"metric"`
	}
	_ = json.Unmarshal(b, &v)
	switch v.Metric {
	case "error_rate":
		return "rate"
	case "latency_p95":
		return "ms"
	case "cost":
		return "usd"
	}
	return "count"
}

// tableColumn is a column's name in a table: units move from the name to
// the values ("latency_p95_ms" is shown as "latency_p95" with "123 ms").
func tableColumn(name string) string {
	for _, unit := range []string{"_ms", "_usd"} {
		if s, ok := strings.CutSuffix(name, unit); ok {
			return s
		}
	}
	return name
}

// humanCell writes one table cell for people by its column: rates and
// relative changes as percentages, latencies in ms or s with sensible
// precision, costs in dollars with significant digits, counts with
// thousands separated. Anything that is not a number is left as it is.
func humanCell(column, cell, valueAs string) string {
	name := column[strings.LastIndexByte(column, '.')+1:]
	if textColumns[name] {
		return cell // a group named "404" stays "404"
	}
	x, err := strconv.ParseFloat(cell, 64)
	switch {
	case strings.HasSuffix(name, "_change"):
		if cell == "" {
			return "new" // nothing in the previous period
		}
		if err == nil {
			return humanChange(x)
		}
	case err != nil:
		return cell
	case name == "value" && valueAs != "":
		name = map[string]string{"rate": "error_rate", "ms": "value_ms", "usd": "cost_usd", "count": "value"}[valueAs]
	}
	switch {
	case name == "error_rate" || strings.HasSuffix(name, "_rate"):
		return humanPercent(x)
	case strings.HasSuffix(name, "_ms"):
		return humanMS(x)
	case strings.HasSuffix(name, "_usd"):
		return humanUSD(x)
	}
	return humanNumber(x)
}

// textColumns hold names and times, never figures.
var textColumns = map[string]bool{"time": true, "since": true, "tenant": true, "group": true, "role": true,
	"kind": true, "target": true, "definition": true, "step": true, "by": true, "metric": true}

// humanPercent writes a rate in [0, 1]: 0.052668 is "5.27 %".
func humanPercent(r float64) string {
	p := r * 100
	switch a := math.Abs(p); {
	case p == 0:
		return "0 %"
	case a < 0.01:
		return "<0.01 %"
	case a < 10:
		return strconv.FormatFloat(p, 'f', 2, 64) + " %"
	case a < 100:
		return strconv.FormatFloat(p, 'f', 1, 64) + " %"
	}
	return strconv.FormatFloat(p, 'f', 0, 64) + " %"
}

// humanChange writes a relative change: +12.3 %, -4.0 %.
func humanChange(x float64) string {
	p := x * 100
	digits := 1
	if math.Abs(p) >= 10 {
		digits = 0
	}
	s := humanThousands(strconv.FormatFloat(math.Abs(p), 'f', digits, 64))
	switch {
	case p > 0:
		return "+" + s + " %"
	case p < 0:
		return "-" + s + " %"
	}
	return "0 %"
}

// humanMS writes milliseconds: "0.42 ms", "4.2 ms", "123 ms", "1.23 s",
// "12.3 s", "4m 12s".
func humanMS(ms float64) string {
	switch a := math.Abs(ms); {
	case a == 0:
		return "0 ms"
	case a < 1:
		return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
	case a < 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	case a < 1000:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	case a < 10_000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + " s"
	case a < 60_000:
		return strconv.FormatFloat(ms/1000, 'f', 1, 64) + " s"
	}
	d := time.Duration(ms * float64(time.Millisecond)).Round(time.Second)
	if d < time.Hour {
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

// humanUSD writes dollars: "$1,234.57", "$0.50", "$0.0527", "$0.0000143"
// (three significant digits below a dollar, at least two decimals).
func humanUSD(v float64) string {
	if v == 0 {
		return "$0"
	}
	sign, a := "", math.Abs(v)
	if v < 0 {
		sign = "-"
	}
	if a >= 1 {
		return sign + "$" + humanThousands(strconv.FormatFloat(a, 'f', 2, 64))
	}
	digits := min(12, max(2, 2-int(math.Floor(math.Log10(a)))))
	s := strconv.FormatFloat(a, 'f', digits, 64)
	for strings.HasSuffix(s, "0") && len(s) > len("0.00") {
		s = strings.TrimSuffix(s, "0")
	}
	return sign + "$" + s
}

// humanNumber writes a count with thousands separated, or another number
// with three significant digits.
func humanNumber(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return humanThousands(strconv.FormatFloat(x, 'f', 0, 64))
	}
	return humanThousands(strconv.FormatFloat(x, 'f', max(0, 2-int(math.Floor(math.Log10(math.Abs(x))))), 64))
}

// humanThousands separates the thousands of a decimal number's integer part.
func humanThousands(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}

// flatten turns a decoded JSON object into dotted column names; columns
// come identifying ones first, then by name (JSON objects carry no order).
func flatten(prefix string, v map[string]any, out map[string]string, header *[]string) {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		name := prefix + k
		switch x := v[k].(type) {
		case map[string]any:
			flatten(name+".", x, out, header)
			continue
		case nil:
			out[name] = ""
		case float64:
			out[name] = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			out[name] = fmt.Sprint(x)
		}
		if !slices.Contains(*header, name) {
			*header = append(*header, name)
		}
	}
}

// rank orders columns: identifying columns first.
func rank(k string) int {
	switch k {
	case "time":
		return -20
	case "tenant", "since", "group", "role":
		return -10
	case "value", "calls", "decisions":
		return -5
	case "current":
		return 5
	case "previous":
		return 6
	}
	return 0
}
