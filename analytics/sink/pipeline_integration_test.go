//go:build integration

package sink_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/callgen"
	"github.com/gateflow/gateflow/analytics/producer"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/spool"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

// expected holds numbers computed in the test from the generated records.
type expected struct {
	total     uint64
	perTenant map[string]tenantTotals
	approvals map[approvalKey]approvalTotals
}

type tenantTotals struct {
	Calls, Errors       uint64
	TokensIn, TokensOut int64
}

// approvalKey is how the approval rollups group decisions (their time
// column aside): one row per role of the decider.
type approvalKey struct {
	Tenant, Role, Definition, Decision string
}

type approvalTotals struct {
	Decisions                    uint64
	TurnaroundSum, TurnaroundMax float64
}

func expect(recs []record.Record) expected {
	e := expected{perTenant: map[string]tenantTotals{}, approvals: map[approvalKey]approvalTotals{}}
	for _, r := range recs {
		if r.Kind == calls.KindApproval {
			// As approvals_1m_mv: counted once under each of the
			// decider's roles; the decision label, else the outcome.
			decision := r.Labels[record.LabelDecision]
			if decision == "" {
				decision = string(r.Outcome)
			}
			for _, role := range strings.Split(r.Labels[record.LabelRoles], ",") {
				k := approvalKey{r.Tenant, role, r.Definition, decision}
				a := e.approvals[k]
				a.Decisions++
				a.TurnaroundSum += r.LatencyMS
				a.TurnaroundMax = max(a.TurnaroundMax, r.LatencyMS)
				e.approvals[k] = a
			}
		}
		e.total++
		tt := e.perTenant[r.Tenant]
		tt.Calls++
		if r.Outcome != record.OutcomeOK {
			tt.Errors++
		}
		tt.TokensIn += r.TokensIn
		tt.TokensOut += r.TokensOut
		e.perTenant[r.Tenant] = tt
	}
	return e
}

// checkExact asserts that raw queries (with and without FINAL) and the
// rollups give exactly the expected numbers: no record lost, none counted
// twice.
func checkExact(t *testing.T, conn driver.Conn, e expected) {
	t.Helper()
	ctx := context.Background()
	if got := queryUint(t, conn, "SELECT count() FROM calls"); got != e.total {
		t.Errorf("raw count() = %d, want %d (duplicates or losses reached the raw table)", got, e.total)
	}
	if got := queryUint(t, conn, "SELECT count() FROM calls FINAL"); got != e.total {
		t.Errorf("raw count() FINAL = %d, want %d", got, e.total)
	}
	if got := queryUint(t, conn, "SELECT uniqExact(id) FROM calls"); got != e.total {
		t.Errorf("distinct ids = %d, want %d", got, e.total)
	}
	// Every level of the cascade (calls_1m, then calls_1h fed by it, then
	// calls_1d) holds exactly the stored records.
	for _, table := range []string{"calls_1m", "calls_1h", "calls_1d"} {
		rows, err := conn.Query(ctx, `SELECT tenant, sum(calls), sum(errors), sum(tokens_in), sum(tokens_out)
		FROM `+table+` GROUP BY tenant`)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]tenantTotals{}
		for rows.Next() {
			var tenant string
			var tt tenantTotals
			if err := rows.Scan(&tenant, &tt.Calls, &tt.Errors, &tt.TokensIn, &tt.TokensOut); err != nil {
				t.Fatal(err)
			}
			got[tenant] = tt
		}
		rows.Close()
		for _, tenant := range slices.Sorted(maps.Keys(e.perTenant)) {
			if got[tenant] != e.perTenant[tenant] {
				t.Errorf("%s for %s = %+v, want %+v", table, tenant, got[tenant], e.perTenant[tenant])
			}
		}
		if len(got) != len(e.perTenant) {
			t.Errorf("%s tenants %v, want %v", table, slices.Collect(maps.Keys(got)), slices.Collect(maps.Keys(e.perTenant)))
		}
	}
	// Every level of the approvals cascade holds exactly the decisions of
	// the stored approval records, per tenant, role, definition and
	// decision (turnaround sums to float rounding).
	if len(e.approvals) == 0 {
		t.Fatal("the generated records hold no approval: the approval rollups would go unchecked")
	}
	for _, table := range []string{"approvals_1m", "approvals_1h", "approvals_1d"} {
		rows, err := conn.Query(ctx, `SELECT tenant, role, definition, decision, sum(decisions), sum(turnaround_sum), max(turnaround_max)
		FROM `+table+` GROUP BY tenant, role, definition, decision`)
		if err != nil {
			t.Fatal(err)
		}
		got := map[approvalKey]approvalTotals{}
		for rows.Next() {
			var k approvalKey
			var a approvalTotals
			if err := rows.Scan(&k.Tenant, &k.Role, &k.Definition, &k.Decision, &a.Decisions, &a.TurnaroundSum, &a.TurnaroundMax); err != nil {
				t.Fatal(err)
			}
			got[k] = a
		}
		rows.Close()
		for k, want := range e.approvals {
			g := got[k]
			if g.Decisions != want.Decisions || g.TurnaroundMax != want.TurnaroundMax ||
				math.Abs(g.TurnaroundSum-want.TurnaroundSum) > 1e-9*want.TurnaroundSum {
				t.Errorf("%s %+v = %+v, want %+v", table, k, g, want)
			}
		}
		if len(got) != len(e.approvals) {
			t.Errorf("%s has %d groups, want %d", table, len(got), len(e.approvals))
		}
	}
}

