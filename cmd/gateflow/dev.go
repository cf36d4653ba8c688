package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gateflow/gateflow/cmd/gateflow/internal/logfan"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/demo"
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
	fs.IntVar(&c.DemoPortBase, "demo-port-base", demo.DefaultPortBase, "demo services listen on this port + 1..5, 10, 20, 30 (a config dir seeded with another base points at them)")
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
		case <-st.parts.Failed():
			log.Error("an app part stopped; shutting down", "err", st.parts.Err())
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
	return st.parts.Err()
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
	return slog.New(logfan.Handler{toFile, toTerm}), func() { f.Close() }, nil
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
