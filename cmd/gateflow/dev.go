package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/demo"
	"github.com/gateflow/gateflow/deploy/embedded/temporalserver"
	"github.com/gateflow/gateflow/workflows"
)

// Topics `gateflow dev` creates; they match kafkaConfig's defaults.
const (
	devCallsTopic     = "gateflow.calls"
	devDLQTopic       = "gateflow.calls.dlq"
	devTopicRetention = 7 * 24 * time.Hour
)

// devConfig configures `gateflow dev`.
type devConfig struct {
	DataDir        string
	ClickHouseAddr string
	LibCHDB        string
	TemporalPort   int
	UIPort         int
	KafkaPort      int
	CHPort         int
	CHHTTPPort     int
	IngressPort    int
	PrepareOnly    bool
	// DemoServices starts the demo stand-ins the examples call
	// (deploy/embedded/demo) on DemoPortBase + their offsets.
	DemoServices bool
	DemoPortBase int
	// PayloadKeyFile encrypts what dev stores in Temporal (payloadcodec).
	PayloadKeyFile string
	Log            logConfig
}

func (c *devConfig) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", ".gateflow", "where dev keeps its state (Temporal, Kafka, ClickHouse, logs)")
	fs.StringVar(&c.ClickHouseAddr, "clickhouse-addr", "", "use this ClickHouse (host:port or clickhouse:// DSN) instead of starting one")
	fs.StringVar(&c.LibCHDB, "libchdb", "", "path of libchdb.so to use instead of the cached npm download")
	fs.IntVar(&c.TemporalPort, "temporal-port", 7233, "Temporal frontend gRPC port (history, matching, worker use the next three)")
	fs.IntVar(&c.UIPort, "temporal-ui-port", 8233, "Temporal Web UI port (0: no UI)")
	fs.IntVar(&c.KafkaPort, "kafka-port", 9092, "Kafka broker port")
	fs.IntVar(&c.CHPort, "clickhouse-port", 9000, "ClickHouse native protocol port")
	fs.IntVar(&c.CHHTTPPort, "clickhouse-http-port", 8123, "ClickHouse HTTP port")
	fs.IntVar(&c.IngressPort, "ingress-port", 8080, "ingress (REST API) port")
	fs.BoolVar(&c.PrepareOnly, "prepare-only", false, "fetch and prepare what is slow (ClickHouse library), then exit")
	fs.BoolVar(&c.DemoServices, "demo-services", true, "start the canned demo services the example definitions call (echo, inventory, payments, shipping, notifications, catalog MCP, demo model)")
	fs.StringVar(&c.PayloadKeyFile, "payload-key-file", "", "AES-256-GCM keys encrypting what is stored in Temporal (docs/SECURITY.md); the dev tenant's admins may use the codec endpoint")
	fs.IntVar(&c.DemoPortBase, "demo-port-base", demo.DefaultPortBase, "demo services listen on this port + 1..4, 10, 20, 30 (a config dir seeded with another base points at them)")
	c.Log.bind(fs)
}

