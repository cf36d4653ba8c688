package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/temporalserver"
	"github.com/gateflow/gateflow/workflows"
)

// The embedded Temporal server and the embedded Kafka-protocol cluster,
// each as a process of its own: `gateflow faultrun` starts, kills and
// restarts them like any other part. Hidden: operators run real clusters.

// newTemporalServerCmd runs the embedded Temporal server (SQLite in WAL
// mode) until SIGTERM.
func newTemporalServerCmd() *cobra.Command {
	var dataDir, namespace string
	var port, historyPort, matchingPort, workerPort int
	var logCfg logConfig
	cmd := &cobra.Command{
		Use:    "temporal-server",
		Short:  "Run the embedded Temporal server as a process of its own (fault runs)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logCfg.logger()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dataDir, 0o750); err != nil {
				return err
			}
			srv, err := temporalserver.Start(cmd.Context(), temporalserver.Options{
				DBPath:           filepath.Join(dataDir, "temporal.db"),
				FrontendPort:     port,
				HistoryPort:      historyPort,
				MatchingPort:     matchingPort,
				WorkerPort:       workerPort,
				Namespace:        namespace,
				SearchAttributes: workflows.SearchAttributeTypes(),
				LogFile:          filepath.Join(dataDir, "temporal.log"),
				Logger:           log,
			})
			if err != nil {
				return err
			}
			log.Info("temporal server ready", "frontend", srv.FrontendAddr(), "namespace", srv.Namespace())
			<-cmd.Context().Done()
			return srv.Stop()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dataDir, "data-dir", ".gateflow/temporal", "directory of temporal.db and temporal.log")
	fs.IntVar(&port, "port", 7233, "frontend port on 127.0.0.1")
	fs.IntVar(&historyPort, "history-port", 0, "history service port (0: --port + 1)")
	fs.IntVar(&matchingPort, "matching-port", 0, "matching service port (0: --port + 2)")
	fs.IntVar(&workerPort, "worker-port", 0, "internal worker service port (0: --port + 3)")
	fs.StringVar(&namespace, "namespace", "default", "namespace created at start")
	logCfg.bind(fs)
	return cmd
}

// newKafkaBrokerCmd runs a kfake cluster of --ports brokers in one process.
//
// kfake keeps a cluster's data in one process and does not replicate
// between processes, so three brokers are three listeners of one process:
// SIGUSR1 takes the next broker away (its listener closes, its connections
// drop, its partitions get other leaders) for --bounce-down and then back
// on the same port, which is what clients see when one broker of a real
// cluster restarts; SIGKILL of the process is every broker crashing at
// once, recovered from --data-dir.
func newKafkaBrokerCmd() *cobra.Command {
	var dataDir string
	var ports []int
	var partitions int32
	var topic, dlqTopic string
	var bounceDown time.Duration
	var logCfg logConfig
	cmd := &cobra.Command{
		Use:    "kafka-broker",
		Short:  "Run the embedded Kafka-protocol cluster (kfake) as a process of its own (fault runs)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logCfg.logger()
			if err != nil {
				return err
			}
			if len(ports) == 0 || partitions < 1 {
				return errors.New("--ports: at least one; --partitions: at least 1")
			}
			k, err := embedded.StartKafka(embedded.KafkaOptions{DataDir: dataDir, Ports: ports, Logger: log,
				Topics: []embedded.Topic{{Name: topic, Partitions: partitions}, {Name: dlqTopic, Partitions: partitions}}})
			if err != nil {
				return err
			}
			defer k.Close()
			log.Info("kafka cluster ready", "brokers", k.Addrs())
			return bounceOnSignal(cmd.Context(), k, bounceDown, log)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dataDir, "data-dir", ".gateflow/kafka", "directory the cluster's topics, records and offsets persist in")
	fs.IntSliceVar(&ports, "ports", []int{9092}, "one port per broker, on 127.0.0.1")
	fs.Int32Var(&partitions, "partitions", 6, "partitions of the call-record topics (created if missing)")
	fs.StringVar(&topic, "kafka-topic", "gateflow.calls", "topic of call records")
	fs.StringVar(&dlqTopic, "kafka-dlq-topic", "gateflow.calls.dlq", "dead-letter topic")
	fs.DurationVar(&bounceDown, "bounce-down", 2*time.Second, "how long a broker stays away after SIGUSR1")
	logCfg.bind(fs)
	return cmd
}

// bounceOnSignal restarts the brokers in turn, one per SIGUSR1, until ctx
// ends.
func bounceOnSignal(ctx context.Context, k *embedded.Kafka, down time.Duration, log *slog.Logger) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	defer signal.Stop(sig)
	next := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sig:
		}
		n := len(k.Addrs())
		if n < 2 {
			log.Warn("kafka: one broker only; SIGUSR1 ignored")
			continue
		}
		node := int32(next % n)
		next++
		log.Info("kafka: broker down", "node", node, "for", down)
		if err := k.RestartBroker(node, down); err != nil {
			return err
		}
		log.Info("kafka: broker back", "node", node, "addr", k.Addrs()[node])
	}
}
