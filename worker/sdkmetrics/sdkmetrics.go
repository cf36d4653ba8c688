// Package sdkmetrics exports the Temporal Go SDK's own metrics (client
// requests, workflow and activity task latencies, pollers, sticky cache,
// schedule-to-start latencies, ...) to Prometheus.
//
// The SDK reports metrics through client.MetricsHandler with free-form tags:
// the same metric name can arrive with different tag sets (an activity
// metric carries activity_type, a poller metric does not). Prometheus wants
// one label set per metric name, so each name's labels are the union of the
// tag keys seen so far, and a series without a key exports it empty. Names
// are kept as the SDK spells them (temporal_request, temporal_activity_
// execution_latency, ...), so the SDK's published dashboards apply; timers
// become histograms in seconds.
//
// It needs no dependency beyond the Prometheus client the processes already
// use (the SDK's tally and OpenTelemetry contrib handlers would pull
// versions that the embedded Temporal server does not build with).
package sdkmetrics

import (
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// Buckets are the histogram buckets of timers, in seconds (1 ms to ~65 s).
var Buckets = prometheus.ExponentialBuckets(0.001, 2, 17)

type kind int

const (
	kindCounter kind = iota
	kindGauge
	kindTimer
)

// Collector holds every series the SDK reported and exports them on
// Collect. Register it with a Prometheus registry and pass Handler() to
// client.Options.MetricsHandler.
type Collector struct {
	mu       sync.Mutex
	families map[string]*family
}

type family struct {
	kind kind
	keys map[string]bool // union of tag keys seen
	// series by the canonical string of their tag set.
	series map[string]*series
}

type series struct {
	tags map[string]string
	bits atomic.Uint64 // float64 value of a counter or gauge
	// timers
	buckets []atomic.Uint64
	count   atomic.Uint64
	sumBits atomic.Uint64
}

// New returns an empty collector.
func New() *Collector {
	return &Collector{families: map[string]*family{}}
}

// Handler returns the SDK metrics handler that feeds the collector.
func (c *Collector) Handler() client.MetricsHandler {
	return &handler{c: c, tags: map[string]string{}, key: ""}
}

// Describe sends nothing: the collector is unchecked, its label sets grow
// as the SDK reports new tags.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect exports every series with its family's full label set.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	type snap struct {
		name   string
		kind   kind
		keys   []string
		series []*series
	}
	snaps := make([]snap, 0, len(c.families))
	for _, name := range slices.Sorted(maps.Keys(c.families)) {
		f := c.families[name]
		snaps = append(snaps, snap{name: name, kind: f.kind, keys: slices.Sorted(maps.Keys(f.keys)),
			series: slices.Collect(maps.Values(f.series))})
	}
	c.mu.Unlock()
	for _, s := range snaps {
		labels := make([]string, len(s.keys))
		for i, k := range s.keys {
			labels[i] = labelName(k)
		}
		help := "Temporal Go SDK metric " + s.name + "."
		desc := prometheus.NewDesc(metricName(s.name), help, labels, nil)
		for _, se := range s.series {
			values := make([]string, len(s.keys))
			for i, k := range s.keys {
				values[i] = se.tags[k]
			}
			var m prometheus.Metric
			var err error
			switch s.kind {
			case kindCounter:
				m, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, math.Float64frombits(se.bits.Load()), values...)
			case kindGauge:
				m, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, math.Float64frombits(se.bits.Load()), values...)
			case kindTimer:
				cum := make(map[float64]uint64, len(Buckets))
				var running uint64
				for i, ub := range Buckets {
					running += se.buckets[i].Load()
					cum[ub] = running
				}
				m, err = prometheus.NewConstHistogram(desc, se.count.Load(), math.Float64frombits(se.sumBits.Load()), cum, values...)
			}
			if err != nil {
				ch <- prometheus.NewInvalidMetric(desc, err)
				continue
			}
			ch <- m
		}
	}
}

// get returns the series of name with tags, creating it on first use. A
// name reused with another kind keeps its first kind; the other use goes
// to a separate name with the kind as suffix rather than breaking the
// export.
func (c *Collector) get(name string, k kind, tags map[string]string, key string) *series {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.families[name]
	if ok && f.kind != k {
		name += [...]string{"_counter", "_gauge", "_timer"}[k]
		f, ok = c.families[name]
	}
	if !ok {
		f = &family{kind: k, keys: map[string]bool{}, series: map[string]*series{}}
		c.families[name] = f
	}
	if s, ok := f.series[key]; ok {
		return s
	}
	s := &series{tags: tags}
	if k == kindTimer {
		s.buckets = make([]atomic.Uint64, len(Buckets))
	}
	for t := range tags {
		f.keys[t] = true
	}
	f.series[key] = s
	return s
}

// handler is one tag set; the SDK derives handlers with WithTags and asks
// them for metrics by name, often on every use, so lookups are cached.
type handler struct {
	c     *Collector
	tags  map[string]string
	key   string
	cache [3]sync.Map // per kind: name -> *series
}

func (h *handler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(h.tags)
	maps.Copy(merged, tags)
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(merged[k])
		b.WriteByte(0)
	}
	return &handler{c: h.c, tags: merged, key: b.String()}
}

func (h *handler) series(name string, k kind) *series {
	if s, ok := h.cache[k].Load(name); ok {
		return s.(*series)
	}
	s := h.c.get(name, k, h.tags, h.key)
	h.cache[k].Store(name, s)
	return s
}

func (h *handler) Counter(name string) client.MetricsCounter {
	return (*counter)(h.series(name, kindCounter))
}

func (h *handler) Gauge(name string) client.MetricsGauge {
	return (*gauge)(h.series(name, kindGauge))
}

func (h *handler) Timer(name string) client.MetricsTimer {
	return (*timer)(h.series(name, kindTimer))
}

type (
	counter series
	gauge   series
	timer   series
)

func (c *counter) Inc(d int64) { addFloat(&c.bits, float64(d)) }

func (g *gauge) Update(v float64) { g.bits.Store(math.Float64bits(v)) }

func (t *timer) Record(d time.Duration) {
	v := d.Seconds()
	i, _ := slices.BinarySearch(Buckets, v)
	if i < len(Buckets) {
		t.buckets[i].Add(1)
	}
	t.count.Add(1)
	addFloat(&t.sumBits, v)
}

func addFloat(bits *atomic.Uint64, d float64) {
	for {
		old := bits.Load()
		if bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// metricName and labelName make SDK names valid Prometheus names.
func metricName(s string) string { return sanitize(s, true) }
func labelName(s string) string  { return sanitize(s, false) }

func sanitize(s string, colon bool) string {
	b := []byte(s)
	for i, c := range b {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') || (colon && c == ':')
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}
