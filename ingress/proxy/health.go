package proxy

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// Health of endpoints, two ways (Envoy's): active checks probe every
// endpoint of a cluster that configures health_check, and passive outlier
// detection ejects an endpoint after consecutive failures of real calls.
// An endpoint takes calls when neither has taken it out.

// outcome is what one try tells about its endpoint.
type outcome int

const (
	outcomeOK      outcome = iota
	outcomeFailure         // 5xx answer, connection failure or try timeout
	outcomeNeutral         // the client went away: says nothing
)

// observe feeds passive outlier detection with a try's outcome: after
// ConsecutiveFailures failures in a row the endpoint is ejected for
// BaseEjectionTime times its ejections in a row (at most MaxEjectionTime),
// unless that would go below the cluster's floor. A success resets the
// count; an endpoint that stayed in for MaxEjectionTime since its last
// ejection starts again from BaseEjectionTime.
func (c *cluster) observe(e *Endpoint, o outcome, now time.Time) {
	od := c.outlier
	if od.Disabled || o == outcomeNeutral {
		return
	}
	e.mu.Lock()
	if o == outcomeOK {
		e.failures = 0
		e.mu.Unlock()
		return
	}
	e.failures++
	if e.failures < od.ConsecutiveFailures || e.ejectedUntil.Load() > now.UnixNano() {
		e.mu.Unlock()
		return
	}
	base, maxT := od.BaseEjectionTime.Std(), od.MaxEjectionTime.Std()
	if !e.lastEject.IsZero() && now.Sub(e.lastEject) > maxT+base*time.Duration(e.ejections) {
		e.ejections = 0
	}
	if !c.ejectable(now.UnixNano()) {
		e.mu.Unlock()
		return
	}
	e.ejections++
	d := min(base*time.Duration(e.ejections), maxT)
	e.ejectedUntil.Store(now.Add(d).UnixNano())
	e.lastEject = now
	e.failures = 0
	e.hcPass = 0 // un-ejection by active checks needs fresh passes
	e.mu.Unlock()
	c.m.ejections.Inc()
	c.log.Warn("gateway: upstream ejected", "service", c.name, "upstream", e.Name, "for", d.String(),
		"ejections", e.ejections)
}

// startHealthChecks runs the active checks of every cluster of set that
// configures them, until the returned function is called.
func (p *Proxy) startHealthChecks(set *clusterSet) (stop func()) {
	ctx, cancel := context.WithCancel(p.ctx)
	var wg sync.WaitGroup
	for _, c := range set.by {
		if c.health == nil {
			continue
		}
		wg.Go(func() { p.checkLoop(ctx, c) })
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// checkLoop probes every endpoint of c each interval, all at once.
func (p *Proxy) checkLoop(ctx context.Context, c *cluster) {
	h := c.health
	interval := h.Interval.Std()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, e := range c.endpoints {
			wg.Go(func() { c.probed(e, p.probe(ctx, c, e)) })
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe sends one health check: GET base URL + path, passed on a 2xx or
// 3xx answer within the timeout.
func (p *Proxy) probe(ctx context.Context, c *cluster, e *Endpoint) bool {
	ctx, cancel := context.WithTimeout(ctx, c.health.Timeout.Std())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.scheme+"://"+e.host+e.basePath+c.health.Path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "gateflow-health-check")
	resp, err := p.transport(c.connectTimeout).RoundTrip(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// probed applies a probe result: UnhealthyThreshold failures in a row take
// the endpoint out, HealthyThreshold passes in a row bring it back (and
// end a passive ejection: the instance is demonstrably back).
func (c *cluster) probed(e *Endpoint, ok bool) {
	h := c.health
	e.mu.Lock()
	defer e.mu.Unlock()
	if ok {
		e.hcFail = 0
		e.hcPass++
		if e.hcPass < h.HealthyThreshold {
			return
		}
		if e.activeDown.Load() {
			e.activeDown.Store(false)
			c.m.setHealthy(e, true)
			c.log.Info("gateway: upstream healthy again", "service", c.name, "upstream", e.Name)
		}
		if e.ejectedUntil.Load() != 0 {
			// Envoy's successful_active_health_check_uneject_host: an
			// instance that passes HealthyThreshold checks after its
			// ejection is back before its ejection time ends.
			e.ejectedUntil.Store(0)
			e.failures = 0
			c.log.Info("gateway: ejected upstream passes its health checks; back in", "service", c.name, "upstream", e.Name)
		}
		return
	}
	e.hcPass = 0
	e.hcFail++
	if !e.activeDown.Load() && e.hcFail >= h.UnhealthyThreshold {
		e.activeDown.Store(true)
		c.m.setHealthy(e, false)
		c.log.Warn("gateway: upstream unhealthy", "service", c.name, "upstream", e.Name, "failed_checks", e.hcFail)
	}
}
