package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

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
				return render(cmd.OutOrStdout(), a.Output, rows)
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
// flattened with a prefix.
func render(w io.Writer, format string, res any) error {
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
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(header, "\t")))
	for _, r := range flat {
		vals := make([]string, len(header))
		for j, h := range header {
			vals[j] = r[h]
		}
		fmt.Fprintln(tw, strings.Join(vals, "\t"))
	}
	return tw.Flush()
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
