// Package embeddedtest starts the real parts for integration tests: a
// ClickHouse child process (libchdb) and a kfake broker, on free loopback
// ports and temporary dirs, cleaned up with the test.
//
// A test package that starts ClickHouse must call Main from its TestMain,
// because the ClickHouse child is the test binary itself, re-executed:
//
//	func TestMain(m *testing.M) { embeddedtest.Main(m) }
//
// Tests that need ClickHouse fail when libchdb cannot be obtained (npm
// missing, no network), unless GATEFLOW_SKIP_CLICKHOUSE=1 is set, which
// turns the failure into a skip.
package embeddedtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gateflow/gateflow/deploy/embedded"
)

// childEnv tells a re-executed test binary to run the ClickHouse child.
const childEnv = "GATEFLOW_EMBEDDEDTEST_CLICKHOUSE_CHILD"

// Main runs the tests of m, or, when this process was started by
// StartClickHouse as the ClickHouse child, serves ClickHouse instead. Call
// it from TestMain; it does not return.
func Main(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild(os.Args[1:]))
	}
	mainRan = true
	os.Exit(m.Run())
}

// mainRan is set by Main: without it the re-executed child would run the
// tests instead of ClickHouse.
var mainRan bool

func runChild(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := embedded.ParseCHDBChildArgs(args)
	if err == nil {
		err = embedded.RunCHDBChild(ctx, a)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "clickhouse child:", err)
		return 1
	}
	return 0
}

var (
	libOnce sync.Once
	libPath string
	libErr  error
)

// LibCHDB returns libchdb.so, fetching it into the cache dir once per test
// binary (and once per machine). GATEFLOW_LIBCHDB overrides the path.
func LibCHDB(t testing.TB) string {
	t.Helper()
	libOnce.Do(func() {
		if p := os.Getenv("GATEFLOW_LIBCHDB"); p != "" {
			libPath = p
			return
		}
		dir, err := embedded.DefaultCacheDir()
		if err != nil {
			libErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		libPath, libErr = embedded.EnsureLibCHDB(ctx, dir, os.Stderr)
	})
	if libErr != nil {
		msg := fmt.Sprintf("ClickHouse (libchdb) unavailable: %v\n"+
			"fix: install npm and allow access to registry.npmjs.org (or run `gateflow dev --prepare-only` once), "+
			"or set GATEFLOW_LIBCHDB=/path/to/libchdb.so; "+
			"set GATEFLOW_SKIP_CLICKHOUSE=1 to skip ClickHouse tests", libErr)
		if os.Getenv("GATEFLOW_SKIP_CLICKHOUSE") == "1" {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	return libPath
}

// StartClickHouse starts a ClickHouse child on free ports with a temporary
// data dir and stops it when the test ends. It returns the clickhouse-go DSN
// and the handle (for HTTPURL, Stop, restarts with StartClickHouseIn).
func StartClickHouse(t testing.TB) (dsn string, ch *embedded.ClickHouse) {
	t.Helper()
	ch = StartClickHouseIn(t, t.TempDir())
	return ch.DSN(), ch
}

// StartClickHouseIn is StartClickHouse on a given data dir, to test restarts
// on the same data. The child's log is dataDir/clickhouse-child.log; it is
// printed when the test fails.
func StartClickHouseIn(t testing.TB, dataDir string) *embedded.ClickHouse {
	t.Helper()
	ports := FreePorts(t, 2)
	return StartClickHouseConfig(t, dataDir, ports[0], ports[1], "")
}

// StartClickHouseConfig is StartClickHouseIn on given ports with a
// ClickHouse config file read on top of the flags ("" for none), for tests
// that start several servers that know each other (<remote_servers>).
func StartClickHouseConfig(t testing.TB, dataDir string, tcpPort, httpPort int, configFile string) *embedded.ClickHouse {
	t.Helper()
	lib := LibCHDB(t)
	if !mainRan {
		t.Fatal("embeddedtest.StartClickHouse needs `func TestMain(m *testing.M) { embeddedtest.Main(m) }` in the test package")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ch, err := embedded.StartClickHouse(ctx, embedded.ClickHouseOptions{
		DataDir:    filepath.Join(dataDir, "clickhouse"),
		TCPPort:    tcpPort,
		HTTPPort:   httpPort,
		LibPath:    lib,
		Command:    []string{exe},
		Env:        []string{childEnv + "=1"},
		LogFile:    filepath.Join(dataDir, "clickhouse-child.log"),
		ConfigFile: configFile,
	})
	if err != nil {
		t.Fatalf("start ClickHouse: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ch.Stop(ctx); err != nil {
			t.Errorf("stop ClickHouse: %v", err)
		}
		if t.Failed() {
			t.Logf("ClickHouse child log tail:\n%s", ch.LogTail())
		}
	})
	return ch
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. A port may be
// taken by someone else before it is used; tests live with that small race.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// StartKafka starts a one-broker kfake cluster on a free port with the given
// topics (kept in memory) and closes it when the test ends. It returns the
// bootstrap address.
func StartKafka(t testing.TB, topics ...embedded.Topic) (addr string) {
	t.Helper()
	k, err := embedded.StartKafka(embedded.KafkaOptions{Topics: topics})
	if err != nil {
		t.Fatalf("start Kafka: %v", err)
	}
	t.Cleanup(k.Close)
	return k.Addr()
}

// StartKafkaIn is StartKafka persisting to dataDir, to test restarts; the
// caller may Close the broker early (Close is idempotent).
func StartKafkaIn(t testing.TB, dataDir string, topics ...embedded.Topic) *embedded.Kafka {
	t.Helper()
	k, err := embedded.StartKafka(embedded.KafkaOptions{DataDir: dataDir, Topics: topics})
	if err != nil {
		t.Fatalf("start Kafka: %v", err)
	}
	t.Cleanup(k.Close)
	return k
}

// clusterConfig is a node's config in StartClickHouseCluster: the shard
// macro, ClickHouse's in-process test Keeper, and the cluster of every node.
const clusterConfig = `<clickhouse>
    <zookeeper><implementation>testkeeper</implementation></zookeeper>
    <macros><shard>%s</shard><replica>r1</replica></macros>
    <remote_servers><%s>%s</%s></remote_servers>
</clickhouse>
`

// StartClickHouseCluster starts n ClickHouse children that form the
// cluster name of n shards with one replica each (libchdb's
// clickhouse-local runs neither distributed DDL nor active replicated
// tables, so there are no replicas; see schema.Cluster.ShardsOnly). Each
// node has the macros shard (01, 02, ...) and replica (r1) and the
// in-process test Keeper, enough to create replicated tables (which stay
// read-only). They stop when the test ends.
func StartClickHouseCluster(t testing.TB, name string, n int) []*embedded.ClickHouse {
	t.Helper()
	ports := FreePorts(t, 2*n)
	var shards string
	for i := range n {
		shards += fmt.Sprintf("<shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>%d</port></replica></shard>", ports[2*i])
	}
	dir := t.TempDir()
	var out []*embedded.ClickHouse
	for i := range n {
		nodeDir := filepath.Join(dir, fmt.Sprintf("node%02d", i+1))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(nodeDir, "cluster.xml")
		if err := os.WriteFile(cfg, fmt.Appendf(nil, clusterConfig, fmt.Sprintf("%02d", i+1), name, shards, name), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, StartClickHouseConfig(t, nodeDir, ports[2*i], ports[2*i+1], cfg))
	}
	return out
}
