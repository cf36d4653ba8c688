//go:build integration

package eventsapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest/embeddedtemporal"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/events"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/registry"
	"github.com/gateflow/gateflow/workflows/triggers"
)

// childEnv turns the test binary into a trigger process: its value is the
// JSON childConfig.
const childEnv = "GATEFLOW_TEST_TRIGGER_CHILD"

// childConfig is what a trigger process needs.
type childConfig struct {
	HostPort  string `json:"host_port"`
	Namespace string `json:"namespace"`
	Broker    string `json:"broker"`
	Topic     string `json:"topic"`
	// TaskQueue is where its orchestrations start (no worker polls it:
	// the test counts starts, it does not run them).
	TaskQueue string `json:"task_queue"`
}

// runChild is a trigger process: the same triggers.Topics the worker and
// `gateflow triggers` run, on a static configuration, until SIGTERM (or
// SIGKILL, which is the point). It prints "started N" as it goes.
func runChild(raw string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := client.DialContext(ctx, client.Options{HostPort: cfg.HostPort, Namespace: cfg.Namespace, Logger: tlog.NewStructuredLogger(log)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 2
	}
	defer c.Close()
	def, err := definition.Load([]byte(testDefinitions[len(testDefinitions)-1]), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	reg, err := sysconfig.NewStatic(sysconfig.Config{
		Tenants: map[string]sysconfig.Tenant{"acme": {Uses: sysconfig.Uses{Definitions: []string{sysconfig.All}}}},
		Triggers: map[string]sysconfig.TopicTrigger{
			"orders": {Tenant: "acme", Topic: cfg.Topic, StartOffset: "earliest", Filter: `input.headers.type != "ignored"`,
				Start: &sysconfig.StartAction{Definition: "topic-it", Input: map[string]any{"n": "${{ input.value.n }}"}}},
		}}, def)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	store := registry.NewStore(c, reg, log, registry.WithTaskQueue(cfg.TaskQueue))
	orch, err := orchestrator.New(orchestrator.Options{
		Client: c, TaskQueue: cfg.TaskQueue, Definitions: orchestrator.RegistryDefinitions(store),
		ValidateDefinition: reg.ValidateFor,
		ValidateInput:      func(d *definition.Definition, in json.RawMessage) error { return d.ValidateInput(in) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	topics, err := triggers.NewTopics(orch, events.NewSender(c, cfg.TaskQueue), triggers.TopicOptions{
		Brokers: []string{cfg.Broker}, Recorder: &recordtest.Sink{}, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("triggers ready")
	if err := topics.Run(ctx, reg); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

// triggerChild is a trigger process started from the test binary.
type triggerChild struct {
	cmd    *exec.Cmd
	stderr *strings.Builder
	mu     sync.Mutex
}

func startTriggerChild(t *testing.T, cfg childConfig) *triggerChild {
	t.Helper()
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	ch := &triggerChild{cmd: cmd, stderr: &strings.Builder{}}
	cmd.Stderr = lockedWriter{ch}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.kill)
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		n, _ := io.ReadAtLeast(out, buf, len("triggers ready"))
		if strings.Contains(string(buf[:n]), "triggers ready") {
			close(ready)
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("trigger child not ready: %s", ch.output())
	}
	return ch
}

type lockedWriter struct{ c *triggerChild }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.stderr.Write(p)
}

func (c *triggerChild) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// kill sends SIGKILL and reaps the process.
func (c *triggerChild) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// TestTopicTriggerSurvivesKill: 10,000 messages (plus ignored and poison
// ones) on 6 partitions; the trigger process is SIGKILLed while starting
// them and another takes over its consumer group: exactly 10,000
// orchestrations start, the poison messages reach the dead-letter topic.
func TestTopicTriggerSurvivesKill(t *testing.T) {
	// Its own Temporal server, as gateflow dev runs it (SQLite file in WAL
	// mode, much faster at starts than the in-memory test server).
	srv := embeddedtemporal.StartTemporalIn(t, filepath.Join(t.TempDir(), "temporal.db"))
	s := &stack{c: embeddedtemporal.Dial(t, srv), ns: srv.Namespace()}
	const (
		topic   = "it.orders"
		poison  = 10
		ignored = 20
	)
	// GATEFLOW_IT_TOPIC_MESSAGES lowers the count on a machine too busy
	// to start 10,000 orchestrations in a couple of minutes.
	messages := 10_000
	if v, err := strconv.Atoi(os.Getenv("GATEFLOW_IT_TOPIC_MESSAGES")); err == nil && v >= 100 {
		messages = v
	}
	broker := embeddedtest.StartKafka(t, embedded.Topic{Name: topic, Partitions: 6}, embedded.Topic{Name: topic + ".dlq", Partitions: 1})
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, BatchSize: 1000}
	var msgs []kafka.Message
	for i := range messages {
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"n": %d}`, i)})
		if i%(messages/poison) == 0 {
			msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "p%d", i), Value: []byte(`{"n": oops`)})
		}
		if i%(messages/ignored) == 0 {
			msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "i%d", i), Value: []byte(`{"n": -1}`),
				Headers: []kafka.Header{{Key: "type", Value: []byte("ignored")}}})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	cfg := childConfig{HostPort: srv.FrontendAddr(), Namespace: srv.Namespace(), Broker: broker, Topic: topic, TaskQueue: "topic-idle"}
	query := "GateflowDefinition = 'topic-it'"
	began := time.Now()
	first := startTriggerChild(t, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("first trigger process:\n%s", first.output())
		}
	})
	// Counting is a visibility query the busy server may answer late:
	// poll it once a second, tolerating timeouts.
	polls := 0
	reached := func(n int64) func() bool {
		return func() bool {
			c, err := s.tryCount(query)
			if polls++; polls%10 == 0 || err != nil {
				t.Logf("%.1fs: %d started (%v)", time.Since(began).Seconds(), c, err)
			}
			if err == nil && c >= n {
				return true
			}
			time.Sleep(900 * time.Millisecond)
			return false
		}
	}
	waitFor(t, 5*time.Minute, "a quarter of the starts", reached(int64(messages/4)))
	first.kill()
	t.Logf("first trigger process SIGKILLed after %.1fs", time.Since(began).Seconds())
	second := startTriggerChild(t, cfg)
	waitFor(t, 10*time.Minute, "every start", reached(int64(messages)))
	t.Logf("%d starts after %.1fs", messages, time.Since(began).Seconds())
	// Nothing more comes: every start was deduplicated, not repeated.
	time.Sleep(2 * time.Second)
	if n := s.count(t, query); n != int64(messages) {
		t.Fatalf("%d orchestrations, want exactly %d", n, messages)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic + ".dlq", Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	origins := map[string]bool{}
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	for len(origins) < poison {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("dead letters: %d distinct of %d: %v\nchild: %s", len(origins), poison, err, second.output())
		}
		var reason string
		for _, h := range m.Headers {
			switch h.Key {
			case triggers.HeaderOrigin:
				origins[string(h.Value)] = true
			case triggers.HeaderError:
				reason = string(h.Value)
			}
		}
		if !strings.Contains(reason, "not JSON") {
			t.Errorf("dead letter reason %q", reason)
		}
	}
}
