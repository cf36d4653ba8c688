package main

// The lifecycle of gateflow dev's embedded stack: the Temporal server, the
// Kafka-protocol broker and ClickHouse (a child process, restarted if it
// dies), then the app parts on top; a bounded stop in reverse order; the
// summary printed when ready.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gateflow/gateflow/cmd/gateflow/internal/partgroup"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/temporalserver"
	"github.com/gateflow/gateflow/workflows"
)

// devStack is what runDev started, stopped in reverse order.
type devStack struct {
	temporal   *temporalserver.Server
	kafka      *embedded.Kafka
	clickhouse *embedded.ClickHouse
	chOpts     embedded.ClickHouseOptions // to restart a child that died
	chRestarts []time.Time
	chEngine   string // how ClickHouse runs, for the summary
	chNote     string // why ClickHouse is not running
	parts      *partgroup.Group
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
		Topics: append([]embedded.Topic{
			{Name: devCallsTopic, Partitions: 6, Retention: devTopicRetention},
			{Name: devDLQTopic, Partitions: 1, Retention: devTopicRetention},
		}, devDemoTopics...),
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

	st.parts = partgroup.New(ctx, log)
	env := devEnv{
		DataDir:           dataDir,
		LogDir:            logDir,
		TemporalHostPort:  st.temporal.FrontendAddr(),
		TemporalNamespace: st.temporal.Namespace(),
		TemporalUI:        st.temporal.UIURL(),
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
	if err := startAppParts(st.parts.Context(), env); err != nil {
		return fmt.Errorf("start app parts: %w", err)
	}
	return nil
}

// stop stops the app parts, then ClickHouse, Kafka and Temporal side by
// side. Each step is bounded so that the whole stop stays under 10 s.
func (st *devStack) stop(log *slog.Logger, progress func(string, ...any)) {
	if st.parts != nil {
		if err := st.parts.Stop(5 * time.Second); err != nil {
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
	row("Web console", "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.IngressPort))+"/console (sign in with the dev key)")
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
	for _, s := range st.parts.Summary() {
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
