//go:build integration

package producer_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/gateflow/gateflow/analytics/callgen"
	"github.com/gateflow/gateflow/analytics/producer"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/deploy/embedded"
	"github.com/gateflow/gateflow/deploy/embedded/embeddedtest"
)

func startKafka(tb testing.TB) string {
	tb.Helper()
	return embeddedtest.StartKafkaIn(tb, tb.TempDir(), embedded.Topic{Name: "gateflow.calls", Partitions: 6}).Addr()
}

func records(n int) []record.Record {
	return callgen.New(1, time.Now().Add(-time.Hour), time.Hour).Generate(n)
}

// BenchmarkEmit is the cost a request pays to record a call, durable (the
// record written to the local log before Emit returns, then fed to Kafka
// from it) and memory first (encode and enqueue), in the same run: ns/op is
// the caller's wait; cpu-ns/op is the whole process's CPU per record,
// background delivery to Kafka included (what a gateway core pays).
// "serial" is one caller as fast as it can; "paced" is one caller at 4 000
// records/s, the rate of one gateway connection, where the cost of each
// small batch fed to Kafka (read back, cursor) shows in cpu-ns/op (its
// ns/op is the pacing, not a cost); "parallel" is 64 concurrent callers
// sharing the log's group commit.
//
//	go test -tags integration -run '^$' -bench BenchmarkEmit$ -benchmem ./analytics/producer/
func BenchmarkEmit(b *testing.B) {
	broker := startKafka(b)
	recs := records(1024)
	for _, durable := range []bool{true, false} {
		name := "memory-first"
		if durable {
			name = "durable"
		}
		for _, mode := range []string{"serial", "paced", "parallel"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				p, err := producer.New(producer.Config{Brokers: []string{broker}, Topic: "gateflow.calls",
					SpoolDir: b.TempDir(), LogFirst: durable}, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				cpu0 := processCPU(b)
				b.ResetTimer()
				switch mode {
				case "parallel":
					var next atomic.Int64
					b.SetParallelism(32) // 64 callers on 2 cores
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							p.Emit(recs[next.Add(1)&1023])
						}
					})
				case "paced":
					const every = 250 * time.Microsecond
					start := time.Now()
					for i := 0; i < b.N; i++ {
						p.Emit(recs[i&1023])
						time.Sleep(time.Until(start.Add(time.Duration(i+1) * every)))
					}
				default:
					for i := 0; i < b.N; i++ {
						p.Emit(recs[i&1023])
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := p.Close(ctx); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// processCPU is the process's user and system CPU time so far, in ns.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkKafkaGoAsyncWrite is the bare alternative: kafka-go's Writer in
// Async mode, one WriteMessages call per record (JSON via AppendJSON too).
func BenchmarkKafkaGoAsyncWrite(b *testing.B) {
	broker := startKafka(b)
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "gateflow.calls", Balancer: &kafka.Hash{}, Async: true,
		RequiredAcks: kafka.RequireAll, Compression: kafka.Lz4, BatchTimeout: 5 * time.Millisecond, BatchSize: 10000}
	recs := records(1024)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := &recs[i&1023]
		_ = w.WriteMessages(ctx, kafka.Message{Key: []byte(r.Key()), Value: r.AppendJSON(make([]byte, 0, 512))})
		i++
	}
	b.StopTimer()
	_ = w.Close()
}

// TestCompressionChoice measures the codecs on a batch of realistic
// records: compressed size and time per record. Run with -v to see the
// figures behind the default (lz4).
func TestCompressionChoice(t *testing.T) {
	recs := records(5000)
	var raw bytes.Buffer
	for i := range recs {
		raw.Write(recs[i].AppendJSON(nil))
	}
	for _, c := range []kafka.Compression{kafka.Gzip, kafka.Snappy, kafka.Lz4, kafka.Zstd} {
		codec := c.Codec()
		var out bytes.Buffer
		const rounds = 20
		start := time.Now()
		for range rounds {
			out.Reset()
			w := codec.NewWriter(&out)
			if _, err := w.Write(raw.Bytes()); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		per := time.Since(start) / time.Duration(rounds*len(recs))
		t.Logf("%-7s ratio %.2f  %6d -> %6d bytes per 1000 records  %v per record",
			codec.Name(), float64(raw.Len())/float64(out.Len()), raw.Len()/5, out.Len()/5, per)
	}
}
