package producer

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/spool"
)

// deadBroker returns an address where nothing listens.
func deadBroker(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func testRecord(i int) record.Record {
	r := record.New(calls.KindHTTP, time.UnixMilli(1_750_000_000_000+int64(i)))
	r.Tenant = "t1"
	r.Target = "svc"
	r.WorkflowID = fmt.Sprintf("wf-%d", i%10)
	r.Outcome = record.OutcomeOK
	r.LatencyMS = float64(i)
	return r
}

// TestUnreachableKafkaSpoolsEverything: with no broker, every record ends in
// the spool after a graceful Close, nothing is dropped, and the spool holds
// exactly the emitted records.
func TestUnreachableKafkaSpoolsEverything(t *testing.T) {
	for _, logFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("LogFirst=%v", logFirst), func(t *testing.T) { testUnreachableKafkaSpoolsEverything(t, logFirst) })
	}
}

func testUnreachableKafkaSpoolsEverything(t *testing.T, logFirst bool) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	p, err := New(Config{Brokers: []string{deadBroker(t)}, Topic: "calls", SpoolDir: dir,
		QueueSize: 64, WriteTimeout: 2 * time.Second, Registerer: reg, LogFirst: logFirst}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	ids := map[string]bool{}
	for i := range n {
		r := testRecord(i)
		ids[r.ID] = true
		p.Emit(r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value(p.m.emitted); got != n {
		t.Fatalf("emitted %v", got)
	}
	if got := value(p.m.spooled); got != n {
		t.Fatalf("spooled %v, want %d", got, n)
	}
	// Emit after Close is counted as dropped, not lost silently.
	p.Emit(testRecord(n))
	if got := value(p.m.dropped.WithLabelValues("closed")); got != 1 {
		t.Fatalf("dropped after close %v", got)
	}

	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if sp.Len() != n {
		t.Fatalf("spool holds %d, want %d", sp.Len(), n)
	}
	for {
		b, err := sp.Peek(1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Entries) == 0 {
			break
		}
		for _, e := range b.Entries {
			r, err := record.Decode(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Key) != r.Key() || !ids[r.ID] {
				t.Fatalf("unexpected entry key=%s id=%s", e.Key, r.ID)
			}
			delete(ids, r.ID)
		}
		_ = sp.Ack(b)
	}
	if len(ids) != 0 {
		t.Fatalf("%d records missing from the spool", len(ids))
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 8 {
		t.Fatalf("metrics: %d families, %v", len(mfs), err)
	}
}

// TestEmitFillsMissingFields: a zero record still gets an id, a schema and a
// timestamp, so the sink accepts it.
func TestEmitFillsMissingFields(t *testing.T) {
	dir := t.TempDir()
	p, err := New(Config{Brokers: []string{deadBroker(t)}, Topic: "calls", SpoolDir: dir, WriteTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Emit(record.Record{Kind: calls.KindIngress, Outcome: record.OutcomeOK, Tenant: "t"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sp, _ := spool.Open(spool.Options{Dir: dir})
	defer sp.Close()
	b, _ := sp.Peek(10)
	if len(b.Entries) != 1 {
		t.Fatalf("%d entries", len(b.Entries))
	}
	if _, err := record.Decode(b.Entries[0].Value); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Topic: "t", SpoolDir: "d"},
		{Brokers: []string{"x:1"}, SpoolDir: "d"},
		{Brokers: []string{"x:1"}, Topic: "t"},
	} {
		if _, err := New(c, nil); err == nil {
			t.Fatalf("no error for %+v", c)
		}
	}
}

// BenchmarkEmitSpooling measures Emit while Kafka is down (records go to the
// spool in the background): the caller's cost stays the same.
func BenchmarkEmitUnreachable(b *testing.B) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	_ = l.Close()
	p, err := New(Config{Brokers: []string{addr}, Topic: "calls", SpoolDir: b.TempDir(), WriteTimeout: time.Second}, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := testRecord(1)
	b.ReportAllocs()
	for b.Loop() {
		p.Emit(r)
	}
	b.StopTimer()
	_ = p.Close(context.Background())
}

// TestLogFirstSurvivesSIGKILL: in log-first mode a record is in the spool
// as soon as Emit returns: a process SIGKILLed mid-stream (Kafka
// unreachable, so nothing left the process) leaves every record whose Emit
// returned. The emitting process is this test binary run again.
func TestLogFirstSurvivesSIGKILL(t *testing.T) {
	if dir := os.Getenv("PRODUCER_TEST_CHILD_DIR"); dir != "" {
		p, err := New(Config{Brokers: []string{os.Getenv("PRODUCER_TEST_CHILD_BROKER")}, Topic: "calls", SpoolDir: dir,
			LogFirst: true, WriteTimeout: time.Second}, nil)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			p.Emit(testRecord(i))
			fmt.Println(i) // Emit returned: the call would be answered now
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLogFirstSurvivesSIGKILL$")
	cmd.Env = append(os.Environ(), "PRODUCER_TEST_CHILD_DIR="+dir, "PRODUCER_TEST_CHILD_BROKER="+deadBroker(t))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	answered := 0
	for sc.Scan() {
		if _, err := strconv.Atoi(sc.Text()); err != nil {
			t.Fatalf("child: %s", sc.Text())
		}
		if answered++; answered == 2000 {
			_ = cmd.Process.Kill()
			break
		}
	}
	_ = cmd.Wait()
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if sp.Len() < int64(answered) {
		t.Fatalf("after SIGKILL the log holds %d records, %d were answered", sp.Len(), answered)
	}
}

func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	_ = (<-ch).Write(&m)
	return m.GetCounter().GetValue()
}
