//go:build integration

package eventsapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.temporal.io/sdk/client"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest/embeddedtemporal"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/events"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/registry"
	"github.com/gateflow/gateflow/workflows/triggers"
)

// countingRecorder counts the records of started orchestrations.
type countingRecorder struct {
	started atomic.Int64
	done    chan struct{}
	want    int64
	once    sync.Once
}

func (r *countingRecorder) Emit(rec record.Record) {
	if rec.Labels["result"] == triggers.ResultStarted && r.started.Add(1) == r.want {
		r.once.Do(func() { close(r.done) })
	}
}

// BenchmarkTopicTrigger compares, on one embedded Temporal server (SQLite
// in WAL mode, as gateflow dev runs it) in one run, the rate at which a
// topic trigger turns Kafka messages into started orchestrations (consume,
// filter, map, orchestrator start with its idempotency key, commit) with
// bare Temporal client starts of the same workflow input at the same
// concurrency (6 partitions x 8 in flight = 48): b.N messages per mode.
// Nothing runs the orchestrations (their task queue has no worker), so
// only starts are measured.
//
//	go test -tags integration -run '^$' -bench TopicTrigger -benchtime 3000x ./ingress/eventsapi/
func BenchmarkTopicTrigger(b *testing.B) {
	srv := embeddedtemporal.StartTemporalIn(b, filepath.Join(b.TempDir(), "temporal.db"))
	c := embeddedtemporal.Dial(b, srv)
	const partitions, inFlight = 6, sysconfig.DefaultTriggerConcurrency
	def, err := definition.Load([]byte(testDefinitions[len(testDefinitions)-1]), nil)
	if err != nil {
		b.Fatal(err)
	}
	reg, err := sysconfig.NewStatic(sysconfig.Config{
		Tenants: map[string]sysconfig.Tenant{"acme": {Uses: sysconfig.Uses{Definitions: []string{sysconfig.All}}}},
		Triggers: map[string]sysconfig.TopicTrigger{
			"bench": {Tenant: "acme", Topic: "bench.orders", StartOffset: "earliest", Filter: `input.value.n >= 0`,
				Start: &sysconfig.StartAction{Definition: "topic-it", Input: map[string]any{"n": "${{ input.value.n }}"}}},
		}}, def)
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	orch, err := orchestrator.New(orchestrator.Options{
		Client: c, TaskQueue: "bench-idle", Definitions: orchestrator.RegistryDefinitions(registry.NewStore(c, reg, quiet, registry.WithTaskQueue("bench-idle"))),
		ValidateDefinition: reg.ValidateFor,
		ValidateInput:      func(d *definition.Definition, in json.RawMessage) error { return d.ValidateInput(in) },
	})
	if err != nil {
		b.Fatal(err)
	}

	// Bare: ExecuteWorkflow of the input the trigger would start, with as
	// many in flight.
	b.ResetTimer()
	began := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range partitions * inFlight {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				in := workflows.OrchestrationInput{Definition: *def, Input: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
					Meta: activities.RunMeta{Tenant: "acme", Definition: def.Name, Version: def.Version}}
				if _, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: fmt.Sprintf("acme/bare-%d", i), TaskQueue: "bench-idle"},
					workflows.OrchestrationWorkflow, in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	bare := float64(b.N) / time.Since(began).Seconds()
	b.StopTimer()

	broker := embeddedtest.StartKafka(b, embedded.Topic{Name: "bench.orders", Partitions: partitions}, embedded.Topic{Name: "bench.orders.dlq", Partitions: 1})
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "bench.orders", Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond, BatchSize: 1000}
	msgs := make([]kafka.Message, b.N)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"n": %d}`, i)}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		b.Fatal(err)
	}
	_ = w.Close()
	rec := &countingRecorder{done: make(chan struct{}), want: int64(b.N)}
	topics, err := triggers.NewTopics(orch, events.NewSender(c, "bench-idle"), triggers.TopicOptions{Brokers: []string{broker}, Recorder: rec, Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.StartTimer()
	began = time.Now()
	go func() { _ = topics.Run(ctx, reg) }()
	select {
	case <-rec.done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("%d of %d started", rec.started.Load(), b.N)
	}
	trig := float64(b.N) / time.Since(began).Seconds()
	b.StopTimer()
	b.ReportMetric(bare, "bare-starts/s")
	b.ReportMetric(trig, "trigger-starts/s")
	b.ReportMetric(trig/bare, "ratio")
}
