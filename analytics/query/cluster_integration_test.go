//go:build integration

package query_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/gateflow/gateflow/analytics/callgen"
	"github.com/gateflow/gateflow/analytics/query"
	"github.com/gateflow/gateflow/analytics/schema"
	"github.com/gateflow/gateflow/analytics/sink"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

// TestClusterSchema lays the schema out on a two-node cluster and checks
// that records inserted through the sink's insert (into the Distributed
// raw table) are counted exactly once by raw reads, FINAL reads and the
// rollups (views on the local tables, read through Distributed tables),
// from either node, and that a retried insert with the same deduplication
// token adds nothing.
//
// libchdb's clickhouse-local runs neither Keeper, distributed DDL (ON
// CLUSTER) nor replicated tables (they stay read-only: no interserver
// endpoint), so the nodes are two shards without replicas and the
// migrations run on each (schema.Cluster.ShardsOnly). What this leaves
// untested is in docs/ANALYTICS.md, "ClickHouse cluster". The replicated
// layout's CREATE statements are run too (checkReplicatedDDL).
func TestClusterSchema(t *testing.T) {
	cluster := schema.Cluster{Name: "gf", ShardsOnly: true}
	ctx := context.Background()
	var conns []driver.Conn
	var dsns []string
	for _, ch := range embeddedtest.StartClickHouseCluster(t, cluster.Name, 2) {
		conns = append(conns, migrated(t, ch.DSN(), schema.Options{Cluster: cluster}))
		dsns = append(dsns, ch.DSN())
	}

	start := time.Now().UTC().Add(-3 * 24 * time.Hour).Truncate(24 * time.Hour)
	recs := callgen.New(7, start, 2*24*time.Hour+3*time.Hour).Generate(6_000)
	rows := make([]sink.Row, len(recs))
	want := map[string]uint64{}
	for i, r := range recs {
		rows[i] = sink.Row{Record: r, Topic: "t", Partition: int32(i % 2), Offset: int64(i)}
		want[r.Tenant]++
	}
	chunks := slices.Collect(slices.Chunk(rows, 1_000))
	for i, c := range chunks {
		if err := sink.InsertRowsToken(ctx, conns[0], c, fmt.Sprintf("cluster-test-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The sink retrying a batch whose outcome it did not see, through the
	// other node: the shards already hold their parts of it.
	if err := sink.InsertRowsToken(ctx, conns[1], chunks[2], "cluster-test-2"); err != nil {
		t.Fatal(err)
	}

	n := uint64(len(recs))
	var local uint64
	for i, conn := range conns {
		node := fmt.Sprintf("node %d", i+1)
		for _, q := range []string{
			"SELECT count() FROM calls",
			"SELECT count() FROM calls FINAL",
			"SELECT sum(calls) FROM calls_1m",
			"SELECT sum(calls) FROM calls_1d",
		} {
			if got := count(t, conn, q); got != n {
				t.Errorf("%s: %s = %d, want %d", node, q, got, n)
			}
		}
		// Offsets stored per partition, as the sink reads them.
		if got := count(t, conn, "SELECT toUInt64(max(max_offset)) FROM calls_kafka_offsets"); got != n-1 {
			t.Errorf("%s: max stored offset %d, want %d", node, got, n-1)
		}
		l := count(t, conn, "SELECT count() FROM calls_local")
		if l == 0 || l == n {
			t.Errorf("%s holds %d of %d rows: not sharded", node, l, n)
		}
		local += l
		q := query.New(conn)
		for tenant, w := range want {
			pts, err := q.Trend(ctx, query.TrendRequest{Filter: query.Filter{Tenant: tenant, From: start, To: start.Add(3 * 24 * time.Hour)},
				Interval: query.Day})
			if err != nil {
				t.Fatal(err)
			}
			var got uint64
			for _, p := range pts {
				got += p.Calls
			}
			if got != w {
				t.Errorf("%s: tenant %s trend counts %d calls, want %d", node, tenant, got, w)
			}
		}
	}
	if local != n {
		t.Errorf("local tables hold %d rows together, want %d", local, n)
	}

	// Records stored twice (a producer-side duplicate under another token)
	// meet on one shard, where FINAL collapses them.
	if err := sink.InsertRowsToken(ctx, conns[1], chunks[0][:100], "cluster-test-dup"); err != nil {
		t.Fatal(err)
	}
	for i, conn := range conns {
		if got := count(t, conn, "SELECT count() FROM calls"); got != n+100 {
			t.Errorf("node %d: %d raw rows after 100 duplicates, want %d", i+1, got, n+100)
		}
		if got := count(t, conn, "SELECT count() FROM calls FINAL"); got != n {
			t.Errorf("node %d: FINAL counts %d, want %d", i+1, got, n)
		}
	}

	// The flag turned off for a cluster's database: refused, not used.
	if err := schema.Migrate(ctx, conns[0], schema.Options{}); !errors.Is(err, schema.ErrLayout) {
		t.Errorf("single-server Migrate on the cluster's database: %v, want ErrLayout", err)
	}

	if err := conns[0].Exec(ctx, "CREATE DATABASE repl"); err != nil {
		t.Fatal(err)
	}
	checkReplicatedDDL(t, dsns[0])
}

// TestClusterSchema's last step: ClickHouse accepts the replicated
// layout's DDL (engines, Keeper paths with macros, views on the local
// tables) for the migrations up to the first ALTER: libchdb's replicated
// tables stay read-only, so ALTERs and inserts cannot run, and ON CLUSTER
// is taken out because it cannot run distributed DDL.
func checkReplicatedDDL(t *testing.T, dsn string) {
	ctx := context.Background()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	opts.Auth.Database = "repl"
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	migs, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, m := range migs {
		all = append(all, m.Statements...)
	}
	tables := schema.TablesCreated(all)
	c := schema.Cluster{Name: "gf"}
	ran, locals := 0, uint64(0)
	for _, m := range migs {
		stmts, err := c.Rewrite(m.Statements, tables)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(stmts, func(s string) bool { return strings.HasPrefix(s, "ALTER") }) {
			break
		}
		for _, s := range stmts {
			if strings.Contains(s, "ENGINE = Replicated") {
				locals++
			}
			if err := conn.Exec(ctx, strings.ReplaceAll(s, " ON CLUSTER gf", "")); err != nil {
				t.Fatalf("migration %04d: %v\n%s", m.Version, err, s)
			}
		}
		ran = m.Version
	}
	var replicated uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.replicas WHERE database = 'repl'").Scan(&replicated); err != nil {
		t.Fatal(err)
	}
	if ran < 4 || replicated != locals {
		t.Fatalf("ran migrations up to %04d, %d replicated tables", ran, replicated)
	}
	t.Logf("replicated DDL of migrations 0001..%04d accepted: %d replicated tables", ran, replicated)
}

func count(t *testing.T, conn driver.Conn, q string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
