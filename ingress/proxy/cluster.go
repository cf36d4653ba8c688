package proxy

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/sysconfig"
)

// Endpoint is one upstream instance of a cluster, with its load and health.
// Its state survives config reloads while the instance's base URL stays in
// the service.
type Endpoint struct {
	// Name is the instance as records and metrics show it: host:port.
	Name    string
	BaseURL string
	Weight  int
	Zone    string

	scheme, host, basePath string

	// outstanding counts tries in flight (least_request).
	outstanding atomic.Int64
	// activeDown is set by active health checks.
	activeDown atomic.Bool
	// ejectedUntil is the end of a passive ejection (Unix ns; 0: none).
	ejectedUntil atomic.Int64

	mu sync.Mutex // guards the counters below
	// consecutive failures seen by passive outlier detection.
	failures int
	// ejections counts ejections in a row (the ejection time grows with it).
	ejections int
	lastEject time.Time
	// hcPass and hcFail count active probe results in a row.
	hcPass, hcFail int
}

// Available reports whether calls may go to the endpoint now.
func (e *Endpoint) Available(now int64) bool {
	return !e.activeDown.Load() && e.ejectedUntil.Load() <= now
}

func newEndpoint(in sysconfig.Instance) (*Endpoint, error) {
	u, err := url.Parse(in.BaseURL)
	if err != nil {
		return nil, err
	}
	name := u.Host
	if in.Zone != "" {
		name += "@" + in.Zone
	}
	return &Endpoint{
		Name: name, BaseURL: in.BaseURL, Weight: max(1, in.Weight), Zone: in.Zone,
		scheme: u.Scheme, host: u.Host, basePath: strings.TrimSuffix(u.EscapedPath(), "/"),
	}, nil
}

// cluster is a service's endpoints with its balancing, health and retry
// settings, built from one config snapshot.
type cluster struct {
	name      string
	endpoints []*Endpoint
	selector  Selector
	hashOn    string // "" (consumer) or a header name
	outlier   sysconfig.OutlierDetection
	health    *sysconfig.HealthCheck
	budget    *retryBudget
	maxRetry  int

	connectTimeout, perTry, request, idle time.Duration
	transport                             *http.Transport
	maxBody                               int64
	cache                                 CachePolicy
	// rate is the service's rate_limit: all gateway calls to the
	// service together, whichever API (or the owner's own route) they
	// come through.
	rate Rate

	// headers are the service's configured headers with secrets resolved,
	// refreshed every headerTTL so that rotated secrets apply.
	rawHeaders map[string]string
	hdrMu      sync.Mutex
	hdr        atomic.Pointer[resolvedHeaders]

	m   *clusterMetrics
	log *slog.Logger
}

type resolvedHeaders struct {
	at  time.Time
	h   [][2]string
	err error
}

// headerTTL is how long resolved secret references are reused.
const headerTTL = 10 * time.Second

// serviceHeaders returns the service's headers with secrets resolved; an
// unresolvable reference is an error naming it (never its value).
func (c *cluster) serviceHeaders(now time.Time) ([][2]string, error) {
	if len(c.rawHeaders) == 0 {
		return nil, nil
	}
	if r := c.hdr.Load(); r != nil && now.Sub(r.at) < headerTTL {
		return r.h, r.err
	}
	c.hdrMu.Lock()
	defer c.hdrMu.Unlock()
	if r := c.hdr.Load(); r != nil && now.Sub(r.at) < headerTTL {
		return r.h, r.err
	}
	r := &resolvedHeaders{at: now}
	for k, v := range c.rawHeaders {
		val, err := activities.ResolveSecrets(v)
		if err != nil {
			r.err = fmt.Errorf("service %s header %s: %w", c.name, k, err)
			r.h = nil
			break
		}
		r.h = append(r.h, [2]string{http.CanonicalHeaderKey(k), val})
	}
	c.hdr.Store(r)
	return r.h, r.err
}

// ejectable reports whether one more endpoint may be ejected without going
// below the floor: at most MaxEjectionPercent of the endpoints, and never
// the last available one.
func (c *cluster) ejectable(now int64) bool {
	n := len(c.endpoints)
	ejected := 0
	for _, e := range c.endpoints {
		if e.ejectedUntil.Load() > now {
			ejected++
		}
	}
	limit := n * c.outlier.MaxEjectionPercent / 100
	return ejected+1 <= limit && ejected+1 < n
}

