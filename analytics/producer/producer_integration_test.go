//go:build integration

package producer_test

import (
	"bytes"
	"context"
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

// BenchmarkEmit is the cost a request pays to record a call: encode and
// enqueue (delivery happens in the background).
func BenchmarkEmit(b *testing.B) {
	broker := startKafka(b)
	p, err := producer.New(producer.Config{Brokers: []string{broker}, Topic: "gateflow.calls", SpoolDir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	recs := records(1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Emit(recs[i&1023])
		i++
	}
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
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
