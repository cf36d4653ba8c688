package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/activities/llm"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/activities/tracing"
	"github.com/gateflow/gateflow/analytics/producer"
	"github.com/gateflow/gateflow/analytics/spool"
	"github.com/gateflow/gateflow/worker"
)

// The pieces the ingress and the worker both build, in one place.

// recordLogConfig says how a process keeps its call records until Kafka
// has them (the directory is the process's --spool-dir).
type recordLogConfig struct {
	// Durable writes each record to the local log before the call is
	// answered (producer.Config.LogFirst).
	Durable bool
	// Fsync is the log's fsync policy: interval, always or never.
	Fsync string
}

func (c *recordLogConfig) bind(fs *pflag.FlagSet) {
	fs.BoolVar(&c.Durable, "records-durable", true,
		"write each call record to the local log in --spool-dir before answering, so a killed process loses none (false: queue in memory first; a crash loses what is queued)")
	fs.StringVar(&c.Fsync, "records-fsync", "interval",
		"when the record log is forced to disk: interval (every second; an OS crash may lose the last second), always (before answering; slow), never (left to the OS)")
}

func (c recordLogConfig) validate() error {
	if _, err := spool.ParseFsyncPolicy(c.Fsync); err != nil {
		return fmt.Errorf("--records-fsync: %w", err)
	}
	return nil
}

// openProducer starts a process's call-record producer. closeProducer
// hands what is queued to Kafka or the spool, bounded in time.
func openProducer(cfg kafkaConfig, transport *kafka.Transport, spoolDir string, rl recordLogConfig, reg prometheus.Registerer,
	log *slog.Logger) (prod *producer.Producer, closeProducer func(), err error) {
	fsync, err := spool.ParseFsyncPolicy(rl.Fsync)
	if err != nil {
		return nil, nil, fmt.Errorf("--records-fsync: %w", err)
	}
	prod, err = producer.New(producer.Config{
		Transport:  transport,
		Brokers:    cfg.Brokers,
		Topic:      cfg.Topic,
		SpoolDir:   spoolDir,
		LogFirst:   rl.Durable,
		Fsync:      fsync,
		Registerer: reg,
	}, log.With("component", "producer"))
	if err != nil {
		return nil, nil, fmt.Errorf("call record producer: %w", err)
	}
	return prod, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := prod.Close(ctx); err != nil {
			log.Error("closing the call record producer", "err", err)
		}
	}, nil
}

// dialOrchestrations connects to Temporal and makes sure the search
// attributes of orchestrations exist: without them Temporal refuses every
// start and orchestrations stall at their first approval step. mh receives
// the SDK's metrics (nil: none).
//
// A stop while it connects (ctx ended) is reported as ctx's error, so that
// callers and gateflow dev's part group see a stop, not a failure.
func dialOrchestrations(ctx context.Context, cfg temporalConfig, mh client.MetricsHandler, log *slog.Logger) (client.Client, error) {
	c, err := cfg.dial(ctx, mh, log)
	if err != nil {
		return nil, stoppedOr(ctx, err)
	}
	err = worker.EnsureSearchAttributes(ctx, c, cfg.Namespace)
	switch {
	case err != nil && ctx.Err() != nil:
		c.Close()
		return nil, stoppedOr(ctx, err)
	case errors.Is(err, worker.ErrSearchAttributesUnverified):
		log.Warn("search attributes not verified; make sure they exist (docs/OPERATIONS.md)", "err", err)
	case err != nil:
		c.Close()
		return nil, fmt.Errorf("%w (register them once as docs/OPERATIONS.md shows, with a user that may)", err)
	}
	return c, nil
}

// stoppedOr returns err, or, when ctx has ended, an error wrapping ctx's
// error (context.Canceled on a stop) that still names err. A Temporal call
// cut by a stop fails with serviceerror.Canceled (a gRPC status), which is
// not context.Canceled: without this, a stop during startup looked like a
// failure and gateflow dev exited with status 1.
func stoppedOr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%w: %v", ctx.Err(), err)
}

// startTracing starts the process's tracing (service is its
// service.name) and hands it to cfg, whose client then carries traces
// through Temporal. stop flushes the spans; call it after the client and
// the servers are closed.
func startTracing(ctx context.Context, cfg *temporalConfig, service string, log *slog.Logger) (*tracing.Tracing, func(), error) {
	tr, err := cfg.Tracing.start(ctx, service, log)
	if err != nil {
		return nil, nil, err
	}
	cfg.tracer = tr
	return tr, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("trace spans not flushed", "err", err)
		}
	}, nil
}

// newModelGateway builds the model gateway of a process and keeps it
// following registry reloads until ctx ends. Budgets read tenants' spend
// from the ClickHouse rollups, so every replica sees the same figure.
func newModelGateway(ctx context.Context, reg *sysconfig.Registry, spend llm.SpendReader, rec llm.Recorder,
	tr *tracing.Tracing, log *slog.Logger) (*llm.Gateway, error) {
	models := reg.Current().Models()
	gw, err := llm.NewGateway(models, llm.Deps{
		// Provider requests carry the caller's traceparent.
		HTTP:     &http.Client{Transport: tr.Transport(llm.NewTransport())},
		Recorder: rec,
		Budget:   llm.NewBudgets(spend, reg, nil, models.Budget),
		Log:      log.With("component", "models"),
		// Each tenant reaches only the models its uses.models lists.
		Access: reg,
	})
	if err != nil {
		return nil, err
	}
	go sysconfig.FollowModels(ctx, reg, gw, time.Second, log.With("component", "models"))
	return gw, nil
}

// newProcessRegistry is a process's Prometheus registry with the Go runtime
// and process collectors, which a registry may hold only once.
func newProcessRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// watchConfigDir loads the config dir (with the given extensions) and
// keeps it reloaded until ctx ends (every interval, and on SIGHUP).
func watchConfigDir(ctx context.Context, dir string, interval time.Duration, log *slog.Logger, ext ...sysconfig.Extension) (*sysconfig.Registry, error) {
	reg, err := sysconfig.New(dir, ext...)
	if err != nil {
		return nil, fmt.Errorf("config dir %s: %w", dir, err)
	}
	go reg.Watch(ctx, log.With("component", "registry"), interval)
	return reg, nil
}