func generate(seed uint64, n int) []record.Record {
	return newGen(seed).Generate(n)
}

func newGen(seed uint64) *callgen.Generator {
	// Recent timestamps: rows older than the raw TTL (90 days) are
	// dropped by ClickHouse on insert.
	start := time.Now().UTC().Add(-7 * time.Hour).Truncate(time.Hour)
	return callgen.New(seed, start, 6*time.Hour)
}

// TestEndToEnd: 100k records from the producer through kfake and two sinks
// into ClickHouse; every count exact.
func TestEndToEnd(t *testing.T) {
	dsn, _ := embeddedtest.StartClickHouse(t)
	kafka := startKafka(t)
	conn := openCH(t, chAddr(dsn))
	cfg := sinkConfig(kafka.addr(), "e2e")
	runSink(t, cfg, chAddr(dsn))
	runSink(t, cfg, chAddr(dsn)) // two sinks share the partitions

	recs := generate(1, 100_000)
	p := newProducer(t, kafka.addr())
	start := time.Now()
	for _, r := range recs {
		p.Emit(r)
	}
	closeProducer(t, p)
	waitRaw(t, conn, uint64(len(recs)), 2*time.Minute)
	t.Logf("100k records emitted and queryable in %s", time.Since(start).Round(time.Millisecond))
	checkExact(t, conn, expect(recs))
}

// TestProducerDuplicates: records written to Kafka twice (what the
// producer does when a write's outcome was unknown: the same record again
// at another offset) are stored and counted once, in the raw table and in
// every rollup.
func TestProducerDuplicates(t *testing.T) {
	dsn, _ := embeddedtest.StartClickHouse(t)
	kafka := startKafka(t)
	conn := openCH(t, chAddr(dsn))
	cfg := sinkConfig(kafka.addr(), "dups")
	cfg.BatchRows = 5000 // duplicates land in later batches as well as in the same one
	runSink(t, cfg, chAddr(dsn))

	recs := generate(3, 20_000)
	p := newProducer(t, kafka.addr())
	for i, r := range recs {
		p.Emit(r)
		if i%10 == 0 {
			p.Emit(r) // right after: usually the same batch
		}
	}
	for _, r := range recs[:3000] {
		p.Emit(r) // thousands of offsets later
	}
	closeProducer(t, p)
	want := uint64(len(recs))
	waitFor(t, 2*time.Minute, "every Kafka message handled", func() (bool, string) {
		// The sink applies the schema in Run, in the background: until it
		// has, the tables are missing, which is a state to wait out, not a
		// failure (the producer can be done first on a loaded machine).
		var n, distinct uint64
		if err := conn.QueryRow(context.Background(), "SELECT "+
			"(SELECT toUInt64(sum(m+1)) FROM (SELECT partition, max(max_offset) m FROM calls_kafka_offsets GROUP BY partition)), "+
			"(SELECT uniqExact(id) FROM calls)").Scan(&n, &distinct); err != nil {
			return false, err.Error()
		}
		// The last message of a partition may be a dropped duplicate,
		// which raises no mark: wait for the distinct records instead.
		return distinct >= want, fmt.Sprintf("marks cover %d messages, %d distinct records", n, distinct)
	})
	time.Sleep(2 * time.Second) // let a late duplicate show up if there were one
	checkExact(t, conn, expect(recs))
}

