package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	// The same options again for the sink's own insert connection.
	chOpts, err := cfg.ClickHouse.parse()
	if err != nil {
		return err
	}
	dialer, err := cfg.Kafka.dialer()
	if err != nil {
		return err
	}
	transport, err := cfg.Kafka.transport()
	if err != nil {
		return err
	}
	reg := newProcessRegistry()
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
		Cluster:       cfg.ClickHouse.cluster(),
		Registerer:    reg,
		ClickHouse:    chOpts,
	}, conn, log.With("component", "sink"))
	if err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		stop, err := serveProbes(cfg.MetricsListen, "sink", reg, func(ctx context.Context) map[string]error {
			return sink.Check(ctx, dialer, cfg.Kafka.Brokers, conn)
		}, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return s.Run(ctx)
}
