//go:build integration

package replicated

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

// model is a trivial read model: key -> value.
type model struct {
	mu sync.Mutex
	m  map[string]string
	n  int
}

func (m *model) apply(r Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var v string
	_ = json.Unmarshal(r.Value, &v)
	m.m[r.Key] = v
	m.n++
}

func (m *model) get(k string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[k]
}

func rec(key string, seq uint64, v string) Record {
	b, _ := json.Marshal(v)
	return Record{Key: key, Seq: seq, Value: b}
}

// TestTailAgainstKafka: records written by the Publisher (duplicates and
// out-of-order sequences included) reach a Tail, which reports ready once
// it has read what the topic held at its start; a Tail started later
// rebuilds the same state from the compacted topic; the topic is created
// compacted.
func TestTailAgainstKafka(t *testing.T) {
	addr := embeddedtest.StartKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "test.replicated"
	if err := EnsureTopic(ctx, []string{addr}, nil, topic, 3); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopic(ctx, []string{addr}, nil, topic, 3); err != nil {
		t.Fatalf("second EnsureTopic: %v", err)
	}
	kc := &kafka.Client{Addr: kafka.TCP(addr)}
	cfg, err := kc.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"cleanup.policy"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Resources) != 1 || len(cfg.Resources[0].ConfigEntries) != 1 || cfg.Resources[0].ConfigEntries[0].ConfigValue != "compact" {
		t.Fatalf("topic config: %+v", cfg.Resources)
	}

	pub := NewPublisher(PublisherConfig{Brokers: []string{addr}})
	defer pub.Close()
	var batch []Record
	for i := range 50 {
		batch = append(batch, rec(fmt.Sprintf("k%02d", i%10), uint64(i+1), fmt.Sprintf("v%d", i)))
	}
	// A retried batch, and an old value arriving late: both ignored.
	if err := pub.Publish(ctx, PublishInput{Topic: topic, Records: batch}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, PublishInput{Topic: topic, Records: batch[40:]}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, PublishInput{Topic: topic, Records: []Record{rec("k03", 4, "stale")}}); err != nil {
		t.Fatal(err)
	}

	m1 := &model{m: map[string]string{}}
	t1 := NewTail(TailConfig{Brokers: []string{addr}, Topic: topic}, m1.apply)
	go func() { _ = t1.Run(ctx) }()
	select {
	case <-t1.Ready():
	case <-ctx.Done():
		t.Fatal("tail never caught up")
	}
	for i := range 10 {
		k := fmt.Sprintf("k%02d", i)
		if got, want := m1.get(k), fmt.Sprintf("v%d", 40+i); got != want {
			t.Fatalf("%s = %q, want %q", k, got, want)
		}
	}
	if t1.Applied() != 50 || t1.Skipped() != 11 {
		t.Fatalf("applied %d skipped %d", t1.Applied(), t1.Skipped())
	}

	// A change after start reaches the running tail.
	if err := pub.Publish(ctx, PublishInput{Topic: topic, Records: []Record{rec("k00", 100, "new")}}); err != nil {
		t.Fatal(err)
	}
	for m1.get("k00") != "new" {
		if ctx.Err() != nil {
			t.Fatal("change not seen")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A replica started now rebuilds the same state.
	m2 := &model{m: map[string]string{}}
	t2 := NewTail(TailConfig{Brokers: []string{addr}, Topic: topic}, m2.apply)
	go func() { _ = t2.Run(ctx) }()
	<-t2.Ready()
	for i := range 10 {
		k := fmt.Sprintf("k%02d", i)
		if m1.get(k) != m2.get(k) {
			t.Fatalf("%s: %q vs %q", k, m1.get(k), m2.get(k))
		}
	}
}
