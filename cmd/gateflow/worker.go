package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/callback"
	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/worker"
	"github.com/gateflow/gateflow/worker/sdkmetrics"
	"github.com/gateflow/gateflow/workflows/registry"
	"github.com/gateflow/gateflow/workflows/replicated"
)

// workerConfig configures `gateflow worker`: the Temporal worker running
// orchestrations and their activities.
type workerConfig struct {
	Temporal temporalConfig
	Kafka    kafkaConfig
	// ClickHouse is read for tenants' token spend (model budgets).
	ClickHouse clickhouseConfig
	// Replication names the compacted topics the catalogue and keys
	// entities publish to.
	Replication replicationConfig
	// ConfigDir holds gateflow.yaml (services, tenants, models) and
	// definitions/*.yaml; reloaded on SIGHUP and when its files change
	// (polled every ReloadInterval).
	ConfigDir      string
	ReloadInterval time.Duration
	// SpoolDir is where call records wait while Kafka is unreachable.
	SpoolDir string
	// Records says how call records are kept until Kafka has them.
	Records recordLogConfig
	// MaxConcurrentActivities bounds the calls in flight in this process.
	MaxConcurrentActivities int
	// MaxResponseBytes caps an HTTP response body (per service override in
	// gateflow.yaml).
	MaxResponseBytes int64
	// HTTPTimeout bounds one HTTP attempt when neither step nor service
	// sets a timeout.
	HTTPTimeout time.Duration
	// StopTimeout lets running activities finish on shutdown.
	StopTimeout time.Duration
	// MetricsListen serves /healthz, /readyz and /metrics; empty disables.
	MetricsListen string
	// Triggers runs the topic triggers and reconciles the configured
	// schedules in this process (false when `gateflow triggers` does).
	Triggers bool
	// Metrics (set by code, not flags: gateflow dev) is the registry to
	// use instead of one of the worker's own.
	Metrics *prometheus.Registry
}

func (c *workerConfig) bind(fs *pflag.FlagSet) {
	c.Temporal.bind(fs)
	c.Kafka.bind(fs)
	c.ClickHouse.bind(fs)
	c.Replication.bind(fs)
	fs.StringVar(&c.ConfigDir, "config-dir", "config", "configuration directory (gateflow.yaml, definitions/*.yaml); reloaded on SIGHUP or change")
	bindReloadInterval(fs, &c.ReloadInterval)
	fs.StringVar(&c.SpoolDir, "spool-dir", ".gateflow/spool/worker", "directory of the local call-record log (records wait there until Kafka has them)")
	c.Records.bind(fs)
	fs.IntVar(&c.MaxConcurrentActivities, "max-concurrent-activities", worker.DefaultMaxConcurrentActivities, "calls (HTTP, model, MCP) in flight at once in this worker")
	fs.Int64Var(&c.MaxResponseBytes, "max-response-bytes", activities.DefaultMaxResponseBytes, "largest HTTP response body accepted from a service (at most 2031616: a call's output must fit Temporal's 2 MiB payload limit; beyond, the call fails with too_large)")
	fs.DurationVar(&c.HTTPTimeout, "http-timeout", activities.DefaultHTTPTimeout, "timeout of one HTTP attempt when neither the step nor the service sets one")
	fs.DurationVar(&c.StopTimeout, "stop-timeout", worker.DefaultStopTimeout, "how long running activities may finish on shutdown")
	fs.StringVar(&c.MetricsListen, "metrics-listen", "127.0.0.1:9465", "address of /healthz, /readyz and /metrics (empty: disabled)")
	fs.BoolVar(&c.Triggers, "triggers", true, "also run the topic triggers and reconcile the schedules of gateflow.yaml (false when a `gateflow triggers` process does)")
}

func (c workerConfig) validate() error {
	errs := []error{c.Temporal.validate(), c.Kafka.validate(), c.ClickHouse.validate(), c.Replication.validate()}
	if c.ConfigDir == "" {
		errs = append(errs, errors.New("--config-dir: must not be empty"))
	}
	errs = append(errs, validateReloadInterval(c.ReloadInterval))
	if c.SpoolDir == "" {
		errs = append(errs, errors.New("--spool-dir: must not be empty"))
	}
	errs = append(errs, c.Records.validate())
	if c.MaxConcurrentActivities < 1 {
		errs = append(errs, fmt.Errorf("--max-concurrent-activities %d: must be at least 1", c.MaxConcurrentActivities))
	}
	if c.MaxResponseBytes < 1 || c.MaxResponseBytes > activities.MaxOutputBytes {
		errs = append(errs, fmt.Errorf("--max-response-bytes %d: must be between 1 and %d (a call's output must fit Temporal's %d-byte payload limit)",
			c.MaxResponseBytes, activities.MaxOutputBytes, activities.TemporalBlobSizeLimit))
	}
	if c.HTTPTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--http-timeout %s: must be positive", c.HTTPTimeout))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen %q: want host:port or empty", c.MetricsListen))
		}
	}
	if c.StopTimeout < 0 {
		errs = append(errs, fmt.Errorf("--stop-timeout %s: must not be negative", c.StopTimeout))
	}
	return errors.Join(errs...)
}

