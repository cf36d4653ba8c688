//go:build integration

package embedded_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
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

// TestNativeClientResetKeepsClickHouse: a native-protocol client whose
// connection is reset (what a client process killed with unread data in its
// socket does) must not take the embedded ClickHouse down. Before the child
// relayed its native port, clickhouse-local aborted on the idle case every
// time ("Terminate called for uncaught exception ... Connection reset by
// peer").
func TestNativeClientResetKeepsClickHouse(t *testing.T) {
	ch := embeddedtest.StartClickHouseIn(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	setup := openCH(t, ch.DSN())
	if err := setup.Exec(ctx, `CREATE TABLE calls (id String, n UInt64) ENGINE = MergeTree ORDER BY id`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	setup.Close()

	tests := []struct {
		name string
		// before leaves the connection in the state it is reset in.
		before func(clickhouse.Conn) error
	}{
		{"idle between queries", func(c clickhouse.Conn) error { return c.Ping(ctx) }},
		{"insert waiting for data", func(c clickhouse.Conn) error {
			_, err := c.PrepareBatch(ctx, "INSERT INTO calls (id, n)")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sock *net.TCPConn
			conn, err := clickhouse.Open(&clickhouse.Options{
				Addr:         []string{ch.NativeAddr()},
				MaxOpenConns: 1,
				DialContext: func(ctx context.Context, addr string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
					if err == nil {
						sock = c.(*net.TCPConn)
					}
					return c, err
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := tt.before(conn); err != nil {
				t.Fatal(err)
			}
			// SO_LINGER 0: close sends a reset instead of an end of stream.
			if err := sock.SetLinger(0); err != nil {
				t.Fatal(err)
			}
			sock.Close()
			// ClickHouse has handled the reset once it no longer counts the
			// connection; it must still be there and answer.
			waitNoNativeConnections(t, ch)
			if got, err := httpQuery(ch, "SELECT count() FROM calls"); err != nil || got != "0" {
				t.Fatalf("count after the reset = %q, %v; want 0", got, err)
			}
		})
	}
}

// waitNoNativeConnections waits until ClickHouse counts no native-protocol
// connection, failing at once if the child exits.
func waitNoNativeConnections(t *testing.T, ch *embedded.ClickHouse) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		got, err := httpQuery(ch, "SELECT value FROM system.metrics WHERE metric = 'TCPConnection'")
		if err == nil && got == "0" {
			return
		}
		last = fmt.Sprintf("%q, %v", got, err)
		select {
		case <-ch.Exited():
			t.Fatalf("ClickHouse exited (%v) after a client's connection was reset; log ends with:\n%s",
				ch.ExitErr(), ch.LogTail())
		case <-deadline:
			t.Fatalf("ClickHouse still counts native connections after 30s: %s", last)
		case <-tick.C:
		}
	}
}

// httpQuery runs q over ClickHouse's HTTP port, which is not the one under
// test, and returns the trimmed answer.
func httpQuery(ch *embedded.ClickHouse, q string) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Post(ch.HTTPURL()+"/", "text/plain", strings.NewReader(q))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return strings.TrimSpace(string(body)), nil
}
