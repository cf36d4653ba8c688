package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/analytics/schema"
	"github.com/gateflow/gateflow/analytics/sink"
)

// sinkConfig configures `gateflow sink`: Kafka -> ClickHouse.
type sinkConfig struct {
	Kafka      kafkaConfig
	ClickHouse clickhouseConfig
	// Zero values of the fields below mean their defaults, so `gateflow
	// dev` may fill only Kafka and ClickHouse.
	GroupID       string
	BatchRows     int
	BatchInterval time.Duration
	TTLDays       int
	// MetricsListen serves /healthz, /readyz and /metrics; empty disables.
	MetricsListen string
}

func (c *sinkConfig) bind(fs *pflag.FlagSet) {
	c.Kafka.bind(fs)
	c.ClickHouse.bind(fs)
	fs.StringVar(&c.GroupID, "sink-group", sink.DefaultGroupID, "Kafka consumer group shared by the sinks")
	fs.IntVar(&c.BatchRows, "batch-rows", sink.DefaultBatchRows, "rows per ClickHouse insert (upper bound)")
	fs.DurationVar(&c.BatchInterval, "batch-interval", sink.DefaultBatchInterval, "longest wait before inserting a partial batch")
	fs.IntVar(&c.TTLDays, "raw-ttl-days", schema.DefaultTTLDays, "days raw call records are kept (rollups are kept); negative: forever, 0: the default")
	fs.StringVar(&c.MetricsListen, "metrics-listen", "127.0.0.1:9464", "address of /healthz, /readyz and /metrics (empty: disabled)")
}

func (c sinkConfig) validate() error {
	errs := []error{c.Kafka.validate(), c.ClickHouse.validate()}
	if c.GroupID == "" {
		errs = append(errs, errors.New("--sink-group: must not be empty"))
	}
	if c.BatchRows < 1 || c.BatchRows > 1_000_000 {
		errs = append(errs, fmt.Errorf("--batch-rows %d: want 1..1000000", c.BatchRows))
	}
	if c.BatchInterval < 10*time.Millisecond || c.BatchInterval > time.Minute {
		errs = append(errs, fmt.Errorf("--batch-interval %s: want 10ms..1m", c.BatchInterval))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen %q: want host:port or empty", c.MetricsListen))
		}
	}
	return errors.Join(errs...)
}

