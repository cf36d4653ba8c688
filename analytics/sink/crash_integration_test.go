//go:build integration

package sink_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/gateflow/gateflow/analytics/sink"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

// runSinkChild is the body of a re-executed test binary: one sink, configured
// from the environment, until it is killed.
func runSinkChild() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rows, _ := strconv.Atoi(os.Getenv("SINK_BATCH_ROWS"))
	cfg := sinkConfig(os.Getenv("SINK_BROKERS"), os.Getenv("SINK_GROUP"))
	cfg.BatchRows = rows
	cfg.BatchInterval = 3 * time.Second
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{os.Getenv("SINK_CLICKHOUSE")}})
	if err != nil {
		log.Error("open", "err", err)
		return 1
	}
	s, err := sink.New(cfg, conn, log)
	if err != nil {
		log.Error("new", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

func startSinkChild(t *testing.T, brokers, ch, group string, batchRows int) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), sinkChildEnv+"=1", "SINK_BROKERS="+brokers, "SINK_CLICKHOUSE="+ch,
		"SINK_GROUP="+group, fmt.Sprintf("SINK_BATCH_ROWS=%d", batchRows))
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// TestSinkKilledMidBatch: a sink process is SIGKILLed while it holds
// fetched but uncommitted messages (and possibly mid-insert); a new sink
// takes over and every count is exact.
func TestSinkKilledMidBatch(t *testing.T) {
	dsn, _ := embeddedtest.StartClickHouse(t)
	kafka := startKafka(t)
	conn := openCH(t, chAddr(dsn))

	recs := generate(2, 60_000)
	p := newProducer(t, kafka.addr())
	for _, r := range recs {
		p.Emit(r)
	}
	closeProducer(t, p)

	// Batches of 7000 rows: the child inserts a few, then is killed while
	// collecting or inserting the next one.
	child := startSinkChild(t, kafka.addr(), chAddr(dsn), "crash", 7000)
	waitFor(t, 90*time.Second, "the first batches stored", func() (bool, string) {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM calls").Scan(&n); err != nil {
			return false, err.Error()
		}
		return n >= 14000, fmt.Sprintf("%d rows", n)
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	before := queryUint(t, conn, "SELECT count() FROM calls")
	t.Logf("sink killed with %d of %d rows stored", before, len(recs))

	// The successor starts from the last committed offsets: some of what it
	// reads was stored by the killed sink and must be skipped.
	child2 := startSinkChild(t, kafka.addr(), chAddr(dsn), "crash", 7000)
	waitRaw(t, conn, uint64(len(recs)), 2*time.Minute)
	time.Sleep(2 * time.Second) // let a late duplicate show up if there were one
	checkExact(t, conn, expect(recs))
	_ = child2.Process.Signal(syscall.SIGTERM)
	_ = child2.Wait()
}
