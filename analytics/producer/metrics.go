package producer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the producer's Prometheus series. They exist even when no
// registerer is given, so counting never needs a nil check.
type metrics struct {
	emitted  prometheus.Counter
	sent     prometheus.Counter
	spooled  prometheus.Counter
	replayed prometheus.Counter
	dropped  *prometheus.CounterVec
}

func newMetrics() metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gateflow", Subsystem: "producer", Name: name, Help: help})
	}
	m := metrics{
		emitted:  c("records_emitted_total", "Call records handed to Emit."),
		sent:     c("records_sent_total", "Call records written to Kafka directly."),
		spooled:  c("records_spooled_total", "Call records written to the on-disk spool (Kafka unreachable, write failed, or queue full)."),
		replayed: c("records_replayed_total", "Spooled call records written to Kafka."),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gateflow", Subsystem: "producer",
			Name: "records_dropped_total",
			Help: "Call records lost: spool_full (oldest spool segment dropped), corrupt (damaged spool data), spool_error (disk write failed), closed (emitted after Close)."},
			[]string{"reason"}),
	}
	for _, r := range []string{"spool_full", "corrupt", "spool_error", "closed"} {
		m.dropped.WithLabelValues(r)
	}
	return m
}

func (m metrics) register(reg prometheus.Registerer, p *Producer) error {
	g := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gateflow", Subsystem: "producer", Name: name, Help: help}, f)
	}
	cs := []prometheus.Collector{m.emitted, m.sent, m.spooled, m.replayed, m.dropped,
		g("queue_depth", "Call records waiting in memory.", func() float64 { return float64(len(p.queue)) }),
		g("spool_records", "Call records waiting in the spool.", func() float64 { return float64(p.spool.Len()) }),
		g("spool_bytes", "Bytes waiting in the spool.", func() float64 { return float64(p.spool.Bytes()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("producer: register metrics: %w", err)
		}
	}
	return nil
}
