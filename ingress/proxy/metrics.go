package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the gateway. Per-cluster children are resolved when a
// cluster is built, so a call makes no label lookups.
type metrics struct {
	p        *Proxy
	tries    *prometheus.CounterVec
	retries  *prometheus.CounterVec
	budget   *prometheus.CounterVec
	ejects   *prometheus.CounterVec
	healthy  *prometheus.GaugeVec
	cache    *prometheus.CounterVec
	limited  *prometheus.CounterVec
	upstream *prometheus.HistogramVec
}

func newMetrics(p *Proxy, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		p: p,
		tries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateflow_gateway_upstream_tries_total",
			Help: "Tries sent to upstream instances, by service, instance and result (ok, 5xx, error, timeout)."}, []string{"service", "upstream", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateflow_gateway_retries_total",
			Help: "Retries on another instance, by service."}, []string{"service"}),
		budget: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateflow_gateway_retry_budget_exhausted_total",
			Help: "Retries refused by the retry budget, by service."}, []string{"service"}),
		ejects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateflow_gateway_ejections_total",
			Help: "Passive ejections of upstream instances (outlier detection), by service."}, []string{"service"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gateflow_gateway_upstream_healthy",
			Help: "1 when the active health checks find the instance healthy, 0 when not."}, []string{"service", "upstream"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateflow_gateway_cache_total",
			Help: "Cache lookups of cache-enabled APIs, by service and status (hit, miss, revalidated, bypass)."}, []string{"service", "status"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateflow_gateway_rate_limited_total",
			Help: "Calls refused by a gateway rate limit, by scope (api, consumer)."}, []string{"scope"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gateflow_gateway_upstream_seconds",
			Help:    "Time to the upstream answer's headers (all tries), by service.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"service"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.tries, m.retries, m.budget, m.ejects, m.healthy, m.cache, m.limited, m.upstream} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// clusterMetrics are a cluster's metric children.
type clusterMetrics struct {
	p                                 *metrics
	retries, budget, ejections        prometheus.Counter
	hit, miss, revalidated, bypass    prometheus.Counter
	upstream                          prometheus.Observer
	ok, fail5xx, failErr, failTimeout []prometheus.Counter // per endpoint index
	name                              string
}

func (m *metrics) forCluster(c *cluster) *clusterMetrics {
	cm := &clusterMetrics{
		p: m, name: c.name,
		retries: m.retries.WithLabelValues(c.name), budget: m.budget.WithLabelValues(c.name),
		ejections: m.ejects.WithLabelValues(c.name),
		hit:       m.cache.WithLabelValues(c.name, CacheHit), miss: m.cache.WithLabelValues(c.name, CacheMiss),
		revalidated: m.cache.WithLabelValues(c.name, CacheRevalidated), bypass: m.cache.WithLabelValues(c.name, CacheBypass),
		upstream: m.upstream.WithLabelValues(c.name),
	}
	for _, e := range c.endpoints {
		cm.ok = append(cm.ok, m.tries.WithLabelValues(c.name, e.Name, "ok"))
		cm.fail5xx = append(cm.fail5xx, m.tries.WithLabelValues(c.name, e.Name, "5xx"))
		cm.failErr = append(cm.failErr, m.tries.WithLabelValues(c.name, e.Name, "error"))
		cm.failTimeout = append(cm.failTimeout, m.tries.WithLabelValues(c.name, e.Name, "timeout"))
		if c.health != nil {
			cm.setHealthy(e, !e.activeDown.Load())
		}
	}
	return cm
}

func (cm *clusterMetrics) setHealthy(e *Endpoint, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	cm.p.healthy.WithLabelValues(cm.name, e.Name).Set(v)
}

func (cm *clusterMetrics) cacheStatus(s string) {
	switch s {
	case CacheHit:
		cm.hit.Inc()
	case CacheMiss:
		cm.miss.Inc()
	case CacheRevalidated:
		cm.revalidated.Inc()
	case CacheBypass:
		cm.bypass.Inc()
	}
}