// TestResentAfterCrash: a producer that crashed after writing records to
// Kafka but before its log's cursor moved sends them again when it starts
// (marked as resent). By then the partitions have another sink, whose id
// window never saw the first copies: it finds them in ClickHouse, and the
// raw table and every rollup still count each record once.
func TestResentAfterCrash(t *testing.T) {
	dsn, _ := embeddedtest.StartClickHouse(t)
	kafka := startKafka(t)
	conn := openCH(t, chAddr(dsn))
	cfg := sinkConfig(kafka.addr(), "resent")
	stopFirst := runSink(t, cfg, chAddr(dsn))

	recs := generate(4, 10_000)
	p := newProducer(t, kafka.addr())
	for _, r := range recs {
		p.Emit(r)
	}
	closeProducer(t, p)
	waitRaw(t, conn, uint64(len(recs)), 2*time.Minute)
	stopFirst()

	// The crashed process's log: the same records, unacknowledged.
	dir := t.TempDir()
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[:4000] {
		if err := sp.Append(spool.Entry{Key: []byte(r.Key()), Value: r.AppendJSON(nil)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	sinkCfg := cfg
	sinkCfg.Registerer = reg
	runSink(t, sinkCfg, chAddr(dsn)) // a fresh sink: an empty id window
	restarted, err := producer.New(producer.Config{Brokers: []string{kafka.addr()}, Topic: topic, SpoolDir: dir,
		LogFirst: true, WriteTimeout: 5 * time.Second}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	closeProducer(t, restarted)
	waitFor(t, time.Minute, "the resent records handled", func() (bool, string) {
		n := counter(t, reg, "gateflow_sink_duplicates_dropped_total")
		return n >= 4000, fmt.Sprintf("%v duplicates dropped", n)
	})
	checkExact(t, conn, expect(recs))
}

// TestDuplicateAfterSinkRestart: a record emitted again under the same id
// without the producer's resent mark (a workflow task re-run after its
// worker died re-runs its local activities, e.g. an approval's record)
// reaches a sink that did not store the first copy: the partition moved,
// or its sink restarted. The new sink reads the partition's window from
// ClickHouse when it gets the partition, and the raw table and every
// rollup still count each record once.
func TestDuplicateAfterSinkRestart(t *testing.T) {
	dsn, _ := embeddedtest.StartClickHouse(t)
	kafka := startKafka(t)
	conn := openCH(t, chAddr(dsn))
	cfg := sinkConfig(kafka.addr(), "restart-dups")
	stopFirst := runSink(t, cfg, chAddr(dsn))

	recs := generate(5, 6000)
	first, later := recs[:5000], recs[5000:]
	p := newProducer(t, kafka.addr())
	for _, r := range first {
		p.Emit(r)
	}
	closeProducer(t, p)
	waitRaw(t, conn, uint64(len(first)), 2*time.Minute)
	stopFirst()

	reg := prometheus.NewRegistry()
	second := cfg
	second.Registerer = reg
	runSink(t, second, chAddr(dsn)) // a fresh sink: its window comes from ClickHouse
	p = newProducer(t, kafka.addr())
	for _, r := range first[:2000] {
		p.Emit(r) // the same ids again, unmarked
	}
	for _, r := range later {
		p.Emit(r)
	}
	closeProducer(t, p)
	waitFor(t, 2*time.Minute, "the duplicates dropped and the new records stored", func() (bool, string) {
		n := counter(t, reg, "gateflow_sink_duplicates_dropped_total")
		distinct := queryUint(t, conn, "SELECT uniqExact(id) FROM calls")
		return n >= 2000 && distinct >= uint64(len(recs)), fmt.Sprintf("%v duplicates dropped, %d distinct records", n, distinct)
	})
	time.Sleep(2 * time.Second) // let a late duplicate show up if there were one
	checkExact(t, conn, expect(recs))
}