func newSinkCmd() *cobra.Command {
	var cfg sinkConfig
	var logCfg logConfig
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Move call records from Kafka into ClickHouse (a consumer group member)",
		Long: `Consume call records from Kafka and insert them into ClickHouse in batches,
committing offsets only after ClickHouse accepted them. Several sinks share
the partitions. Schema migrations are applied at start. Undecodable records
go to the dead-letter topic.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			log, err := logCfg.logger()
			if err != nil {
				return err
			}
			return runSink(cmd.Context(), cfg, log)
		},
	}
	cfg.bind(cmd.Flags())
	logCfg.bind(cmd.Flags())
	return cmd
}

// runSink runs one sink until ctx is cancelled. The batch being collected
// at that moment is not committed; it is redelivered to the next sink.
func runSink(ctx context.Context, cfg sinkConfig, log *slog.Logger) error {
	conn, err := cfg.ClickHouse.open()
	if err != nil {
		return err
	}
	defer conn.Close()
	dialer, err := cfg.Kafka.dialer()
	if err != nil {
		return err
	}
	transport, err := cfg.Kafka.transport()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s, err := sink.New(sink.Config{
		Dialer:        dialer,
		Transport:     transport,
		Brokers:       cfg.Kafka.Brokers,
		Topic:         cfg.Kafka.Topic,
		DLQTopic:      cfg.Kafka.DLQTopic,
		GroupID:       cfg.GroupID,
		BatchRows:     cfg.BatchRows,
		BatchInterval: cfg.BatchInterval,
		TTLDays:       cfg.TTLDays, // 0: default (90), negative: forever
		Registerer:    reg,
	}, conn, log.With("component", "sink"))
	if err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		stop, err := serveSinkHTTP(cfg.MetricsListen, reg, dialer, cfg.Kafka.Brokers, conn, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return s.Run(ctx)
}

// serveSinkHTTP serves the sink's probes and metrics on a small listener of
// its own (no framework: three handlers).
func serveSinkHTTP(addr string, reg *prometheus.Registry, dialer *kafka.Dialer, brokers []string,
	conn driver.Conn, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		checks := sink.Check(ctx, dialer, brokers, conn)
		status := http.StatusOK
		var body strings.Builder
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range checks {
				if !yield(k) {
					return
				}
			}
		}) {
			if err := checks[name]; err != nil {
				status = http.StatusServiceUnavailable
				fmt.Fprintf(&body, "%s: unreachable: %v\n", name, err)
				continue
			}
			fmt.Fprintf(&body, "%s: ok\n", name)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body.String())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("sink metrics listener", "err", err)
		}
	}()
	log.Info("sink: probes and metrics", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// analyticsFlags are the flags shared by the analytics subcommands.
type analyticsFlags struct {
	ClickHouse clickhouseConfig
	Tenant     string
	From, To   string
	Kind       string
	Target     string
	Definition string
	Step       string
	Format     string
}

func (a *analyticsFlags) bind(fs *pflag.FlagSet) {
	a.ClickHouse.bind(fs)
	fs.StringVar(&a.Tenant, "tenant", "", "tenant (required)")
	fs.StringVar(&a.From, "from", "24h", "start: RFC 3339 time, or a duration before now (e.g. 24h)")
	fs.StringVar(&a.To, "to", "0s", "end (exclusive): RFC 3339 time, or a duration before now")
	fs.StringVar(&a.Kind, "kind", "", "only calls of this kind (ingress, http, model, approval, mcp)")
	fs.StringVar(&a.Target, "target", "", "only calls to this target (route, service or model)")
	fs.StringVar(&a.Definition, "definition", "", "only calls of this definition")
	fs.StringVar(&a.Step, "step", "", "only calls of this step")
	fs.StringVar(&a.Format, "format", "table", "output: table, csv or json")
}

func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time or a duration", s)
	}
	return t, nil
}

func (a analyticsFlags) filter() (query.Filter, error) {
	now := time.Now().UTC()
	from, err := parseWhen(a.From, now)
	if err != nil {
		return query.Filter{}, fmt.Errorf("--from %w", err)
	}
	to, err := parseWhen(a.To, now)
	if err != nil {
		return query.Filter{}, fmt.Errorf("--to %w", err)
	}
	if a.Format != "table" && a.Format != "csv" && a.Format != "json" {
		return query.Filter{}, fmt.Errorf("--format %q: want table, csv or json", a.Format)
	}
	return query.Filter{Tenant: a.Tenant, From: from, To: to, Kind: a.Kind, Target: a.Target,
		Definition: a.Definition, StepID: a.Step}, nil
}

// newAnalyticsCmd queries ClickHouse directly through analytics/query (the
// REST endpoints come with the ingress).
func newAnalyticsCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "analytics",
		Short: "Trend analysis of call records (reads ClickHouse)",
	}
	type run func(ctx context.Context, q *query.Querier, f query.Filter) (any, error)
	sub := func(use, short string, extra func(fs *pflag.FlagSet), do run) *cobra.Command {
		var a analyticsFlags
		cmd := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				f, err := a.filter()
				if err != nil {
					return err
				}
				if err := a.ClickHouse.validate(); err != nil {
					return err
				}
				conn, err := a.ClickHouse.open()
				if err != nil {
					return err
				}
				defer conn.Close()
				res, err := do(cmd.Context(), query.New(conn), f)
				if err != nil {
					return err
				}
				return render(cmd.OutOrStdout(), a.Format, res)
			},
		}
		a.bind(cmd.Flags())
		if extra != nil {
			extra(cmd.Flags())
		}
		return cmd
	}
	var interval, groupBy, by, metric, compareBy string
	var limit int
	var since string
	root.AddCommand(
		sub("trend", "Volume, errors, latency percentiles, tokens and cost per interval",
			func(fs *pflag.FlagSet) {
				fs.StringVar(&interval, "interval", "hour", "minute, hour or day")
				fs.StringVar(&groupBy, "group-by", "", "kind, target, service, model, definition or step (default: none)")
			},
			func(ctx context.Context, q *query.Querier, f query.Filter) (any, error) {
				return q.Trend(ctx, query.TrendRequest{Filter: f, Interval: query.Interval(interval), GroupBy: query.Dimension(groupBy)})
			}),
		sub("top", "Top-N groups by cost, tokens, errors, error rate, calls or p95 latency",
			func(fs *pflag.FlagSet) {
				fs.StringVar(&by, "by", "target", "kind, target, service, model, definition or step")
				fs.StringVar(&metric, "metric", "cost", "calls, errors, error_rate, cost, tokens or latency_p95")
				fs.IntVar(&limit, "limit", 10, "number of groups")
			},
			func(ctx context.Context, q *query.Querier, f query.Filter) (any, error) {
				return q.Top(ctx, query.TopRequest{Filter: f, By: query.Dimension(by), Metric: query.Metric(metric), Limit: limit})
			}),
		sub("slowest-steps", "Steps of a definition (--definition) by p95 latency",
			func(fs *pflag.FlagSet) { fs.IntVar(&limit, "limit", 10, "number of steps") },
			func(ctx context.Context, q *query.Querier, f query.Filter) (any, error) {
				return q.SlowestSteps(ctx, f, limit)
			}),
		sub("approvals", "Approval turnaround (waiting to decided) by approver role", nil,
			func(ctx context.Context, q *query.Querier, f query.Filter) (any, error) {
				return q.ApprovalTurnaround(ctx, f)
			}),
		sub("compare", "Figures of [from, to) against the period of the same length before",
			func(fs *pflag.FlagSet) {
				fs.StringVar(&compareBy, "by", "", "kind, target, service, model, definition or step (default: none)")
			},
			func(ctx context.Context, q *query.Querier, f query.Filter) (any, error) {
				return q.Compare(ctx, query.CompareRequest{Filter: f, By: query.Dimension(compareBy)})
			}),
		sub("tokens", "Tokens spent by the tenant since a time (--since)",
			func(fs *pflag.FlagSet) {
				fs.StringVar(&since, "since", "24h", "RFC 3339 time, or a duration before now")
			},
			func(ctx context.Context, q *query.Querier, f query.Filter) (any, error) {
				t, err := parseWhen(since, time.Now().UTC())
				if err != nil {
					return nil, fmt.Errorf("--since %w", err)
				}
				n, err := q.TokensSince(ctx, f.Tenant, t)
				return []tokensRow{{Tenant: f.Tenant, Since: t, Tokens: n}}, err
			}),
		newBenchAnalyticsCmd(),
	)
	return root
}

type tokensRow struct {
	Tenant string    `json:"tenant"`
	Since  time.Time `json:"since"`
	Tokens int64     `json:"tokens"`
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
	case "time", "tenant", "since", "group", "role":
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