func (c devConfig) validate() error {
	var errs []error
	ports := []struct {
		flag string
		v    int
	}{
		{"--temporal-port", c.TemporalPort}, {"--kafka-port", c.KafkaPort}, {"--clickhouse-port", c.CHPort},
		{"--clickhouse-http-port", c.CHHTTPPort}, {"--ingress-port", c.IngressPort},
	}
	for _, p := range ports {
		if p.v <= 0 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: want 1..65535", p.flag, p.v))
		}
	}
	if c.TemporalPort > 65532 {
		errs = append(errs, fmt.Errorf("--temporal-port %d: the next three ports are used too", c.TemporalPort))
	}
	if c.DemoServices && (c.DemoPortBase <= 0 || c.DemoPortBase+demo.MaxOffset > 65535) {
		errs = append(errs, fmt.Errorf("--demo-port-base %d: want 1..%d", c.DemoPortBase, 65535-demo.MaxOffset))
	}
	if c.UIPort < 0 || c.UIPort > 65535 {
		errs = append(errs, fmt.Errorf("--temporal-ui-port %d: want 0..65535", c.UIPort))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: must not be empty"))
	}
	if _, err := c.clickhouseDSN(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Log.logger(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// clickhouseDSN turns --clickhouse-addr into a DSN ("" when not given).
func (c devConfig) clickhouseDSN() (string, error) {
	a := c.ClickHouseAddr
	switch {
	case a == "":
		return "", nil
	case strings.Contains(a, "://"):
		return a, nil
	default:
		if _, _, err := net.SplitHostPort(a); err != nil {
			return "", fmt.Errorf("--clickhouse-addr %q: want host:port or a clickhouse:// DSN", a)
		}
		return "clickhouse://" + a + "/default", nil
	}
}

// ports lists every listener dev opens, checked before anything starts.
func (c devConfig) ports() []embedded.Port {
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	ps := []embedded.Port{
		{Name: "Temporal frontend", Flag: "--temporal-port", Addr: addr(c.TemporalPort)},
		{Name: "Temporal history", Flag: "--temporal-port", Addr: addr(c.TemporalPort + 1)},
		{Name: "Temporal matching", Flag: "--temporal-port", Addr: addr(c.TemporalPort + 2)},
		{Name: "Temporal worker", Flag: "--temporal-port", Addr: addr(c.TemporalPort + 3)},
		{Name: "Kafka", Flag: "--kafka-port", Addr: addr(c.KafkaPort)},
		{Name: "ingress", Flag: "--ingress-port", Addr: addr(c.IngressPort)},
	}
	if c.UIPort > 0 {
		ps = append(ps, embedded.Port{Name: "Temporal Web UI", Flag: "--temporal-ui-port", Addr: addr(c.UIPort)})
	}
	if c.ClickHouseAddr == "" {
		ps = append(ps,
			embedded.Port{Name: "ClickHouse native", Flag: "--clickhouse-port", Addr: addr(c.CHPort)},
			embedded.Port{Name: "ClickHouse HTTP", Flag: "--clickhouse-http-port", Addr: addr(c.CHHTTPPort)})
	}
	if c.DemoServices {
		for _, p := range demo.PortsAt(c.DemoPortBase).List() {
			ps = append(ps, embedded.Port{Name: "demo " + p.Name + " service", Flag: demoPortFlags, Addr: addr(p.Port)})
		}
	}
	return ps
}

func newDevCmd() *cobra.Command {
	var cfg devConfig
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system on this machine (embedded Temporal, Kafka, ClickHouse)",
		Long: `Run Gateflow on one machine without docker: an embedded Temporal server (SQLite),
an embedded Kafka-protocol broker (kfake), ClickHouse as a child process, and the
worker, analytics sink and ingress. State lives in --data-dir; a second run resumes it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			return runDev(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cfg.bind(cmd.Flags())
	return cmd
}

// devStack is what runDev started, stopped in reverse order.
type devStack struct {
	temporal   *temporalserver.Server
	kafka      *embedded.Kafka
	clickhouse *embedded.ClickHouse
	chOpts     embedded.ClickHouseOptions // to restart a child that died
	chRestarts []time.Time
	chEngine   string // how ClickHouse runs, for the summary
	chNote     string // why ClickHouse is not running
	parts      *devParts
}

// runDev starts everything, prints where it runs, and blocks until ctx is
// cancelled; then it stops the app parts first and the embedded servers
// after, within 10 s.
func runDev(ctx context.Context, cfg devConfig, stdout, stderr io.Writer) error {
	began := time.Now()
	if cfg.PrepareOnly {
		log, err := cfg.Log.logger()
		if err != nil {
			return err
		}
		ch, err := prepareClickHouse(ctx, cfg, log, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "Prepared in %.1fs: ClickHouse %s\n", time.Since(began).Seconds(), ch.describe())
		return nil
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := embedded.CheckDirWritable(dataDir, "--data-dir"); err != nil {
		return err
	}
	logDir := filepath.Join(dataDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("create log dir: %w", err)
	}
	unlock, err := embedded.LockDataDir(dataDir, "--data-dir")
	if err != nil {
		return err
	}
	defer unlock()
	if err := embedded.CheckPortsFree(cfg.ports()); err != nil {
		return err
	}
	log, closeLog, err := devLogger(cfg.Log, filepath.Join(logDir, "gateflow.log"), stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	progress := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }

	// The slow part first: find or fetch ClickHouse.
	ch, err := prepareClickHouse(ctx, cfg, log, stderr)
	var st devStack
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		st.chNote = err.Error()
	}
	if err := st.start(ctx, cfg, dataDir, logDir, ch, log, progress); err != nil {
		st.stop(log, progress)
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	st.printSummary(stdout, cfg, dataDir, logDir, time.Since(began))
	log.Info("gateflow dev ready", "took", time.Since(began))

	// Run until interrupted or an app part fails. A ClickHouse child that
	// dies is restarted on the same ports and data; meanwhile records wait
	// in Kafka (the sink retries), so nothing is lost.
	var chExited <-chan struct{}
	if st.clickhouse != nil {
		chExited = st.clickhouse.Exited()
	}
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-st.parts.failed:
			log.Error("an app part stopped; shutting down", "err", st.parts.firstErr())
			break wait
		case <-chExited:
			chExited = st.restartClickHouse(ctx, log, progress)
		}
	}
	// A second Ctrl-C now kills the process (the ClickHouse child dies
	// with it: it gets SIGKILL when we die).
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	progress("Stopping (Ctrl-C again to force) ...")
	stopBegan := time.Now()
	st.stop(log, progress)
	progress("Stopped in %.1fs.", time.Since(stopBegan).Seconds())
	return st.parts.firstErr()
}

// Restart budget of the ClickHouse child: a child that keeps dying is left
// down rather than restarted in a loop.
const (
	chMaxRestarts   = 5
	chRestartWindow = 10 * time.Minute
)

// restartClickHouse starts the ClickHouse child again after it died, on the
// same ports and data dir, and returns the new child's Exited channel; nil
// when it gives up (too many restarts, or ctx ended).
func (st *devStack) restartClickHouse(ctx context.Context, log *slog.Logger, progress func(string, ...any)) <-chan struct{} {
	dead := st.clickhouse
	log.Error("ClickHouse child exited", "exit", dead.ExitErr(), "log", dead.LogFile())
	now := time.Now()
	st.chRestarts = slices.DeleteFunc(st.chRestarts, func(t time.Time) bool { return now.Sub(t) > chRestartWindow })
	if len(st.chRestarts) >= chMaxRestarts {
		log.Error("ClickHouse died too often; leaving it down: call records wait in Kafka until dev restarts",
			"restarts", len(st.chRestarts), "window", chRestartWindow, "log", dead.LogFile())
		return nil
	}
	backoff := time.Second
	for attempt := 1; attempt <= 3; attempt++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		st.chRestarts = append(st.chRestarts, time.Now())
		began := time.Now()
		next, err := embedded.StartClickHouse(ctx, st.chOpts)
		if err == nil {
			st.clickhouse = next
			progress("  ClickHouse  restarted in %.1fs (the sink resumes; no record is lost)", time.Since(began).Seconds())
			log.Info("ClickHouse child restarted", "took", time.Since(began), "attempt", attempt)
			return next.Exited()
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Error("restart ClickHouse", "attempt", attempt, "err", err)
		backoff *= 2
	}
	log.Error("ClickHouse could not be restarted; call records wait in Kafka until dev restarts", "log", dead.LogFile())
	return nil
}

// devClickHouse is how dev will run ClickHouse.
type devClickHouse struct {
	dsn     string // external (--clickhouse-addr)
	binary  string // clickhouse binary on PATH
	version string
	lib     string // libchdb.so
}

func (c devClickHouse) describe() string {
	switch {
	case c.dsn != "":
		return "at " + c.dsn
	case c.binary != "":
		return c.binary + " " + c.version
	case c.lib != "":
		return "26.7 (libchdb " + c.lib + ")"
	default:
		return "not available"
	}
}

// prepareClickHouse picks, in order: --clickhouse-addr, a clickhouse >= 25.8
// on PATH, libchdb (fetched once with npm into the cache dir).
func prepareClickHouse(ctx context.Context, cfg devConfig, log *slog.Logger, progress io.Writer) (devClickHouse, error) {
	if dsn, _ := cfg.clickhouseDSN(); dsn != "" {
		return devClickHouse{dsn: dsn}, nil
	}
	if cfg.LibCHDB != "" {
		if _, err := os.Stat(cfg.LibCHDB); err != nil {
			return devClickHouse{}, fmt.Errorf("--libchdb: %w", err)
		}
		return devClickHouse{lib: cfg.LibCHDB}, nil
	}
	bin, version, err := embedded.FindClickHouseBinary(ctx)
	switch {
	case err == nil:
		return devClickHouse{binary: bin, version: version}, nil
	case errors.Is(err, embedded.ErrClickHouseTooOld):
		fmt.Fprintf(progress, "Skipping %s (version %s, need >= %d.%d); using ClickHouse 26.7 from libchdb instead\n",
			bin, version, embedded.MinClickHouseVersion[0], embedded.MinClickHouseVersion[1])
	case !errors.Is(err, exec.ErrNotFound):
		log.Warn("ignoring clickhouse on PATH", "err", err)
	}
	cacheDir, err := embedded.DefaultCacheDir()
	if err != nil {
		return devClickHouse{}, err
	}
	lib, err := embedded.EnsureLibCHDB(ctx, cacheDir, progress)
	if err != nil {
		return devClickHouse{}, err
	}
	return devClickHouse{lib: lib}, nil
}

func (st *devStack) start(ctx context.Context, cfg devConfig, dataDir, logDir string, ch devClickHouse, log *slog.Logger,
	progress func(string, ...any)) error {
	// Temporal and ClickHouse take the longest; start them side by side.
	var (
		wg                 sync.WaitGroup
		temporalErr, chErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		began := time.Now()
		st.temporal, temporalErr = temporalserver.Start(ctx, temporalserver.Options{
			DBPath:           filepath.Join(dataDir, "temporal.db"),
			FrontendPort:     cfg.TemporalPort,
			UIPort:           cfg.UIPort,
			SearchAttributes: workflows.SearchAttributeTypes(),
			LogFile:          filepath.Join(logDir, "temporal.log"),
			Logger:           log.With("part", "temporal"),
		})
		if temporalErr == nil {
			progress("  Temporal    ready in %.1fs", time.Since(began).Seconds())
		}
	}()
	if ch.binary != "" || ch.lib != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			st.chOpts = embedded.ClickHouseOptions{
				DataDir:      filepath.Join(dataDir, "clickhouse"),
				TCPPort:      cfg.CHPort,
				HTTPPort:     cfg.CHHTTPPort,
				LibPath:      ch.lib,
				ServerBinary: ch.binary,
				LogFile:      filepath.Join(logDir, "clickhouse.log"),
				Logger:       log.With("part", "clickhouse"),
			}
			st.clickhouse, chErr = embedded.StartClickHouse(ctx, st.chOpts)
			if chErr == nil {
				progress("  ClickHouse  ready in %.1fs", time.Since(began).Seconds())
			}
		}()
	}
	began := time.Now()
	k, kafkaErr := embedded.StartKafka(embedded.KafkaOptions{
		DataDir: filepath.Join(dataDir, "kafka"),
		Port:    cfg.KafkaPort,
		Topics: []embedded.Topic{
			{Name: devCallsTopic, Partitions: 6, Retention: devTopicRetention},
			{Name: devDLQTopic, Partitions: 1, Retention: devTopicRetention},
		},
		Logger: log.With("part", "kafka"),
	})
	st.kafka = k
	if kafkaErr == nil {
		progress("  Kafka       ready in %.1fs", time.Since(began).Seconds())
	}
	wg.Wait()
	if err := errors.Join(temporalErr, kafkaErr); err != nil {
		return err
	}
	chDSN := ch.dsn
	switch {
	case chErr != nil:
		// Not fatal: records wait in Kafka until ClickHouse is back.
		st.chNote = chErr.Error()
	case st.clickhouse != nil:
		chDSN = st.clickhouse.DSN()
		if ch.binary != "" {
			st.chEngine = ch.binary + " " + ch.version
		} else {
			st.chEngine = "libchdb 26.7"
		}
	case ch.dsn != "":
		st.chEngine = "external"
	}
	if st.chNote != "" {
		progress("  ClickHouse  NOT running: %s", firstLine(st.chNote))
		progress("              Call records wait in Kafka until ClickHouse is available.")
	}

	st.parts = newDevParts(ctx, log)
	env := devEnv{
		DataDir:           dataDir,
		LogDir:            logDir,
		TemporalHostPort:  st.temporal.FrontendAddr(),
		TemporalNamespace: st.temporal.Namespace(),
		KafkaBrokers:      []string{st.kafka.Addr()},
		KafkaTopic:        devCallsTopic,
		KafkaDLQTopic:     devDLQTopic,
		ClickHouseDSN:     chDSN,
		IngressAddr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.IngressPort)),
		DemoServices:      cfg.DemoServices,
		DemoPortBase:      cfg.DemoPortBase,
		PayloadKeyFile:    cfg.PayloadKeyFile,
		UIURL:             st.temporal.UIURL(),
		Log:               log,
		parts:             st.parts,
	}
	if err := startAppParts(st.parts.ctx, env); err != nil {
		return fmt.Errorf("start app parts: %w", err)
	}
	return nil
}

// stop stops the app parts, then ClickHouse, Kafka and Temporal side by
// side. Each step is bounded so that the whole stop stays under 10 s.
func (st *devStack) stop(log *slog.Logger, progress func(string, ...any)) {
	if st.parts != nil {
		if err := st.parts.stop(5 * time.Second); err != nil {
			log.Warn("app parts did not stop in time", "err", err)
		}
	}
	var wg sync.WaitGroup
	if st.clickhouse != nil {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			began := time.Now()
			if err := st.clickhouse.Stop(ctx); err != nil {
				log.Warn("stop ClickHouse", "err", err)
			}
			log.Debug("ClickHouse stopped", "took", time.Since(began))
		})
	}
	if st.kafka != nil {
		wg.Go(func() {
			began := time.Now()
			st.kafka.Close()
			log.Debug("Kafka stopped", "took", time.Since(began))
		})
	}
	if st.temporal != nil {
		wg.Go(func() {
			began := time.Now()
			if err := st.temporal.Stop(); err != nil {
				log.Warn("stop Temporal", "err", err)
			}
			log.Debug("Temporal stopped", "took", time.Since(began))
		})
	}
	wg.Wait()
}

func (st *devStack) printSummary(w io.Writer, cfg devConfig, dataDir, logDir string, took time.Duration) {
	fmt.Fprintf(w, "\nGateflow dev is ready in %.1fs\n", took.Seconds())
	row := func(k, v string) { fmt.Fprintf(w, "  %-16s %s\n", k, v) }
	row("Ingress API", "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.IngressPort)))
	row("Temporal", st.temporal.FrontendAddr()+" (namespace "+st.temporal.Namespace()+")")
	if u := st.temporal.UIURL(); u != "" {
		row("Temporal Web UI", u)
	}
	row("Kafka", st.kafka.Addr()+" (topics "+devCallsTopic+", "+devDLQTopic+")")
	switch {
	case st.clickhouse != nil:
		row("ClickHouse", st.clickhouse.DSN()+"  HTTP "+st.clickhouse.HTTPURL()+" ("+st.chEngine+")")
	case st.chNote == "":
		dsn, _ := cfg.clickhouseDSN()
		row("ClickHouse", dsn+" (external)")
	default:
		row("ClickHouse", "not running: "+firstLine(st.chNote))
	}
	for _, s := range st.parts.summary() {
		row(s[0], s[1])
	}
	row("Data dir", dataDir)
	row("Logs", filepath.Join(logDir, "{gateflow,temporal,clickhouse}.log"))
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// devLogger writes everything at the configured level to file and warnings
// and errors also to stderr, so that the terminal stays quiet.
func devLogger(cfg logConfig, file string, stderr io.Writer) (*slog.Logger, func(), error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.Level)); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", cfg.Level)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open log file: %w", err)
	}
	var toFile slog.Handler
	if cfg.Format == "json" {
		toFile = slog.NewJSONHandler(f, &slog.HandlerOptions{Level: lvl})
	} else {
		toFile = slog.NewTextHandler(f, &slog.HandlerOptions{Level: lvl})
	}
	toTerm := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: max(lvl, slog.LevelWarn)})
	return slog.New(fanout{toFile, toTerm}), func() { f.Close() }, nil
}

// fanout sends each record to every handler that accepts its level.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}

// devParts runs the app parts (worker, sink, ingress) that startAppParts
// launches, so that dev can stop them first and wait for them.
type devParts struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup
	failed chan struct{} // closed when a part returns early
	mu     sync.Mutex
	err    error
	rows   [][2]string
	once   sync.Once
}

func newDevParts(parent context.Context, log *slog.Logger) *devParts {
	// Not derived from parent's cancellation: dev cancels the parts itself,
	// before stopping what they depend on.
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	return &devParts{ctx: ctx, cancel: cancel, log: log, failed: make(chan struct{})}
}

// Go runs fn(ctx) in the background. fn must return soon after ctx is
// cancelled. If it returns before (with or without an error), dev shuts
// down.
func (p *devParts) Go(name string, fn func(ctx context.Context) error) {
	p.wg.Go(func() {
		err := fn(p.ctx)
		if p.ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
			return
		}
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		p.mu.Lock()
		if p.err == nil {
			p.err = fmt.Errorf("%s: %w", name, err)
		}
		p.mu.Unlock()
		p.once.Do(func() { close(p.failed) })
	})
}

// AddSummary adds a line to the summary printed when dev is ready.
func (p *devParts) AddSummary(label, value string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows = append(p.rows, [2]string{label, value})
}

func (p *devParts) summary() [][2]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][2]string(nil), p.rows...)
}

func (p *devParts) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// stop cancels the parts and waits for them up to timeout.
func (p *devParts) stop(timeout time.Duration) error {
	p.cancel()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("still running after %s", timeout)
	}
}

// newClickHouseChildCmd is the hidden subcommand that `gateflow dev` starts
// as its ClickHouse child process: it loads libchdb and serves the native
// and HTTP protocols on 127.0.0.1 until it is signalled.
func newClickHouseChildCmd() *cobra.Command {
	var args embedded.CHDBChildArgs
	cmd := &cobra.Command{
		Use:    "clickhouse-child --lib PATH --path DIR --tcp-port N --http-port N",
		Short:  "Serve ClickHouse from libchdb (started by gateflow dev)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := embedded.RunCHDBChild(cmd.Context(), args); err != nil {
				return fmt.Errorf("clickhouse-child: %w", err)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&args.LibPath, "lib", "", "path of libchdb.so")
	fs.StringVar(&args.DataDir, "path", "", "ClickHouse data dir")
	fs.IntVar(&args.TCPPort, "tcp-port", 9000, "native protocol port on 127.0.0.1")
	fs.IntVar(&args.HTTPPort, "http-port", 8123, "HTTP port on 127.0.0.1")
	return cmd
}
