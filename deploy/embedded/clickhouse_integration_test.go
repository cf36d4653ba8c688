//go:build integration

package embedded_test

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

func TestMain(m *testing.M) { embeddedtest.Main(m) }

func TestClickHouseChildInsertQueryRestart(t *testing.T) {
	dir := t.TempDir()
	ch := embeddedtest.StartClickHouseIn(t, dir)
	pid := ch.Pid()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := openCH(t, ch.DSN())
	if err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS calls (id String, n UInt64) ENGINE = MergeTree ORDER BY id`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO calls (id, n)")
	if err != nil {
		t.Fatalf("prepare batch: %v", err)
	}
	for i := range 1000 {
		if err := batch.Append("id-"+strconv.Itoa(i), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("send batch: %v", err)
	}
	assertSum(t, conn, 499500)
	conn.Close()

	start := time.Now()
	if err := ch.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("stop took %s", time.Since(start))
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		t.Errorf("child %d still present after Stop: %s", pid, st)
	}

	// Restart on the same data; this time stop with a client connection
	// still open, which makes ClickHouse's own shutdown wait.
	ch2 := embeddedtest.StartClickHouseIn(t, dir)
	conn2 := openCH(t, ch2.DSN())
	defer conn2.Close()
	assertSum(t, conn2, 499500)
	start = time.Now()
	if err := ch2.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("stop with an open connection took %s", time.Since(start))
	if _, err := os.Stat("/proc/" + strconv.Itoa(ch2.Pid())); err == nil {
		t.Errorf("child %d still present after Stop", ch2.Pid())
	}
}

func openCH(t *testing.T, dsn string) clickhouse.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func assertSum(t *testing.T, conn clickhouse.Conn, want uint64) {
	t.Helper()
	var got uint64
	if err := conn.QueryRow(context.Background(), "SELECT sum(n) FROM calls").Scan(&got); err != nil {
		t.Fatalf("query: %v", err)
	}
	if got != want {
		t.Fatalf("sum = %d, want %d", got, want)
	}
}

func TestClickHouseChildEarlyExitReported(t *testing.T) {
	lib := embeddedtest.LibCHDB(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := embeddedtest.FreePorts(t, 1)[0]
	exe, _ := os.Executable()
	tests := []struct {
		name string
		lib  string
		tcp  int
		want string
	}{
		{"missing library", "/nonexistent/libchdb.so", free, "cannot open shared object"},
		{"port taken", lib, busy.Addr().(*net.TCPAddr).Port, "exited before it was ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ports := embeddedtest.FreePorts(t, 1)
			_, err := embedded.StartClickHouse(ctx, embedded.ClickHouseOptions{
				DataDir: t.TempDir(), TCPPort: tt.tcp, HTTPPort: ports[0], LibPath: tt.lib,
				Command: []string{exe}, Env: []string{"GATEFLOW_EMBEDDEDTEST_CLICKHOUSE_CHILD=1"},
			})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			t.Logf("error: %v", err)
		})
	}
}
