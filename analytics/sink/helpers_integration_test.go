//go:build integration

package sink_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/gateflow/gateflow/analytics/producer"
	"github.com/gateflow/gateflow/analytics/sink"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

const (
	topic      = "gateflow.calls"
	dlqTopic   = "gateflow.calls.dlq"
	partitions = 6
)

// sinkChildEnv makes the re-executed test binary run a sink (see
// runSinkChild) so that a test can SIGKILL it.
const sinkChildEnv = "GATEFLOW_SINKTEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(sinkChildEnv) == "1" {
		os.Exit(runSinkChild())
	}
	embeddedtest.Main(m)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// kafkaBroker is the embedded broker (kfake) with its data on disk,
// restartable on the same port.
type kafkaBroker struct {
	t    testing.TB
	dir  string
	port int
	mu   sync.Mutex
	k    *embedded.Kafka
}

func startKafka(t testing.TB) *kafkaBroker {
	t.Helper()
	b := &kafkaBroker{t: t, dir: t.TempDir(), port: embeddedtest.FreePorts(t, 1)[0]}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *kafkaBroker) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

func (b *kafkaBroker) start() {
	b.t.Helper()
	var err error
	for range 50 { // the port may linger briefly after a stop
		var k *embedded.Kafka
		k, err = embedded.StartKafka(embedded.KafkaOptions{DataDir: b.dir, Port: b.port,
			Topics: []embedded.Topic{{Name: topic, Partitions: partitions}, {Name: dlqTopic, Partitions: partitions}}})
		if err == nil {
			b.mu.Lock()
			b.k = k
			b.mu.Unlock()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("start the embedded Kafka broker: %v", err)
}

func (b *kafkaBroker) stop() {
	b.mu.Lock()
	k := b.k
	b.k = nil
	b.mu.Unlock()
	if k != nil {
		k.Close()
	}
}

// proxy forwards TCP connections to a target that can change or go away,
// so that a restarted ClickHouse keeps the address the sink knows.
type proxy struct {
	l      net.Listener
	mu     sync.Mutex
	target string
	conns  map[net.Conn]struct{}
}

func newProxy(t testing.TB, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { _ = l.Close(); p.setTarget("") })
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

// setTarget changes the target and cuts every open connection.
func (p *proxy) setTarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) serve() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		if target == "" {
			_ = in.Close()
			continue
		}
		out, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
		go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
	}
}

func openCH(t testing.TB, addr string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second,
		MaxOpenConns: 4, ReadTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// chAddr turns a clickhouse:// DSN into host:port.
func chAddr(dsn string) string {
	s := strings.TrimPrefix(dsn, "clickhouse://")
	host, _, _ := strings.Cut(s, "/")
	return host
}

func sinkConfig(brokers string, group string) sink.Config {
	return sink.Config{Brokers: []string{brokers}, Topic: topic, DLQTopic: dlqTopic, GroupID: group,
		BatchRows: 20000, BatchInterval: 500 * time.Millisecond, RetryMin: 100 * time.Millisecond, RetryMax: time.Second}
}

// runSink runs a sink in this process until the test ends (or stop is
// called).
func runSink(t testing.TB, cfg sink.Config, chAddr string) (stop func()) {
	t.Helper()
	if cfg.ClickHouse == nil {
		// Inserts as in production: over the sink's own ch-go connection.
		cfg.ClickHouse = &clickhouse.Options{Addr: []string{chAddr}, DialTimeout: 2 * time.Second}
	}
	s, err := sink.New(cfg, openCH(t, chAddr), testLogger(t).With("sink", cfg.GroupID))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("sink.Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("sink did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newProducer(t testing.TB, brokers string) *producer.Producer {
	t.Helper()
	// Log first, as the ingress and the worker run it.
	p, err := producer.New(producer.Config{Brokers: []string{brokers}, Topic: topic, SpoolDir: t.TempDir(),
		WriteTimeout: 5 * time.Second, ReplayBackoffMax: time.Second, LogFirst: true}, testLogger(t).With("producer", 1))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func closeProducer(t testing.TB, p *producer.Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 200 ms until it returns true or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
}

func queryUint(t testing.TB, conn driver.Conn, q string, args ...any) uint64 {
	t.Helper()
	var v uint64
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// waitRaw waits until the raw table holds want distinct records and the
// rollup counts as many calls (an insert's rows can be visible in the raw
// table a moment before its materialized-view rows).
func waitRaw(t testing.TB, conn driver.Conn, want uint64, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d records in ClickHouse", want), func() (bool, string) {
		var n, r uint64
		if err := conn.QueryRow(context.Background(),
			"SELECT (SELECT uniqExact(id) FROM calls), (SELECT sum(calls) FROM calls_1d)").Scan(&n, &r); err != nil {
			return false, err.Error()
		}
		return n >= want && r >= want, fmt.Sprintf("%d distinct records, %d in the rollup", n, r)
	})
}