func newWorkerCmd() *cobra.Command {
	var cfg workerConfig
	var logCfg logConfig
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the Temporal worker: orchestrations and their HTTP, model and MCP calls",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			log, err := logCfg.logger()
			if err != nil {
				return err
			}
			return runWorker(cmd.Context(), cfg, log)
		},
	}
	cfg.bind(cmd.Flags())
	logCfg.bind(cmd.Flags())
	return cmd
}

// runWorker runs the worker until ctx is cancelled, then stops it cleanly:
// running activities get StopTimeout, queued call records go to Kafka (or
// the spool).
func runWorker(ctx context.Context, cfg workerConfig, log *slog.Logger) error {
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	reg, err := watchConfigDir(watchCtx, cfg.ConfigDir, cfg.ReloadInterval, log)
	if err != nil {
		return err
	}

	transport, err := cfg.Kafka.transport()
	if err != nil {
		return err
	}
	// A worker of its own serves its registry; in gateflow dev the ingress
	// serves one registry for all parts, where the worker's producer
	// metrics carry process="worker" beside the ingress's.
	metrics := cfg.Metrics
	var own prometheus.Registerer
	if metrics == nil {
		metrics = newProcessRegistry()
		own = metrics
	} else {
		own = prometheus.WrapRegistererWith(prometheus.Labels{"process": "worker"}, metrics)
	}
	sdkMetrics := sdkmetrics.New()
	if err := metrics.Register(sdkMetrics); err != nil {
		return fmt.Errorf("register Temporal SDK metrics: %w", err)
	}
	prod, closeProducer, err := openProducer(cfg.Kafka, transport, cfg.SpoolDir, cfg.Records, own, log)
	if err != nil {
		return err
	}
	defer closeProducer()

	tr, stopTracing, err := startTracing(ctx, &cfg.Temporal, "gateflow-worker", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	c, err := dialOrchestrations(ctx, cfg.Temporal, sdkMetrics.Handler(), log)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			// Stopped while connecting: a clean stop, as after w.Run.
			log.Debug("worker stopped while starting", "err", err)
			return nil
		}
		return err
	}
	defer c.Close()

	// Model steps go through the same gateway as /v1/chat/completions,
	// with the same budgets: the tenant's spend is read from the ClickHouse
	// rollups, shared by every replica.
	ch, err := cfg.ClickHouse.open()
	if err != nil {
		return err
	}
	defer ch.Close()
	gw, err := newModelGateway(watchCtx, reg, query.New(ch), prod, tr, log)
	if err != nil {
		return err
	}
	model := activities.NewModelActivity(gw, activities.ModelOptions{})
	// The catalogue's and the keys' entities publish through this writer.
	ensureReplicatedTopics(ctx, cfg.Replication, cfg.Kafka, transport, log)
	pub := replicated.NewPublisher(replicated.PublisherConfig{Brokers: cfg.Kafka.Brokers, Transport: transport})
	defer pub.Close()
	mcp := activities.NewMCPActivity(reg, prod, activities.MCPOptions{Logger: log.With("component", "mcp-activity"), Tracing: tr})

	w, err := worker.New(c, worker.Options{
		TaskQueue:               cfg.Temporal.TaskQueue,
		MaxConcurrentActivities: cfg.MaxConcurrentActivities,
		StopTimeout:             cfg.StopTimeout,
		HTTP: activities.HTTPOptions{
			MaxResponseBytes: cfg.MaxResponseBytes,
			DefaultTimeout:   cfg.HTTPTimeout,
			Callbacks:        callback.NewIssuer(reg.CallbackSettings),
			Tracing:          tr,
		},
		Logger: log.With("component", "worker"),
	}, worker.Deps{
		Services: reg,
		Recorder: prod,
		Model:    model.Call,
		MCP:      mcp.Call,
		Register: []func(sdkworker.Registry){
			func(r sdkworker.Registry) { registry.RegisterWorkflows(r, reg) },
			registerReplicated(c, cfg.Temporal.TaskQueue, cfg.Replication, pub),
		},
	})
	if err != nil {
		return err
	}
	if cfg.Triggers {
		codec, err := cfg.Temporal.payloadCodec()
		if err != nil {
			return err
		}
		stopTriggers, err := runTriggers(ctx, triggerParts{Client: c, Registry: reg, TaskQueue: cfg.Temporal.TaskQueue,
			Codec: codec, Kafka: cfg.Kafka, Transport: transport, Recorder: prod, Metrics: own, Log: log.With("component", "triggers")})
		if err != nil {
			return err
		}
		defer stopTriggers()
	}
	if cfg.MetricsListen != "" {
		stop, err := serveProbes(cfg.MetricsListen, "worker", metrics, func(ctx context.Context) map[string]error {
			_, terr := c.CheckHealth(ctx, &client.CheckHealthRequest{})
			return map[string]error{"temporal": terr, "kafka": cfg.Kafka.reachable(ctx, transport)}
		}, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	log.Info("worker running", "temporal", cfg.Temporal.HostPort, "namespace", cfg.Temporal.Namespace,
		"task_queue", cfg.Temporal.TaskQueue, "config_dir", cfg.ConfigDir)
	return w.Run(ctx)
}