// clusters holds the clusters of the current snapshot. A new snapshot
// rebuilds them (on the first call that sees it), keeping each endpoint's
// state by service and base URL, and restarts the active health checks.
type clusters struct {
	cfg Snapshots
	p   *Proxy

	mu   sync.Mutex
	cur  atomic.Pointer[clusterSet]
	stop func() // stops the health checks of cur
}

type clusterSet struct {
	snap *sysconfig.Snapshot
	by   map[string]*cluster
}

// get returns the cluster of service in the current snapshot.
func (cs *clusters) get(service string) (*cluster, error) {
	snap := cs.cfg.Current()
	set := cs.cur.Load()
	if set == nil || set.snap != snap {
		set = cs.rebuild(snap)
	}
	c, ok := set.by[service]
	if !ok {
		return nil, fmt.Errorf("%w: service %q is not configured", ErrNotFound, service)
	}
	return c, nil
}

func (cs *clusters) rebuild(snap *sysconfig.Snapshot) *clusterSet {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	old := cs.cur.Load()
	if old != nil && old.snap == snap {
		return old
	}
	prev := map[string]*Endpoint{}
	if old != nil {
		for name, c := range old.by {
			for _, e := range c.endpoints {
				prev[name+"\x00"+e.BaseURL] = e
			}
		}
	}
	set := &clusterSet{snap: snap, by: map[string]*cluster{}}
	for _, svc := range snap.Services() {
		c, err := cs.p.newCluster(svc, prev)
		if err != nil {
			// Validation accepted the URLs; a failure here is a bug.
			cs.p.log.Error("gateway: service not usable", "service", svc.Name, "err", err)
			continue
		}
		set.by[svc.Name] = c
	}
	if cs.stop != nil {
		cs.stop()
	}
	cs.stop = cs.p.startHealthChecks(set)
	cs.cur.Store(set)
	return set
}

// close stops the health checks.
func (cs *clusters) close() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.stop != nil {
		cs.stop()
		cs.stop = nil
	}
}

func (p *Proxy) newCluster(svc sysconfig.Service, prev map[string]*Endpoint) (*cluster, error) {
	c := &cluster{name: svc.Name, rawHeaders: svc.Headers, maxBody: svc.GatewayBodyLimit(), cache: servicePolicy(svc), log: p.log,
		rate: Rate{RPS: svc.GatewayRateLimit.RPS, Burst: svc.GatewayRateLimit.Burst}}
	for _, in := range svc.Upstreams() {
		if e, ok := prev[svc.Name+"\x00"+in.BaseURL]; ok && e.Weight == max(1, in.Weight) && e.Zone == in.Zone {
			c.endpoints = append(c.endpoints, e)
			continue
		}
		e, err := newEndpoint(in)
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", in.BaseURL, err)
		}
		c.endpoints = append(c.endpoints, e)
	}
	lb := svc.LoadBalancing
	switch lb.Policy {
	case sysconfig.LBLeastRequest:
		c.selector = LeastRequest{}
	case sysconfig.LBHash:
		c.selector = NewHashRing(c.endpoints)
		if name, ok := strings.CutPrefix(lb.HashOn, "header:"); ok {
			c.hashOn = http.CanonicalHeaderKey(name)
		}
	default:
		c.selector = NewRoundRobin(c.endpoints)
	}
	c.outlier = svc.OutlierDetection.Effective()
	if svc.HealthCheck != nil {
		h := svc.HealthCheck.Effective()
		c.health = &h
	} else {
		// Without active checks nothing would ever mark an endpoint up
		// again: clear what an earlier config's checks left.
		for _, e := range c.endpoints {
			e.activeDown.Store(false)
		}
	}
	rb := svc.RetryBudget.Effective()
	c.maxRetry = *rb.MaxRetries
	c.budget = &retryBudget{percent: rb.BudgetPercent, minConcurrency: int64(rb.MinRetryConcurrency)}
	c.connectTimeout, c.perTry, c.request, c.idle = svc.EffectiveTimeouts()
	c.transport = p.transport(c.connectTimeout)
	c.m = p.metrics.forCluster(c)
	return c, nil
}
