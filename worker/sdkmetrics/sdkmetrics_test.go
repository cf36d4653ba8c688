package sdkmetrics

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestExport(t *testing.T) {
	c := New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	h := c.Handler().WithTags(map[string]string{"namespace": "default"})
	poll := h.WithTags(map[string]string{"task_queue": "gateflow", "poller_type": "activity_task"})
	act := h.WithTags(map[string]string{"task_queue": "gateflow", "activity_type": "HTTPCall"})

	// The same name with two tag sets: one label set, the missing key empty.
	poll.Counter("temporal_poller_start").Inc(2)
	act.Counter("temporal_poller_start").Inc(1)
	act.Counter("temporal_poller_start").Inc(1)
	h.Gauge("temporal_num_pollers").Update(4)
	act.Timer("temporal_activity_execution_latency").Record(3 * time.Millisecond)
	act.Timer("temporal_activity_execution_latency").Record(90 * time.Second) // beyond the last bucket
	// A name reused with another kind does not break the export.
	h.Gauge("temporal_poller_start").Update(1)

	want := `
# HELP temporal_poller_start Temporal Go SDK metric temporal_poller_start.
# TYPE temporal_poller_start counter
temporal_poller_start{activity_type="",namespace="default",poller_type="activity_task",task_queue="gateflow"} 2
temporal_poller_start{activity_type="HTTPCall",namespace="default",poller_type="",task_queue="gateflow"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "temporal_poller_start"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 5 {
		t.Errorf("series = %d, %v; want 5", n, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "temporal_activity_execution_latency" {
			continue
		}
		hist := mf.GetMetric()[0].GetHistogram()
		if hist.GetSampleCount() != 2 || hist.GetSampleSum() < 90.003 || hist.GetSampleSum() > 90.0031 {
			t.Errorf("histogram count %d sum %v", hist.GetSampleCount(), hist.GetSampleSum())
		}
		// 3 ms falls in the 4 ms bucket and every one above it.
		for _, b := range hist.GetBucket() {
			want := uint64(0)
			if b.GetUpperBound() >= 0.004 {
				want = 1
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	c := New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	h := c.Handler()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			hh := h.WithTags(map[string]string{"worker": string(rune('a' + i%2))})
			for range 1000 {
				hh.Counter("temporal_request").Inc(1)
				hh.Timer("temporal_request_latency").Record(time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	want := `
# HELP temporal_request Temporal Go SDK metric temporal_request.
# TYPE temporal_request counter
temporal_request{worker="a"} 4000
temporal_request{worker="b"} 4000
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "temporal_request"); err != nil {
		t.Error(err)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{"temporal_request": "temporal_request", "a.b-c": "a_b_c", "9x": "_x", "": "_"} {
		if got := labelName(in); got != want {
			t.Errorf("labelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkCounter(b *testing.B) {
	h := New().Handler().WithTags(map[string]string{"namespace": "default", "task_queue": "gateflow"})
	b.ReportAllocs()
	for b.Loop() {
		h.Counter("temporal_request").Inc(1)
	}
}

// BenchmarkCounterVec is the bare alternative: a client_golang CounterVec
// looked up by label values on every use, as a hand-written adapter would.
func BenchmarkCounterVec(b *testing.B) {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "temporal_request"}, []string{"namespace", "task_queue"})
	b.ReportAllocs()
	for b.Loop() {
		v.WithLabelValues("default", "gateflow").Inc()
	}
}

func BenchmarkTimer(b *testing.B) {
	h := New().Handler().WithTags(map[string]string{"namespace": "default", "task_queue": "gateflow"})
	b.ReportAllocs()
	for b.Loop() {
		h.Timer("temporal_request_latency").Record(3 * time.Millisecond)
	}
}

// BenchmarkHistogramVec is the bare alternative of a timer.
func BenchmarkHistogramVec(b *testing.B) {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "temporal_request_latency", Buckets: Buckets}, []string{"namespace", "task_queue"})
	b.ReportAllocs()
	for b.Loop() {
		v.WithLabelValues("default", "gateflow").Observe(0.003)
	}
}
