package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/gateflow/gateflow/analytics/callgen"
	"github.com/gateflow/gateflow/analytics/producer"
	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/schema"
	"github.com/gateflow/gateflow/analytics/sink"
)

// benchAnalyticsConfig drives `gateflow analytics bench` (hidden): figures
// for docs/BENCHMARKS.md, measured in one run against one ClickHouse.
type benchAnalyticsConfig struct {
	ClickHouse   clickhouseConfig
	Database     string
	Records      int
	QueryRecords int
	QueryRuns    int
	Timeout      time.Duration
	// Reuse times the queries on the records a previous run loaded.
	Reuse bool
}

func newBenchAnalyticsCmd() *cobra.Command {
	var cfg benchAnalyticsConfig
	cmd := &cobra.Command{
		Use:    "bench",
		Short:  "Measure the call-record pipeline against a bare insert, and trend queries raw vs rollup",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.ClickHouse.validate(); err != nil {
				return err
			}
			if cfg.Records < 1000 || cfg.QueryRecords < 0 || cfg.QueryRuns < 1 {
				return errors.New("--records >= 1000, --query-records >= 0, --query-runs >= 1")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cfg.Timeout)
			defer cancel()
			return runBenchAnalytics(ctx, cfg, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	cfg.ClickHouse.bind(fs)
	fs.StringVar(&cfg.Database, "database", "gateflow_bench", "scratch database (dropped and created)")
	fs.IntVar(&cfg.Records, "records", 1_000_000, "records for the pipeline vs raw insert comparison")
	fs.IntVar(&cfg.QueryRecords, "query-records", 10_000_000, "records loaded for the query latency figures (0: skip)")
	fs.IntVar(&cfg.QueryRuns, "query-runs", 5, "runs of each query (the median is reported)")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Minute, "bound of the whole run")
	fs.BoolVar(&cfg.Reuse, "reuse", false, "only time the queries, on the records a previous run left in --database")
	return cmd
}

func runBenchAnalytics(ctx context.Context, cfg benchAnalyticsConfig, out io.Writer) error {
	if cfg.Reuse {
		return benchReuse(ctx, cfg, out)
	}
	base, err := cfg.ClickHouse.open()
	if err != nil {
		return err
	}
	defer base.Close()
	if err := base.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(cfg.Database)+" SYNC"); err != nil {
		return fmt.Errorf("drop %s: %w", cfg.Database, err)
	}
	if err := base.Exec(ctx, "CREATE DATABASE "+quoteIdent(cfg.Database)); err != nil {
		return fmt.Errorf("create %s: %w", cfg.Database, err)
	}
	opts, err := clickhouse.ParseDSN(cfg.ClickHouse.DSN)
	if err != nil {
		return err
	}
	opts.Auth.Database = cfg.Database
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
		return err
	}
	fmt.Fprintf(out, "ClickHouse %s, database %s, 3 materialized views on the raw table\n\n", cfg.ClickHouse.DSN, cfg.Database)

	// 1. Bare clickhouse-go batch insert of the rows, 50k per batch.
	start := time.Now().UTC().Add(-6 * time.Hour).Truncate(time.Hour)
	recs := callgen.New(1, start, 6*time.Hour).Generate(cfg.Records)
	rows := make([]sink.Row, len(recs))
	for i, r := range recs {
		rows[i] = sink.Row{Record: r, Topic: "bench", Partition: int32(i % 6), Offset: int64(i / 6)}
	}
	t0 := time.Now()
	for chunk := range slices.Chunk(rows, sink.DefaultBatchRows) {
		if err := sink.InsertRows(ctx, conn, chunk); err != nil {
			return err
		}
	}
	raw := time.Since(t0)
	rows = nil
	if err := truncateAll(ctx, conn); err != nil {
		return err
	}

	// 2. The pipeline: producer -> kfake -> sink -> ClickHouse, until every
	// record is queryable.
	pipe, err := benchPipeline(ctx, conn, opts, recs)
	if err != nil {
		return err
	}
	rawRate := float64(len(recs)) / raw.Seconds()
	pipeRate := float64(len(recs)) / pipe.Seconds()
	fmt.Fprintf(out, "%-58s %12s %14s\n", "records -> queryable rows in ClickHouse", "time", "records/s")
	fmt.Fprintf(out, "%-58s %12s %14.0f\n", "bare clickhouse-go batch insert (50k rows/batch)", raw.Round(time.Millisecond), rawRate)
	fmt.Fprintf(out, "%-58s %12s %14.0f\n", "pipeline: Emit -> Kafka (kfake) -> sink -> ClickHouse", pipe.Round(time.Millisecond), pipeRate)
	fmt.Fprintf(out, "pipeline / bare = %.2f\n\n", pipeRate/rawRate)
	recs = nil

	if cfg.QueryRecords == 0 {
		return nil
	}
	return benchQueries(ctx, cfg, conn, out)
}

