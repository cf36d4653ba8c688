//go:build integration

package sink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/gateflow/gateflow/analytics/callgen"
	"github.com/gateflow/gateflow/analytics/schema"
	"github.com/gateflow/gateflow/analytics/sink"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

// TestInDoubtBatchResent is the compound fault the fault run found
// (issue 15): ClickHouse killed mid-insert commits a batch's raw rows and
// offset mark but not a rollup's part, and the sink dies before its retry.
// Here the batch is stored as the sink stores it while one view is
// detached (its table misses the block), and nothing is committed; then a
// new sink gets the partitions. It must re-send the batch (stored beyond
// the committed offsets) so that the rollups count every record exactly
// once — and when every table took the batch, the re-send must add
// nothing. The batch spans midnight and all six partitions, so the raw
// insert is several parts.
func TestInDoubtBatchResent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		detach string // the view whose table misses the batch; "" none
		// later: inserts recorded after the batch; beyond
		// resendWindowBatches the batch is not re-sent (its token may
		// have left the deduplication windows).
		later int
	}{
		{"every table took the batch", "", 0},
		{"calls_1m missed it (and the cascade below it)", "calls_1m_mv", 0},
		{"calls_1h missed it", "calls_1h_mv", 0},
		{"the approvals rollup missed it", "approvals_1m_mv", 0},
		{"too many inserts since: not re-sent", "", 301},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn, _ := embeddedtest.StartClickHouse(t)
			addr := chAddr(dsn)
			conn := openCH(t, addr)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// Readiness of the processes that read the rollups (checked
			// here because this test migrates a fresh ClickHouse itself).
			if err := schema.TablesExist(ctx, conn); err == nil {
				t.Fatal("TablesExist: no error before the migrations")
			}
			if err := schema.Migrate(ctx, conn, schema.Options{}); err != nil {
				t.Fatal(err)
			}
			if err := schema.TablesExist(ctx, conn); err != nil {
				t.Fatalf("TablesExist after the migrations: %v", err)
			}
			kb := startKafka(t)
			midnight := time.Now().UTC().Truncate(24 * time.Hour)
			recs := callgen.New(11, midnight.Add(-30*time.Minute), time.Hour).Generate(3000)
			p := newProducer(t, kb.addr())
			for _, r := range recs {
				p.Emit(r)
			}
			closeProducer(t, p)
			msgs := readPartitions(t, kb.addr(), len(recs))

			cfg := sinkConfig(kb.addr(), "in-doubt")
			cfg.ClickHouse = &clickhouse.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second}
			if tc.detach != "" {
				execSQL(t, conn, "DETACH TABLE "+tc.detach)
			}
			if err := sink.StoreUncommitted(ctx, cfg, conn, msgs); err != nil {
				t.Fatal(err)
			}
			if tc.detach != "" {
				execSQL(t, conn, "ATTACH TABLE "+tc.detach)
				if got := queryUint(t, conn, "SELECT sum(calls) FROM calls_1d"); tc.detach != "approvals_1m_mv" && got == uint64(len(recs)) {
					t.Fatalf("calls_1d counts %d calls with %s detached: the fault was not reproduced", got, tc.detach)
				}
			}

			if tc.later > 0 {
				execSQL(t, conn, fmt.Sprintf(`INSERT INTO calls_sink_batches
					SELECT now(), 'elsewhere', 0, concat('later-', toString(number)), 0, 0, 1, now64(3), now64(3)
					FROM numbers(%d)`, tc.later))
			}

			reg := prometheus.NewRegistry()
			next := cfg
			next.Registerer = reg
			runSink(t, next, addr)
			waitFor(t, time.Minute, "the batch's messages consumed again and skipped as stored", func() (bool, string) {
				skipped := counter(t, reg, "gateflow_sink_messages_skipped_total")
				return skipped >= float64(len(recs)), fmt.Sprintf("%v messages skipped", skipped)
			})
			checkExact(t, conn, expect(recs))
			wantResent, wantFailed := 1.0, 0.0
			if tc.later > 0 {
				wantResent, wantFailed = 0, 1
			}
			if n := counter(t, reg, "gateflow_sink_batches_resent_total"); n != wantResent {
				t.Errorf("%v batches re-sent, want %v", n, wantResent)
			}
			if f := counter(t, reg, "gateflow_sink_resend_failures_total"); f != wantFailed {
				t.Errorf("%v re-send failures, want %v", f, wantFailed)
			}
		})
	}
}

// readPartitions reads every message of the topic's partitions (want in
// all) as a sink's fetchers would.
func readPartitions(t *testing.T, addr string, want int) []kafkago.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafkago.Message
	for part := range partitions {
		c, err := kafkago.DialLeader(ctx, "tcp", addr, topic, part)
		if err != nil {
			t.Fatal(err)
		}
		last, err := c.ReadLastOffset()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Seek(0, kafkago.SeekAbsolute); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		for next := int64(0); next < last; {
			b := c.ReadBatch(1, 16<<20)
			for {
				m, err := b.ReadMessage()
				if err != nil {
					break
				}
				m.Topic, m.Partition = topic, part
				out = append(out, m)
				next = m.Offset + 1
			}
			if err := b.Close(); err != nil {
				t.Fatalf("read partition %d: %v", part, err)
			}
		}
		_ = c.Close()
	}
	if len(out) != want {
		t.Fatalf("read %d messages, want %d", len(out), want)
	}
	return out
}

func execSQL(t *testing.T, conn interface {
	Exec(context.Context, string, ...any) error
}, q string) {
	t.Helper()
	if err := conn.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
