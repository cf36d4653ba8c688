//go:build integration

package sink_test

import (
	"testing"
	"time"

	"github.com/gateflow/gateflow/analytics/schema"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

// TestClusterPipeline runs the whole record path on a two-node ClickHouse
// cluster (two shards, see embeddedtest.StartClickHouseCluster): two sinks,
// each connected to another node, apply the cluster schema on their node
// and insert through the Distributed raw table, with producer-side
// duplicates in the stream; the raw table, FINAL and every rollup level,
// read through the Distributed tables from either node, count each record
// once.
func TestClusterPipeline(t *testing.T) {
	nodes := embeddedtest.StartClickHouseCluster(t, "gf", 2)
	kafka := startKafka(t)
	cfg := sinkConfig(kafka.addr(), "cluster")
	cfg.BatchRows = 5000
	cfg.Cluster = schema.Cluster{Name: "gf", ShardsOnly: true}
	for _, n := range nodes {
		runSink(t, cfg, chAddr(n.DSN()))
	}

	recs := generate(5, 20_000)
	p := newProducer(t, kafka.addr())
	for i, r := range recs {
		p.Emit(r)
		if i%10 == 0 {
			p.Emit(r) // a producer-side duplicate
		}
	}
	closeProducer(t, p)
	for _, n := range nodes {
		waitRaw(t, openCH(t, chAddr(n.DSN())), uint64(len(recs)), 2*time.Minute)
	}
	time.Sleep(2 * time.Second) // let a late duplicate show up if there were one
	for _, n := range nodes {
		conn := openCH(t, chAddr(n.DSN()))
		checkExact(t, conn, expect(recs))
		if l := queryUint(t, conn, "SELECT count() FROM calls_local"); l == 0 || l == uint64(len(recs)) {
			t.Errorf("node %s holds %d of %d records: not sharded", n.NativeAddr(), l, len(recs))
		}
	}
}