func quoteIdent(s string) string {
	out := []byte{'`'}
	for i := 0; i < len(s); i++ {
		if s[i] == '`' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(append(out, '`'))
}

func truncateAll(ctx context.Context, conn driver.Conn) error {
	for _, t := range []string{schema.TableCalls, schema.TableCalls1m, schema.TableCalls1h, schema.TableApprovals1m, schema.TableKafkaOffsets} {
		if err := conn.Exec(ctx, "TRUNCATE TABLE "+t); err != nil {
			return fmt.Errorf("truncate %s: %w", t, err)
		}
	}
	return nil
}

// benchPipeline emits recs through an in-process kfake broker (6
// partitions, data on disk) and one sink, and returns the time until
// ClickHouse holds all of them.
func benchPipeline(ctx context.Context, conn driver.Conn, opts *clickhouse.Options, recs []record.Record) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "gateflow-bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir+"/kafka"),
		kfake.SeedTopics(6, "gateflow.calls", "gateflow.calls.dlq"))
	if err != nil {
		return 0, fmt.Errorf("kfake: %w", err)
	}
	defer cluster.Close()
	broker := fmt.Sprintf("127.0.0.1:%d", port)
	log := slog.New(slog.DiscardHandler)

	sinkConn, err := clickhouse.Open(opts)
	if err != nil {
		return 0, err
	}
	defer sinkConn.Close()
	s, err := sink.New(sink.Config{Brokers: []string{broker}, Topic: "gateflow.calls", DLQTopic: "gateflow.calls.dlq",
		GroupID: "bench"}, sinkConn, log)
	if err != nil {
		return 0, err
	}
	sctx, stopSink := context.WithCancel(ctx)
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- s.Run(sctx) }()
	defer func() { stopSink(); <-sinkDone }()

	// A queue as large as the run, so the emitter never overflows to the
	// spool: this measures the Kafka path.
	p, err := producer.New(producer.Config{Brokers: []string{broker}, Topic: "gateflow.calls",
		SpoolDir: dir + "/spool", QueueSize: len(recs)}, log)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	for _, r := range recs {
		p.Emit(r)
	}
	if err := p.Close(ctx); err != nil {
		return 0, err
	}
	want := uint64(len(recs))
	for {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+schema.TableCalls).Scan(&n); err != nil {
			return 0, err
		}
		if n >= want {
			return time.Since(t0), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("pipeline: %d of %d rows after %s: %w", n, want, time.Since(t0), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// benchQueries loads cfg.QueryRecords over 30 days and times the same trend
// question on the raw table and on the rollup.
func benchQueries(ctx context.Context, cfg benchAnalyticsConfig, conn driver.Conn, out io.Writer) error {
	if err := truncateAll(ctx, conn); err != nil {
		return err
	}
	span := benchSpan
	from := time.Now().UTC().Add(-span).Truncate(time.Hour)
	gen := callgen.New(2, from, span)
	t0 := time.Now()
	const chunk = 100_000
	rows := make([]sink.Row, 0, chunk)
	for i := 0; i < cfg.QueryRecords; i += chunk {
		rows = rows[:0]
		for j := 0; j < chunk && i+j < cfg.QueryRecords; j++ {
			rows = append(rows, sink.Row{Record: gen.Next(), Topic: "bench", Partition: 0, Offset: int64(i + j)})
		}
		if err := sink.InsertRows(ctx, conn, rows); err != nil {
			return err
		}
	}
	load := time.Since(t0)
	fmt.Fprintf(out, "loaded %d records over 30 days in %s (%.0f records/s)\n",
		cfg.QueryRecords, load.Round(time.Second), float64(cfg.QueryRecords)/load.Seconds())
	return timeQueries(ctx, cfg, conn, from, out)
}

// benchSpan is the time range of the records loaded for the query figures.
const benchSpan = 30 * 24 * time.Hour

// benchReuse times the queries on a database a previous run loaded (its
// hourly rollup is backfilled from the raw table when it predates it).
func benchReuse(ctx context.Context, cfg benchAnalyticsConfig, out io.Writer) error {
	opts, err := clickhouse.ParseDSN(cfg.ClickHouse.DSN)
	if err != nil {
		return err
	}
	opts.Auth.Database = cfg.Database
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
		return err
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+schema.TableCalls1h).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		t0 := time.Now()
		err := conn.Exec(ctx, `INSERT INTO calls_1h SELECT toStartOfHour(ts) AS hour, tenant, kind, target, definition, step_id,
	count(), countIf(outcome != 'ok'), countIf(outcome = 'timeout'), sum(tokens_in), sum(tokens_out), sum(cost_usd),
	sum(request_bytes), sum(response_bytes), sum(latency_ms), max(latency_ms), quantilesState(0.5, 0.95, 0.99)(latency_ms)
FROM calls GROUP BY hour, tenant, kind, target, definition, step_id`)
		if err != nil {
			return fmt.Errorf("backfill calls_1h: %w", err)
		}
		fmt.Fprintf(out, "backfilled calls_1h from calls in %s\n", time.Since(t0).Round(time.Millisecond))
	}
	var minTS time.Time
	if err := conn.QueryRow(ctx, "SELECT toStartOfHour(min(ts)) FROM calls").Scan(&minTS); err != nil {
		return err
	}
	return timeQueries(ctx, cfg, conn, minTS.UTC(), out)
}

