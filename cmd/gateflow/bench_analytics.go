package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/gateflow/gateflow/analytics/callgen"
	"github.com/gateflow/gateflow/analytics/producer"
	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/schema"
	"github.com/gateflow/gateflow/analytics/sink"
	"github.com/gateflow/gateflow/deploy/embedded"
)

// benchAnalyticsConfig drives `gateflow analytics bench` (hidden): figures
// for docs/BENCHMARKS.md, measured in one run against one ClickHouse.
type benchAnalyticsConfig struct {
	ClickHouse   clickhouseConfig
	Database     string
	Records      int
	QueryRecords int
	QueryDays    int
	QueryRuns    int
	// Rounds of the bare insert against the pipeline (ABBA order).
	Rounds  int
	Timeout time.Duration
	// Reuse times the queries on the records a previous run loaded.
	Reuse bool
	// SinkProcess runs the sink as a `gateflow sink` child process, as in
	// production; otherwise it runs in this process (with the generator,
	// the producer and the broker, whose heap it then shares).
	SinkProcess bool
	// CPUProfile, when set, receives a CPU profile of the pipeline phase
	// of this process.
	CPUProfile string
}

func newBenchAnalyticsCmd() *cobra.Command {
	var cfg benchAnalyticsConfig
	cmd := &cobra.Command{
		Use:    "bench",
		Short:  "Measure the call-record pipeline against a bare insert, and analyst questions on rollups vs the raw table",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.ClickHouse.validate(); err != nil {
				return err
			}
			if cfg.Records < 1000 || cfg.QueryRecords < 0 || cfg.QueryRuns < 1 || cfg.QueryDays < 2 || cfg.QueryDays > 90 || cfg.Rounds < 1 {
				return errors.New("--records >= 1000, --query-records >= 0, --query-runs >= 1, --query-days 2..90, --rounds >= 1")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cfg.Timeout)
			defer cancel()
			return runBenchAnalytics(ctx, cfg, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	cfg.ClickHouse.bind(fs)
	fs.StringVar(&cfg.Database, "database", "gateflow_bench", "scratch database (dropped and created)")
	fs.IntVar(&cfg.Records, "records", 1_000_000, "records for the pipeline vs bare insert comparison")
	fs.IntVar(&cfg.QueryRecords, "query-records", 10_000_000, "records loaded for the query figures (0: skip)")
	fs.IntVar(&cfg.QueryDays, "query-days", 7, "days the query records span (whole UTC days before today)")
	fs.IntVar(&cfg.QueryRuns, "query-runs", 5, "runs of each query (the median is reported)")
	fs.IntVar(&cfg.Rounds, "rounds", 2, "rounds of bare insert vs pipeline, in ABBA order (the medians are compared)")
	fs.DurationVar(&cfg.Timeout, "timeout", 45*time.Minute, "bound of the whole run")
	fs.BoolVar(&cfg.Reuse, "reuse", false, "only time the queries, on the records a previous run left in --database")
	fs.BoolVar(&cfg.SinkProcess, "sink-process", true, "run the sink as a child `gateflow sink` process (false: in this process)")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the pipeline phase (this process) to this file")
	return cmd
}

func runBenchAnalytics(ctx context.Context, cfg benchAnalyticsConfig, out io.Writer) error {
	opts, err := clickhouse.ParseDSN(cfg.ClickHouse.DSN)
	if err != nil {
		return err
	}
	opts.Auth.Database = cfg.Database
	if cfg.Reuse {
		conn, err := clickhouse.Open(opts)
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := schema.Migrate(ctx, conn, schema.Options{TTLDays: -1}); err != nil {
			return err
		}
		var minTS, maxTS time.Time
		if err := conn.QueryRow(ctx, "SELECT min(ts), max(ts) FROM calls").Scan(&minTS, &maxTS); err != nil {
			return err
		}
		return benchQuestions(ctx, cfg, conn, minTS.UTC().Truncate(24*time.Hour), maxTS.UTC().Truncate(24*time.Hour).Add(24*time.Hour), out)
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
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	// No TTL: the query records may be older than a short TTL.
	if err := schema.Migrate(ctx, conn, schema.Options{TTLDays: -1}); err != nil {
		return err
	}
	fmt.Fprintf(out, "ClickHouse %s, database %s; rollups calls_1m/1h/1d and approvals_1m/1h/1d (cascaded views) and the offset view attached\n\n",
		cfg.ClickHouse.DSN, cfg.Database)

	// Bare clickhouse-go batch inserts of the rows (50k per batch) against
	// the pipeline, alternating ABBA over the rounds so that load from
	// elsewhere on the machine hits both alike. The records are in time
	// order, as they arrive in production.
	start := time.Now().UTC().Add(-6 * time.Hour).Truncate(time.Hour)
	recs := timeOrdered(cfg.Records, start, 6*time.Hour, 1)
	where := "sink in its own process"
	if !cfg.SinkProcess {
		where = "sink in the generating process"
	}
	fmt.Fprintf(out, "%d records -> queryable rows in ClickHouse (%s)\n", cfg.Records, where)
	var raws, pipes []time.Duration
	for i := range 2 * cfg.Rounds {
		bare := (i%4 == 0 || i%4 == 3)
		var took time.Duration
		if bare {
			t0 := time.Now()
			if err := insertBatched(ctx, conn, recs); err != nil {
				return err
			}
			took = time.Since(t0)
			raws = append(raws, took)
			fmt.Fprintf(out, "  %-56s %10s %10.0f records/s\n", "bare clickhouse-go batch insert (50k rows/batch)", took.Round(time.Millisecond), float64(cfg.Records)/took.Seconds())
		} else {
			var cpu time.Duration
			var err error
			took, cpu, err = benchPipeline(ctx, cfg, conn, opts, recs)
			if err != nil {
				return err
			}
			pipes = append(pipes, took)
			sinkCPU := ""
			if cfg.SinkProcess {
				sinkCPU = fmt.Sprintf("  (sink process CPU %.1f µs/record)", float64(cpu.Microseconds())/float64(cfg.Records))
			}
			fmt.Fprintf(out, "  %-56s %10s %10.0f records/s%s\n", "pipeline: Emit -> Kafka (kfake) -> sink -> ClickHouse",
				took.Round(time.Millisecond), float64(cfg.Records)/took.Seconds(), sinkCPU)
		}
		if err := truncateAll(ctx, conn); err != nil {
			return err
		}
	}
	rawMed, pipeMed := medianOf(raws), medianOf(pipes)
	fmt.Fprintf(out, "median: bare %.0f records/s, pipeline %.0f records/s, pipeline / bare = %.2f\n\n",
		float64(cfg.Records)/rawMed.Seconds(), float64(cfg.Records)/pipeMed.Seconds(), rawMed.Seconds()/pipeMed.Seconds())

	if cfg.QueryRecords == 0 {
		return nil
	}
	if err := truncateAll(ctx, conn); err != nil {
		return err
	}
	to := time.Now().UTC().Truncate(24 * time.Hour)
	from := to.Add(-time.Duration(cfg.QueryDays) * 24 * time.Hour)
	if err := loadQueryRecords(ctx, conn, cfg.QueryRecords, from, to, out); err != nil {
		return err
	}
	return benchQuestions(ctx, cfg, conn, from, to, out)
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
	for _, t := range schema.Tables {
		if err := conn.Exec(ctx, "TRUNCATE TABLE "+t); err != nil {
			return fmt.Errorf("truncate %s: %w", t, err)
		}
	}
	return nil
}

// benchPipeline emits recs through an in-process broker (deploy/embedded's
// kfake, 6 partitions, data on disk) and one sink, and returns the time until
// ClickHouse holds all of them.
//
// With cfg.SinkProcess it also returns the CPU time the sink process used.
// The pipeline benchmark's topic and its partitions.
const (
	benchTopic      = "gateflow.calls"
	benchPartitions = 6
)

func benchPipeline(ctx context.Context, cfg benchAnalyticsConfig, conn driver.Conn, opts *clickhouse.Options,
	recs iter.Seq[[]record.Record]) (wall, sinkCPU time.Duration, err error) {
	dir, err := os.MkdirTemp("", "gateflow-bench-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	k, err := embedded.StartKafka(embedded.KafkaOptions{DataDir: dir + "/kafka",
		Topics: []embedded.Topic{{Name: benchTopic, Partitions: benchPartitions}, {Name: benchTopic + ".dlq", Partitions: benchPartitions}}})
	if err != nil {
		return 0, 0, err
	}
	defer k.Close()
	broker := k.Addr()
	log := slog.New(slog.DiscardHandler)

	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, 0, err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.SinkProcess {
		stop, err := startSinkProcess(cfg, broker)
		if err != nil {
			return 0, 0, err
		}
		defer func() { sinkCPU = stop() }()
	} else {
		sinkConn, err := clickhouse.Open(opts)
		if err != nil {
			return 0, 0, err
		}
		defer sinkConn.Close()
		s, err := sink.New(sink.Config{Brokers: []string{broker}, Topic: benchTopic, DLQTopic: benchTopic + ".dlq",
			GroupID: "bench", TTLDays: -1, ClickHouse: opts}, sinkConn, log)
		if err != nil {
			return 0, 0, err
		}
		sctx, stopSink := context.WithCancel(ctx)
		sinkDone := make(chan error, 1)
		go func() { sinkDone <- s.Run(sctx) }()
		defer func() { stopSink(); <-sinkDone }()
	}

	// A queue as large as the run, so the emitter never overflows to the
	// spool: this measures the Kafka path.
	p, err := producer.New(producer.Config{Brokers: []string{broker}, Topic: benchTopic,
		SpoolDir: dir + "/spool", QueueSize: cfg.Records}, log)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	for slice := range recs {
		for _, r := range slice {
			p.Emit(r)
		}
	}
	if err := p.Close(ctx); err != nil {
		return 0, 0, err
	}
	want := uint64(cfg.Records)
	var last uint64
	lastChange := time.Now()
	for {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+schema.TableCalls).Scan(&n); err != nil {
			return 0, 0, err
		}
		if n >= want {
			return time.Since(t0), 0, nil
		}
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > time.Minute {
			// Stalled (seen once, not understood): say where the rows
			// stopped, once a minute, so that the next stall is diagnosed.
			lastChange = time.Now()
			stallReport(ctx, conn, broker, n, want)
		}
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("pipeline: %d of %d rows after %s: %w", n, want, time.Since(t0), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// timeOrdered yields n generated records over [start, start+span) in time
// order, in 100 consecutive slices (each generated and sorted on its own,
// so that the whole run is never in memory).
func timeOrdered(n int, start time.Time, span time.Duration, seed uint64) iter.Seq[[]record.Record] {
	const slicesN = 100
	return func(yield func([]record.Record) bool) {
		for i := range slicesN {
			per := n / slicesN
			if i == slicesN-1 {
				per = n - per*(slicesN-1)
			}
			gen := callgen.New(seed*1000+uint64(i), start.Add(span*time.Duration(i)/slicesN), span/slicesN)
			recs := gen.Generate(per)
			slices.SortFunc(recs, func(a, b record.Record) int { return cmp.Compare(a.TS, b.TS) })
			if !yield(recs) {
				return
			}
		}
	}
}

// insertBatched inserts the records with bare clickhouse-go batches of
// sink.DefaultBatchRows rows, as the sink does.
func insertBatched(ctx context.Context, conn driver.Conn, recs iter.Seq[[]record.Record]) error {
	rows := make([]sink.Row, 0, sink.DefaultBatchRows)
	var offset int64
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		err := sink.InsertRows(ctx, conn, rows)
		rows = rows[:0]
		return err
	}
	for slice := range recs {
		for _, r := range slice {
			rows = append(rows, sink.Row{Record: r, Topic: "bench", Offset: offset})
			offset++
			if len(rows) == sink.DefaultBatchRows {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// startSinkProcess runs `gateflow sink` (this binary) against the broker
// and the bench database, and returns how to stop it.
func startSinkProcess(cfg benchAnalyticsConfig, broker string) (stop func() (cpu time.Duration), err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.ClickHouse.DSN)
	if err != nil {
		return nil, fmt.Errorf("--clickhouse-dsn: %w", err)
	}
	u.Path = "/" + cfg.Database
	cmd := exec.Command(exe, "sink", "--kafka-brokers", broker, "--clickhouse-dsn", u.String(),
		"--sink-group", "bench", "--metrics-listen", "", "--raw-ttl-days", "-1", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the sink process: %w", err)
	}
	return func() time.Duration {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if cmd.ProcessState == nil {
			return 0
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}, nil
}

// loadQueryRecords inserts n generated records spread over [from, to) in
// time order (100 consecutive slices of the range), as the sink would.
func loadQueryRecords(ctx context.Context, conn driver.Conn, n int, from, to time.Time, out io.Writer) error {
	span := to.Sub(from)
	t0 := time.Now()
	if err := insertBatched(ctx, conn, timeOrdered(n, from, span, 2)); err != nil {
		return err
	}
	load := time.Since(t0)
	fmt.Fprintf(out, "loaded %d records over %s (%s .. %s, %d tenants x %d combinations, daily cycle) in %s: %.0f records/s with the views\n",
		n, span, from.Format(time.DateOnly), to.Format(time.DateOnly), len(callgen.Tenants), callgen.Combinations()/len(callgen.Tenants),
		load.Round(time.Second), float64(n)/load.Seconds())
	// Let background merges settle, as they would between inserts and
	// analysts' questions in production.
	for _, t := range schema.Tables {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+t); err != nil {
			return fmt.Errorf("optimize %s: %w", t, err)
		}
	}
	return nil
}

// question is one analyst question answered by the query package (which
// picks the tables) and, for comparison, straight from the raw table.
type question struct {
	name   string
	req    any // for query.Tables
	run    func(q *query.Querier) (int, error)
	rawSQL string
	params clickhouse.Parameters
}

// rawStatsSQL is the raw-table form of a stats question: what an analyst
// would write without rollups.
func rawStatsSQL(bucket, group, where, orderLimit string) string {
	return `SELECT ` + bucket + ` AS t, ` + group + ` AS g, count(), countIf(outcome != 'ok'), countIf(outcome = 'timeout'),
	sum(tokens_in), sum(tokens_out), sum(cost_usd), sum(latency_ms), max(latency_ms), quantiles(0.5, 0.95, 0.99)(latency_ms) AS q
FROM calls WHERE tenant = {tenant:String} AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')` +
		where + `
GROUP BY t, g ` + orderLimit
}

func rawParams(tenant string, from, to time.Time) clickhouse.Parameters {
	return clickhouse.Parameters{"tenant": tenant, "from": strconv.FormatInt(from.UnixMilli(), 10), "to": strconv.FormatInt(to.UnixMilli(), 10)}
}

// benchQuestions times analyst questions over [from, to) through the query
// package and on the raw table (plain and FINAL), and measures the
// rollups' percentile error.
func benchQuestions(ctx context.Context, cfg benchAnalyticsConfig, conn driver.Conn, from, to time.Time, out io.Writer) error {
	fmt.Fprintln(out, "\nrows per table:")
	for _, t := range schema.Tables {
		var n, bytes uint64
		pctx := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"t": t}))
		if err := conn.QueryRow(pctx, "SELECT (SELECT count() FROM "+t+"), (SELECT sum(bytes_on_disk) FROM system.parts WHERE database = currentDatabase() AND table = {t:String} AND active)").
			Scan(&n, &bytes); err != nil {
			return fmt.Errorf("size of %s: %w", t, err)
		}
		fmt.Fprintf(out, "  %-22s %12d rows %10.1f MiB\n", t, n, float64(bytes)/(1<<20))
	}

	tenant := callgen.Tenants[0]
	days := to.Sub(from)
	lastDay := to.Add(-24 * time.Hour)
	ragFrom, ragTo := from.Add(17*time.Minute+3250*time.Millisecond), to.Add(-42*time.Minute-7500*time.Millisecond)
	mid := from.Add(days / 2)
	f := func(a, b time.Time) query.Filter { return query.Filter{Tenant: tenant, From: a, To: b} }
	trend := func(r query.TrendRequest) func(*query.Querier) (int, error) {
		return func(q *query.Querier) (int, error) { p, err := q.Trend(ctx, r); return len(p), err }
	}
	top := func(r query.TopRequest) func(*query.Querier) (int, error) {
		return func(q *query.Querier) (int, error) { p, err := q.Top(ctx, r); return len(p), err }
	}
	nd := fmt.Sprintf("%d d", int(days.Hours()/24))
	qs := []question{
		{name: "trend " + nd + " by hour x kind", req: query.TrendRequest{Filter: f(from, to), Interval: query.Hour, GroupBy: query.ByKind},
			rawSQL: rawStatsSQL("toStartOfHour(ts)", "kind", "", "ORDER BY t, g"), params: rawParams(tenant, from, to)},
		{name: "trend " + nd + " by day x model", req: query.TrendRequest{Filter: f(from, to), Interval: query.Day, GroupBy: query.ByModel},
			rawSQL: rawStatsSQL("toStartOfDay(ts)", "target", " AND kind = 'model'", "ORDER BY t, g"), params: rawParams(tenant, from, to)},
		{name: "trend last day by minute", req: query.TrendRequest{Filter: f(lastDay, to), Interval: query.Minute},
			rawSQL: rawStatsSQL("toStartOfMinute(ts)", "''", "", "ORDER BY t, g"), params: rawParams(tenant, lastDay, to)},
		{name: "trend " + nd + " by hour, ragged ends", req: query.TrendRequest{Filter: f(ragFrom, ragTo), Interval: query.Hour},
			rawSQL: rawStatsSQL("toStartOfHour(ts)", "''", "", "ORDER BY t, g"), params: rawParams(tenant, ragFrom, ragTo)},
		{name: "top 10 targets by p95, " + nd, req: query.TopRequest{Filter: f(from, to), By: query.ByTarget, Metric: query.ByLatency, Limit: 10},
			rawSQL: rawStatsSQL("toDateTime(0)", "target", "", "ORDER BY q[2] DESC LIMIT 10"), params: rawParams(tenant, from, to)},
		{name: "top 5 models by cost, ragged ends", req: query.TopRequest{Filter: f(ragFrom, ragTo), By: query.ByModel, Metric: query.ByCost, Limit: 5},
			rawSQL: rawStatsSQL("toDateTime(0)", "target", " AND kind = 'model'", "ORDER BY sum(cost_usd) DESC LIMIT 5"), params: rawParams(tenant, ragFrom, ragTo)},
		{name: "compare 2nd half vs 1st by kind", req: query.CompareRequest{Filter: f(mid, to), By: query.ByKind},
			rawSQL: rawStatsSQL("ts >= fromUnixTimestamp64Milli({mid:Int64}, 'UTC')", "kind", "", "ORDER BY g, t"),
			params: func() clickhouse.Parameters {
				p := rawParams(tenant, from, to)
				p["mid"] = strconv.FormatInt(mid.UnixMilli(), 10)
				return p
			}()},
		{name: "approval turnaround by role, " + nd,
			run: func(q *query.Querier) (int, error) {
				a, err := q.ApprovalTurnaround(ctx, f(from, to))
				return len(a), err
			},
			rawSQL: `SELECT arrayJoin(splitByChar(',', labels['roles'])) AS role, count(), countIf(labels['decision'] = 'approve'),
	countIf(labels['decision'] = 'reject'), countIf(labels['decision'] = 'timeout'), avg(latency_ms), max(latency_ms), quantiles(0.5, 0.95, 0.99)(latency_ms)
FROM calls WHERE tenant = {tenant:String} AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
	AND kind = 'approval' GROUP BY role ORDER BY role`, params: rawParams(tenant, from, to)},
		{name: "tokens since the first day (budget)",
			run:    func(q *query.Querier) (int, error) { _, err := q.TokensSince(ctx, tenant, from); return 1, err },
			rawSQL: `SELECT sum(tokens_in + tokens_out) FROM calls WHERE tenant = {tenant:String} AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')`,
			params: rawParams(tenant, from, to)},
	}
	qr := query.New(conn)
	fmt.Fprintf(out, "\nquestions for tenant %s (half the records), median of %d runs:\n", tenant, cfg.QueryRuns)
	fmt.Fprintf(out, "%-40s %-32s %9s %9s %9s %8s %6s\n", "question", "tables read (query package)", "rollups", "raw", "raw FINAL", "raw/rollup", "rows")
	for _, qu := range qs {
		run := qu.run
		tables := "calls_1d (tokens)"
		switch r := qu.req.(type) {
		case query.TrendRequest:
			run = trend(r)
		case query.TopRequest:
			run = top(r)
		case query.CompareRequest:
			run = func(q *query.Querier) (int, error) { c, err := q.Compare(ctx, r); return len(c), err }
		}
		if qu.req != nil {
			t, err := query.Tables(qu.req)
			if err != nil {
				return fmt.Errorf("%s: %w", qu.name, err)
			}
			tables = strings.Join(t, ",")
		} else if strings.HasPrefix(qu.name, "approval") {
			tables = "approvals_1d"
		}
		var n int
		rollup, err := median(cfg.QueryRuns, func() error {
			var err error
			n, err = run(qr)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", qu.name, err)
		}
		rawT, err := median(cfg.QueryRuns, func() error { _, err := countRows(ctx, conn, qu.rawSQL, qu.params); return err })
		if err != nil {
			return fmt.Errorf("%s (raw): %w", qu.name, err)
		}
		finalSQL := strings.Replace(qu.rawSQL, "FROM calls WHERE", "FROM calls FINAL WHERE", 1)
		finalT, err := median(cfg.QueryRuns, func() error { _, err := countRows(ctx, conn, finalSQL, qu.params); return err })
		if err != nil {
			return fmt.Errorf("%s (raw FINAL): %w", qu.name, err)
		}
		fmt.Fprintf(out, "%-40s %-32s %9s %9s %9s %7.1fx %6d\n", qu.name, tables, ms(rollup), ms(rawT), ms(finalT),
			rawT.Seconds()/rollup.Seconds(), n)
	}

	// What the hourly level buys: the first question from calls_1m.
	oneMin := `SELECT toStartOfHour(minute) AS t, kind AS g, sum(calls), sum(errors), sum(timeouts), sum(tokens_in), sum(tokens_out),
	sum(cost_usd), sum(latency_sum), max(latency_max), quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q)
FROM calls_1m WHERE tenant = {tenant:String} AND minute >= toDateTime(intDiv({from:Int64}, 1000), 'UTC') AND minute < toDateTime(intDiv({to:Int64}, 1000), 'UTC')
GROUP BY t, g ORDER BY t, g`
	m1, err := median(cfg.QueryRuns, func() error { _, err := countRows(ctx, conn, oneMin, rawParams(tenant, from, to)); return err })
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-40s %-32s %9s\n", "trend "+nd+" by hour x kind", "calls_1m only (for comparison)", ms(m1))
	return percentileErrors(ctx, conn, tenant, from, to, out)
}

// medianOf returns the median (the mean of the middle two for an even
// count).
func medianOf(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// median runs fn n times and returns the median duration.
func median(n int, fn func() error) (time.Duration, error) {
	var times []time.Duration
	for range n {
		t := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		times = append(times, time.Since(t))
	}
	return medianOf(times), nil
}

// percentileErrors measures the rollups' t-digest percentiles against the
// raw values: for every group, the share of values at or below the
// answered p50/p95/p99 (its rank), and the worst distance of that rank from
// 50/95/99 %.
func percentileErrors(ctx context.Context, conn driver.Conn, tenant string, from, to time.Time, out io.Writer) error {
	fmt.Fprintln(out, "\nrollup percentiles vs the raw values: share of a group's values at or below the answer, minus the level;")
	fmt.Fprintln(out, "worst group of at least 50 values, beyond the one-value step of that group (1/n)")
	cases := []struct {
		name, table, col, group, rawBucket, rawGroup string
	}{
		{"calls_1h, hour x kind", "calls_1h", "hour", "kind", "toStartOfHour(c.ts)", "c.kind"},
		{"calls_1d, day x target", "calls_1d", "day", "target", "toStartOfDay(c.ts)", "c.target"},
		{"calls_1d, whole range x step", "calls_1d", "day", "step_id", "toDateTime(0, 'UTC')", "c.step_id"},
		{"calls_1m, minute x target", "calls_1m", "minute", "target", "toStartOfMinute(c.ts)", "c.target"},
	}
	for _, c := range cases {
		bucket := c.col
		if c.rawBucket == "toDateTime(0, 'UTC')" {
			bucket = "toDateTime(0, 'UTC')"
		}
		sql := `WITH r AS (
	SELECT ` + bucket + ` AS t, ` + c.group + ` AS g, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q) AS q
	FROM ` + c.table + ` WHERE tenant = {tenant:String} AND ` + c.col + ` >= toDateTime(intDiv({from:Int64}, 1000), 'UTC')
		AND ` + c.col + ` < toDateTime(intDiv({to:Int64}, 1000), 'UTC') GROUP BY t, g)
SELECT count(), min(n), max(greatest(abs(r1 - 0.5) - 1 / n, 0)), max(greatest(abs(r2 - 0.95) - 1 / n, 0)),
	max(greatest(abs(r3 - 0.99) - 1 / n, 0)), max(1 / n)
FROM (
	SELECT ` + c.rawBucket + ` AS bt, ` + c.rawGroup + ` AS bg, r.q AS qq, count() AS n,
		countIf(c.latency_ms <= qq[1]) / n AS r1, countIf(c.latency_ms <= qq[2]) / n AS r2, countIf(c.latency_ms <= qq[3]) / n AS r3
	FROM calls AS c INNER JOIN r ON ` + c.rawBucket + ` = r.t AND ` + c.rawGroup + ` = r.g
	WHERE c.tenant = {tenant:String} AND c.ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND c.ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
	GROUP BY bt, bg, qq)
WHERE n >= 50`
		var groups, minN uint64
		var e1, e2, e3, inv float64
		if err := conn.QueryRow(clickhouse.Context(ctx, clickhouse.WithParameters(rawParams(tenant, from, to))), sql).
			Scan(&groups, &minN, &e1, &e2, &e3, &inv); err != nil {
			return fmt.Errorf("percentile errors %s: %w", c.name, err)
		}
		fmt.Fprintf(out, "  %-30s %7d groups (n >= %d): p50 ±%.2f pp, p95 ±%.2f pp, p99 ±%.3f pp (largest step %.1f pp)\n",
			c.name, groups, minN, 100*e1, 100*e2, 100*e3, 100*inv)
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

// stallReport prints, for a pipeline that stopped short, each partition's
// end in Kafka against the highest offset stored in ClickHouse.
func stallReport(ctx context.Context, conn driver.Conn, broker string, n, want uint64) {
	parts := make([]int32, benchPartitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	stored, err := sink.StoredOffsets(ctx, conn, benchTopic, parts)
	fmt.Fprintf(os.Stderr, "pipeline stalled at %d of %d rows for a minute (stored marks: %v, err %v); partition ends:", n, want, stored, err)
	for _, p := range parts {
		c, err := kafka.DialLeader(ctx, "tcp", broker, benchTopic, int(p))
		if err != nil {
			fmt.Fprintf(os.Stderr, " %d: %v", p, err)
			continue
		}
		end, err := c.ReadLastOffset()
		_ = c.Close()
		fmt.Fprintf(os.Stderr, " %d: %d (err %v)", p, end, err)
	}
	fmt.Fprintln(os.Stderr)
}
