//go:build integration

package embedded_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

func TestKafkaDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	port := embeddedtest.FreePorts(t, 1)[0]
	topics := []embedded.Topic{
		{Name: "calls", Partitions: 6, Retention: 7 * 24 * time.Hour},
		{Name: "calls.dlq", Partitions: 1, Retention: 7 * 24 * time.Hour},
	}
	opts := embedded.KafkaOptions{DataDir: dir, Port: port, Topics: topics}
	k, err := embedded.StartKafka(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(k.Cluster().PartitionInfos("calls")); got != 6 {
		t.Errorf("calls partitions = %d, want 6", got)
	}
	if ret := k.Cluster().TopicInfo("calls").Configs["retention.ms"]; ret == nil || *ret != "604800000" {
		t.Errorf("calls retention.ms = %v, want 604800000", ret)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := &kafka.Writer{
		Addr: kafka.TCP(k.Addr()), Topic: "calls", Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond,
	}
	var msgs []kafka.Message
	for i := range 100 {
		msgs = append(msgs, kafka.Message{Key: []byte(strconv.Itoa(i)), Value: []byte("v" + strconv.Itoa(i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
	w.Close()
	k.Close()

	// Restart on the same dir: topics are kept (not recreated) and the
	// records are still there.
	k2, err := embedded.StartKafka(opts)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer k2.Close()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{k2.Addr()}, Topic: "calls", GroupID: "test",
		StartOffset: kafka.FirstOffset, SessionTimeout: 6 * time.Second,
	})
	defer r.Close()
	seen := map[string]bool{}
	for len(seen) < 100 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("consume after restart (%d of 100 seen): %v", len(seen), err)
		}
		seen[string(m.Key)] = true
	}
}

func TestKafkaPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = embedded.StartKafka(embedded.KafkaOptions{Port: port})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v, want address already in use", err)
	}
	if err := embedded.CheckPortsFree([]embedded.Port{{Name: "Kafka", Flag: "--kafka-port", Addr: l.Addr().String()}}); err == nil ||
		!strings.Contains(err.Error(), "--kafka-port") {
		t.Fatalf("CheckPortsFree = %v, want an error naming --kafka-port", err)
	}
}

// TestRestartBroker: one broker of three restarts under a writer that
// keeps its connections; the writer's writes succeed again once the broker
// is back (its old connections were dropped, metadata refreshed). kfake's
// RemoveNode alone leaves them answering "not leader" forever.
func TestRestartBroker(t *testing.T) {
	k, err := embedded.StartKafka(embedded.KafkaOptions{Ports: []int{0, 0, 0},
		Topics: []embedded.Topic{{Name: "calls", Partitions: 6}}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if len(k.Addrs()) != 3 {
		t.Fatalf("addrs %v", k.Addrs())
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addrs()...), Topic: "calls", Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, MaxAttempts: 1,
		Transport: &kafka.Transport{MetadataTTL: time.Second}}
	defer w.Close()
	write := func() error {
		var msgs []kafka.Message
		for i := range 60 {
			msgs = append(msgs, kafka.Message{Key: []byte(strconv.Itoa(i)), Value: []byte("x")})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return w.WriteMessages(ctx, msgs...)
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	if err := k.RestartBroker(0, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := write()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still fail 20 s after the broker came back: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