// timeQueries times one trend question (30 days by hour and kind, one
// tenant) on each rollup and on the raw table.
func timeQueries(ctx context.Context, cfg benchAnalyticsConfig, conn driver.Conn, from time.Time, out io.Writer) error {
	to := from.Add(benchSpan)
	var rawRows, rollupRows, hourRows uint64
	if err := conn.QueryRow(ctx, "SELECT (SELECT count() FROM calls), (SELECT count() FROM calls_1m), (SELECT count() FROM calls_1h)").
		Scan(&rawRows, &rollupRows, &hourRows); err != nil {
		return err
	}
	fmt.Fprintf(out, "raw rows %d, calls_1m rows %d, calls_1h rows %d\n\n", rawRows, rollupRows, hourRows)

	q := query.New(conn)
	tenant := callgen.Tenants[0]
	trend := query.TrendRequest{Filter: query.Filter{Tenant: tenant, From: from, To: to}, Interval: query.Hour, GroupBy: query.ByKind}
	rawSQL := `SELECT toStartOfHour(ts) AS t, kind, count(), countIf(outcome != 'ok'), sum(tokens_in), sum(tokens_out),
	sum(cost_usd), quantiles(0.5, 0.95, 0.99)(latency_ms)
FROM calls WHERE tenant = {tenant:String} AND ts >= fromUnixTimestamp({from:Int64}) AND ts < fromUnixTimestamp({to:Int64})
GROUP BY t, kind ORDER BY t, kind`
	params := clickhouse.Parameters{"tenant": tenant, "from": fmt.Sprint(from.Unix()), "to": fmt.Sprint(to.Unix())}
	cases := []struct {
		name string
		run  func() (int, error)
	}{
		{"rollup calls_1h (query.Trend, hour x kind, 30 days)", func() (int, error) {
			pts, err := q.Trend(ctx, trend)
			return len(pts), err
		}},
		{"rollup calls_1m, same question", func() (int, error) {
			// A range not aligned to hours makes query.Trend read calls_1m.
			tr := trend
			tr.To = tr.To.Add(-time.Minute)
			pts, err := q.Trend(ctx, tr)
			return len(pts), err
		}},
		{"raw calls, same question", func() (int, error) { return countRows(ctx, conn, rawSQL, params) }},
		{"raw calls FINAL (exact under duplicates), same question", func() (int, error) {
			return countRows(ctx, conn, strings.Replace(rawSQL, "FROM calls WHERE", "FROM calls FINAL WHERE", 1), params)
		}},
	}
	fmt.Fprintf(out, "%-55s %10s %10s %8s\n", "trend query at "+fmt.Sprint(rawRows)+" records", "median", "min", "rows")
	for _, c := range cases {
		var times []time.Duration
		var n int
		for range cfg.QueryRuns {
			t := time.Now()
			var err error
			n, err = c.run()
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			times = append(times, time.Since(t))
		}
		slices.Sort(times)
		fmt.Fprintf(out, "%-55s %10s %10s %8d\n", c.name, times[len(times)/2].Round(100*time.Microsecond),
			times[0].Round(100*time.Microsecond), n)
	}
	return nil
}

func countRows(ctx context.Context, conn driver.Conn, sql string, params clickhouse.Parameters) (int, error) {
	rows, err := conn.Query(clickhouse.Context(ctx, clickhouse.WithParameters(params)), sql)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}
