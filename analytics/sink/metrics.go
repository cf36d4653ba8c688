package sink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	consumed, inserted, skipped, deadLettered, committed prometheus.Counter
	insertErrors, retries, commitErrors, rebalances      prometheus.Counter
	fetchErrors, duplicates                              prometheus.Counter
	resent, resendFailures                               prometheus.Counter
	lag                                                  prometheus.Gauge
	insertSeconds                                        prometheus.Histogram
}

func newMetrics() metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gateflow", Subsystem: "sink", Name: name, Help: help})
	}
	return metrics{
		consumed:       c("messages_consumed_total", "Messages fetched from Kafka."),
		inserted:       c("records_inserted_total", "Call records inserted into ClickHouse."),
		skipped:        c("messages_skipped_total", "Redelivered messages skipped because ClickHouse already holds them."),
		deadLettered:   c("messages_dead_lettered_total", "Messages sent to the dead-letter topic."),
		committed:      c("messages_committed_total", "Messages whose offsets were committed."),
		insertErrors:   c("insert_errors_total", "Failed ClickHouse inserts (each is retried)."),
		retries:        c("retries_total", "Retries of ClickHouse or Kafka operations."),
		commitErrors:   c("commit_errors_total", "Failed offset commits (the batch is redelivered and skipped)."),
		fetchErrors:    c("fetch_errors_total", "Errors reading from Kafka (the reader retries)."),
		duplicates:     c("duplicates_dropped_total", "Records dropped because their id was stored recently from the same partition (written twice by a producer)."),
		rebalances:     c("batches_dropped_on_rebalance_total", "Uncommitted batches dropped because the consumer group rebalanced."),
		resent:         c("batches_resent_total", "Batches stored beyond a partition's committed offset (in doubt after a crash) re-sent under their token."),
		resendFailures: c("resend_failures_total", "In-doubt batches that could not be re-sent: a rollup may miss some of their rows (see the sink's log)."),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "gateflow", Subsystem: "sink", Name: "lag_messages",
			Help: "Messages behind the end of the assigned partitions, as last seen."}),
		insertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "gateflow", Subsystem: "sink",
			Name: "insert_seconds", Help: "Time to store one batch, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
	}
}

func (m metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.consumed, m.inserted, m.skipped, m.deadLettered, m.committed,
		m.insertErrors, m.retries, m.commitErrors, m.fetchErrors, m.duplicates, m.rebalances, m.resent, m.resendFailures,
		m.lag, m.insertSeconds} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("sink: register metrics: %w", err)
		}
	}
	return nil
}
