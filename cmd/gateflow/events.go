package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/callback"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/eventsapi"
	"github.com/gateflow/gateflow/workflows/events"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/payloadcodec"
	"github.com/gateflow/gateflow/workflows/registry"
	"github.com/gateflow/gateflow/workflows/schedules"
	"github.com/gateflow/gateflow/workflows/triggers"
)

// The event-driven parts: the ingress's routes for schedules, events,
// webhooks and callbacks; the topic triggers and the schedules reconciler,
// run by the worker (unless --triggers=false) or by `gateflow triggers`.

// eventsRoutes builds the eventsapi group of an ingress.
func eventsRoutes(c client.Client, reg *sysconfig.Registry, taskQueue string, orch *orchestrator.Orchestrator,
	rec activities.Recorder, log *slog.Logger) api.Group {
	defs := orchestrator.RegistryDefinitions(registry.NewStore(c, reg, log.With("component", "definitions"), registry.WithTaskQueue(taskQueue)))
	sender := events.NewSender(c, taskQueue)
	return eventsapi.Routes(eventsapi.Deps{
		Schedules: schedules.New(c, defs, schedules.Options{TaskQueue: taskQueue, ServiceDefaults: reg.ServiceDefaults,
			Log: log.With("component", "schedules")}),
		Events:    triggers.NewEvents(sender, rec),
		Hooks:     triggers.NewHooks(reg, orch, sender, rec),
		Callbacks: callback.NewCompleter(c, reg.CallbackSettings, rec),
		Config:    reg,
	})
}

// triggerParts is what runTriggers needs.
type triggerParts struct {
	Client    client.Client
	Registry  *sysconfig.Registry
	TaskQueue string
	Kafka     kafkaConfig
	Transport *kafka.Transport
	Recorder  activities.Recorder
	// Codec reads the memos of runs when payloads are encrypted (nil: not).
	Codec   *payloadcodec.Codec
	Metrics prometheus.Registerer
	Log     *slog.Logger
}

// schedulesResync is how often configured schedules are compared with
// Temporal even when the configuration did not change (a newly published
// "latest" definition).
const schedulesResync = time.Minute

// runTriggers starts the topic triggers and the schedules reconciler; the
// returned stop ends them and waits.
func runTriggers(ctx context.Context, p triggerParts) (stop func(), err error) {
	orch, err := newOrchestrator(p.Client, p.Registry, p.TaskQueue, p.Codec, p.Log)
	if err != nil {
		return nil, err
	}
	dialer, err := p.Kafka.dialer()
	if err != nil {
		return nil, err
	}
	topics, err := triggers.NewTopics(orch, events.NewSender(p.Client, p.TaskQueue), triggers.TopicOptions{
		Brokers: p.Kafka.Brokers, Dialer: dialer, Transport: p.Transport, Registerer: p.Metrics,
		Recorder: p.Recorder, Log: p.Log.With("component", "topic-triggers"),
	})
	if err != nil {
		return nil, err
	}
	defs := orchestrator.RegistryDefinitions(registry.NewStore(p.Client, p.Registry, p.Log.With("component", "definitions"), registry.WithTaskQueue(p.TaskQueue)))
	sched := schedules.New(p.Client, defs, schedules.Options{TaskQueue: p.TaskQueue, ServiceDefaults: p.Registry.ServiceDefaults,
		Log: p.Log.With("component", "schedules")})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := topics.Run(ctx, p.Registry); err != nil {
			p.Log.Error("topic triggers stopped", "err", err)
		}
	})
	wg.Go(func() { sched.RunReconciler(ctx, p.Registry, time.Second, schedulesResync) })
	return func() { cancel(); wg.Wait() }, nil
}

// triggersConfig configures `gateflow triggers`: the topic triggers and
// the schedules reconciler without a worker.
type triggersConfig struct {
	Temporal       temporalConfig
	Kafka          kafkaConfig
	ConfigDir      string
	ReloadInterval time.Duration
	SpoolDir       string
	// Records is how call records reach the local log.
	Records       recordLogConfig
	MetricsListen string
}

func (c *triggersConfig) bind(fs *pflag.FlagSet) {
	c.Temporal.bind(fs)
	c.Kafka.bind(fs)
	fs.StringVar(&c.ConfigDir, "config-dir", "config", "configuration directory (gateflow.yaml with triggers and schedules); reloaded on SIGHUP or change")
	bindReloadInterval(fs, &c.ReloadInterval)
	fs.StringVar(&c.SpoolDir, "spool-dir", ".gateflow/spool/triggers", "directory where call records wait while Kafka is unreachable")
	c.Records.bind(fs)
	fs.StringVar(&c.MetricsListen, "metrics-listen", "127.0.0.1:9467", "address of /healthz, /readyz and /metrics (empty: disabled)")
}

func (c triggersConfig) validate() error {
	errs := []error{c.Temporal.validate(), c.Kafka.validate(), validateReloadInterval(c.ReloadInterval)}
	if c.ConfigDir == "" {
		errs = append(errs, errors.New("--config-dir: must not be empty"))
	}
	if c.SpoolDir == "" {
		errs = append(errs, errors.New("--spool-dir: must not be empty"))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen %q: want host:port or empty", c.MetricsListen))
		}
	}
	return errors.Join(errs...)
}

func newTriggersCmd() *cobra.Command {
	var cfg triggersConfig
	var logCfg logConfig
	cmd := &cobra.Command{
		Use:   "triggers",
		Short: "Run the topic triggers and the configured schedules without a worker (the worker runs them too unless --triggers=false)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			log, err := logCfg.logger()
			if err != nil {
				return err
			}
			return runTriggersProcess(cmd.Context(), cfg, log)
		},
	}
	cfg.bind(cmd.Flags())
	logCfg.bind(cmd.Flags())
	cmd.AddCommand(newTriggersListCmd())
	return cmd
}

// runTriggersProcess runs `gateflow triggers` until ctx ends.
func runTriggersProcess(ctx context.Context, cfg triggersConfig, log *slog.Logger) error {
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
	metrics := newProcessRegistry()
	prod, closeProducer, err := openProducer(cfg.Kafka, transport, cfg.SpoolDir, cfg.Records, metrics, log)
	if err != nil {
		return err
	}
	defer closeProducer()
	_, stopTracing, err := startTracing(ctx, &cfg.Temporal, "gateflow-events", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	c, err := dialOrchestrations(ctx, cfg.Temporal, nil, log)
	if err != nil {
		return err
	}
	defer c.Close()
	codec, err := cfg.Temporal.payloadCodec()
	if err != nil {
		return err
	}
	stop, err := runTriggers(ctx, triggerParts{Client: c, Registry: reg, TaskQueue: cfg.Temporal.TaskQueue, Kafka: cfg.Kafka,
		Transport: transport, Codec: codec, Recorder: prod, Metrics: metrics, Log: log})
	if err != nil {
		return err
	}
	defer stop()
	if cfg.MetricsListen != "" {
		stopProbes, err := serveProbes(cfg.MetricsListen, "triggers", metrics, func(ctx context.Context) map[string]error {
			_, terr := c.CheckHealth(ctx, &client.CheckHealthRequest{})
			return map[string]error{"temporal": terr, "kafka": cfg.Kafka.reachable(ctx, transport)}
		}, log)
		if err != nil {
			return err
		}
		defer stopProbes()
	}
	log.Info("triggers running", "temporal", cfg.Temporal.HostPort, "config_dir", cfg.ConfigDir)
	<-ctx.Done()
	return nil
}
