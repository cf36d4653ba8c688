// Package proxy is Gateflow's gateway data plane: ANY /gw/{api}/{path...}
// forwards a plain HTTP call to an instance of the API's service, chosen by
// the service's load-balancing policy among the instances that active
// health checks and passive outlier detection leave in (Envoy's clusters,
// endpoints and outlier detection), with per-try and overall timeouts,
// retries of idempotent calls on another instance under a retry budget,
// bodies streamed both ways at constant memory, SSE and WebSocket passed
// through, an RFC 9111 answer cache, rate limits, and one call record of
// kind proxy per call.
//
// Layout (caddy's reverseproxy is the model): access.go decides who may
// call what (Access; the catalogue plugs in there), cluster.go holds the
// clusters built from the system configuration, selection.go the
// load-balancing policies behind one Selector interface, health.go active
// and passive health, budget.go the retry budget, this file the round
// trip, headers.go and stream.go the header hygiene and streaming written
// once, cache.go the cache, limits.go the rate limits, record.go the call
// record. The package knows no web framework: ingress/proxyapi mounts it
// as a route group.
package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gateflow/gateflow/activities/tracing"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/ingress/api"
)

// Recorder receives one call record per gateway call; the analytics
// producer implements it. Emit must not block.
type Recorder interface {
	Emit(record.Record)
}

// Options configure a Proxy.
type Options struct {
	// Access resolves APIs and consumers (required).
	Access Access
	// Config gives the services and their gateway settings (required).
	Config Snapshots
	// WriteError answers an error in the API's one error shape
	// (httperr.Write) and returns the status written; required.
	WriteError func(http.ResponseWriter, *http.Request, error) int
	// Recorder receives the call records; nil records nothing.
	Recorder Recorder
	// Registerer receives the gateway's metrics; nil registers none.
	Registerer prometheus.Registerer
	// CacheBytes bounds the answer cache of this replica (default 64 MiB).
	CacheBytes int64
	// PathPrefix is the route's prefix before the API name ("/gw/").
	PathPrefix string
	// Log receives health changes and errors, never one line per call.
	Log *slog.Logger
}

// DefaultCacheBytes is the cache bound when Options.CacheBytes is 0.
const DefaultCacheBytes = 64 << 20

// Proxy is the gateway data plane; it is an http.Handler for the
// /gw/{api}/{path...} route.
type Proxy struct {
	opts     Options
	log      *slog.Logger
	clusters *clusters
	metrics  *metrics
	limits   *limiter
	cache    *cacheStore

	ctx    context.Context
	cancel context.CancelFunc

	tmu        sync.Mutex
	transports map[time.Duration]*http.Transport
}

// New returns a Proxy; Close stops its health checks.
func New(opts Options) (*Proxy, error) {
	if opts.Access == nil || opts.Config == nil || opts.WriteError == nil {
		return nil, errors.New("proxy: Options.Access, Config and WriteError are required")
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.PathPrefix == "" {
		opts.PathPrefix = "/gw/"
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{opts: opts, log: log, limits: newLimiter(), cache: newCacheStore(opts.CacheBytes),
		transports: map[time.Duration]*http.Transport{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	m, err := newMetrics(p, opts.Registerer)
	if err != nil {
		return nil, err
	}
	p.metrics = m
	p.clusters = &clusters{cfg: opts.Config, p: p}
	return p, nil
}

// Close stops the active health checks and closes idle upstream
// connections.
func (p *Proxy) Close() {
	p.cancel()
	p.clusters.close()
	p.tmu.Lock()
	defer p.tmu.Unlock()
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
}

// Warm builds the clusters of the current configuration now (and starts
// their health checks) instead of on the first call.
func (p *Proxy) Warm() { p.clusters.rebuild(p.opts.Config.Current()) }

// transport returns the shared upstream transport for a connect timeout:
// keep-alive connections are reused across calls (many idle ones per
// host, as a proxy needs), no proxy from the environment, no automatic
// decompression (bodies pass through as sent).
func (p *Proxy) transport(connect time.Duration) *http.Transport {
	p.tmu.Lock()
	defer p.tmu.Unlock()
	if t, ok := p.transports[connect]; ok {
		return t
	}
	d := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   connect + 5*time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
	}
	p.transports[connect] = t
	return t
}

// call is the state of one gateway call.
type call struct {
	start       time.Time
	target      Target
	c           *cluster
	ep          *Endpoint
	status      int
	in, out     int64
	retries     int
	tries       int
	upstreamDur time.Duration
	cacheStatus string
	err         error
	route       string
	consumer    string // target.Consumer.String(), once
}

// ServeHTTP forwards one call.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cl := call{start: time.Now(), route: p.upstreamPath(r)}
	ctx := r.Context()
	info := api.Info(ctx)
	defer func() {
		if info != nil && cl.ep != nil {
			info.Upstream = cl.ep.Name
		}
		if cl.err != nil {
			cl.status = p.opts.WriteError(w, r, cl.err)
		}
		if cl.target.API != "" {
			p.emit(r, info, &cl)
		}
	}()

	caller, ok := api.Caller(ctx)
	if !ok {
		cl.err = api.Errorf(http.StatusUnauthorized, "unauthenticated", "an API key is required")
		return
	}
	apiName := r.PathValue("api")
	version := r.Header.Get(HeaderAPIVersion)
	if version == "" && strings.Contains(r.URL.RawQuery, "version=") {
		version = r.URL.Query().Get("version")
	}
	t, err := p.opts.Access.Route(ctx, caller, apiName, version)
	if err != nil {
		cl.err = err
		return
	}
	cl.target = t
	cl.consumer = t.Consumer.String()
	c, err := p.clusters.get(t.Service)
	if err != nil {
		cl.err = err
		return
	}
	cl.c = c
	if err := p.admit(w, &cl); err != nil {
		cl.err = err
		return
	}
	limit := t.MaxBodyBytes
	if limit <= 0 {
		limit = c.maxBody
	}
	if r.ContentLength > limit {
		cl.err = &http.MaxBytesError{Limit: limit}
		return
	}
	for _, h := range t.Headers {
		w.Header().Add(h.Name, h.Value) // Link may come twice (successor, deprecation)
	}
	policy := c.cache
	if t.Cache != nil {
		policy = *t.Cache
	}
	p.forward(w, r, &cl, limit, policy)
}

// admit applies the API's and the consumer's rate limits, and the
// service's when the target names no API limit (a catalogue API over the
// service: the service's rate_limit bounds every API over it together),
// and sets the RateLimit-* headers of the tighter one.
func (p *Proxy) admit(w http.ResponseWriter, cl *call) error {
	t := cl.target
	now := time.Now()
	var shown *decision
	apiRate, apiKey := t.Limits.API, "a\x00"+t.API
	if apiRate.RPS <= 0 && cl.c != nil {
		apiRate, apiKey = cl.c.rate, "s\x00"+cl.c.name
	}
	for scope, rate := range [2]Rate{apiRate, t.Limits.Consumer} {
		if rate.RPS <= 0 {
			continue
		}
		name, key := "api", apiKey
		if scope == 1 {
			name, key = "consumer", "c\x00"+t.API+"\x00"+cl.consumer
		}
		d := p.limits.take(key, rate, now)
		if !d.allowed {
			p.metrics.limited.WithLabelValues(name).Inc()
			setRateHeaders(w.Header(), d)
			return &RateLimitError{Scope: name, API: t.API, Limit: d.limit, RetryAfter: d.retryAfter}
		}
		if shown == nil || d.remaining < shown.remaining {
			shown = &d
		}
	}
	if shown != nil {
		setRateHeaders(w.Header(), *shown)
	}
	return nil
}

func setRateHeaders(h http.Header, d decision) {
	h.Set("RateLimit-Limit", strconv.Itoa(d.limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(max(1, int((d.reset+time.Second-1)/time.Second))))
}

// upstreamPath is the escaped path (and query) after /gw/{api}, as the
// client sent it: "/orders/42?x=1". Escapes such as %2F are kept.
func (p *Proxy) upstreamPath(r *http.Request) string {
	path := r.URL.EscapedPath()
	rest := strings.TrimPrefix(path, p.opts.PathPrefix)
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[i:]
	} else {
		rest = "/"
	}
	if r.URL.RawQuery != "" {
		rest += "?" + r.URL.RawQuery
	}
	return rest
}

// idempotent reports whether a failed try may be repeated on another
// instance: a method idempotent by RFC 9110 9.2.2, or a request carrying
// an Idempotency-Key.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// retryableStatus are the answers a retry may fix: the instance is
// overloaded or its own upstream failed.
func retryableStatus(s int) bool {
	return s == http.StatusBadGateway || s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout
}

// forward sends the call to the cluster (or answers it from the cache).
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, cl *call, limit int64, policy CachePolicy) {
	ctx := r.Context()
	c := cl.c
	rid := api.RequestID(ctx)

	// The request body: counted, limited, never closed by the transport
	// (a retry may send it again when no byte of it was read).
	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{r: r.Body, limit: limit}
	}
	defer func() {
		if body != nil {
			cl.in = body.n.Load()
		}
	}()

	// Cache lookup.
	var (
		primary string
		rules   requestRules
		stale   *cacheEntry
	)
	cacheable := policy.Enabled && (r.Method == http.MethodGet || r.Method == http.MethodHead) && upgradeType(r.Header) == ""
	if cacheable {
		rules = parseRequestRules(r.Header)
		primary = p.cacheKey(cl, policy, r)
		switch {
		case rules.noStore:
			cl.cacheStatus = CacheBypass
			cacheable = false
		default:
			now := time.Now()
			if e := p.cache.get(primary, r.Header); e != nil {
				if rules.fresh(e, now) {
					cl.cacheStatus = CacheHit
					c.m.cacheStatus(CacheHit)
					p.serveCached(w, r, cl, e, now, "hit")
					return
				}
				if e.etag != "" || e.lastMod != "" {
					stale = e
				}
			}
			if rules.onlyIfCached {
				cl.err = &UpstreamError{Err: ErrOnlyIfCached, API: cl.target.API, RequestID: rid, Detail: "only-if-cached and nothing fresh is stored"}
				return
			}
			cl.cacheStatus = CacheMiss
		}
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead && policy.Enabled {
		// An unsafe method's success invalidates the stored answers of
		// the URI (RFC 9111 4.4); done once the answer is known.
		primary = p.cacheKey(cl, policy, r)
	}

	// The forwarded request.
	svcHeaders, err := c.serviceHeaders(cl.start)
	if err != nil {
		p.log.Error("gateway: service credentials unavailable", "service", c.name, "err", err)
		cl.err = api.Errorf(http.StatusBadGateway, "upstream_misconfigured", "the gateway could not load the credentials of service %s (request id %s)", c.name, rid)
		return
	}
	out := &http.Request{
		Method:     r.Method,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     outboundHeader(r.Header, 10+len(svcHeaders)),
	}
	if body != nil {
		out.Body = body
		out.ContentLength = r.ContentLength // -1: chunked
	}
	setForwarded(out.Header, r)
	// The upstream joins the request's trace as a child of the ingress's
	// server span (replacing the client's traceparent, its parent).
	tracing.Inject(r.Context(), out.Header)
	out.Header[HeaderRequestID] = []string{rid}
	t := cl.target
	out.Header[HeaderTenant] = []string{t.Consumer.Tenant}
	out.Header[HeaderConsumer] = []string{cl.consumer}
	out.Header[HeaderAPI] = []string{t.API}
	if t.Version != "" {
		out.Header[HeaderAPIVersion] = []string{t.Version}
	}
	for _, h := range svcHeaders {
		out.Header[h[0]] = []string{h[1]}
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // not Go's default
	}
	if stale != nil && r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == "" {
		if stale.etag != "" {
			out.Header["If-None-Match"] = []string{stale.etag}
		}
		if stale.lastMod != "" {
			out.Header["If-Modified-Since"] = []string{stale.lastMod}
		}
	} else {
		stale = nil
	}
	pathAndQuery := cl.route
	if strings.Contains(r.URL.RawQuery, "version=") && r.Header.Get(HeaderAPIVersion) == "" {
		pathAndQuery = stripVersion(pathAndQuery)
	}
	path, rawQuery, _ := strings.Cut(pathAndQuery, "?")

	hashKey := ""
	if _, isHash := c.selector.(*HashRing); isHash {
		hashKey = cl.consumer
		if c.hashOn != "" {
			if v := r.Header.Get(c.hashOn); v != "" {
				hashKey = v
			}
		}
	}

	// Tries. One timer per try bounds the wait for the answer's headers
	// (the per-try timeout, cut to what is left of the overall one); once
	// they arrive the same timer becomes the idle timeout of the bodies.
	c.budget.begin()
	defer c.budget.end()
	canRetry := idempotent(r) && upgradeType(r.Header) == ""
	var (
		tried    uint64
		resp     *http.Response
		timer    *tryTimer
		lastErr  error
		timedOut bool
		upStart  = time.Now()
		deadline = upStart.Add(c.request)
		tp       = c.transport
	)
	for {
		i := c.selector.Select(c.endpoints, hashKey, tried, time.Now().UnixNano())
		if i < 0 {
			if cl.tries > 0 && cl.retries >= cl.tries {
				// A retry was reserved but no instance is left for it.
				c.budget.endRetry()
				cl.retries--
			}
			if lastErr == nil {
				cl.err = &UpstreamError{Err: ErrNoHealthyUpstream, API: t.API, RequestID: rid, Tries: cl.tries,
					Detail: "every instance of service " + c.name + " is unhealthy or ejected"}
				return
			}
			break
		}
		if i < 64 {
			tried |= 1 << uint(i)
		}
		ep := c.endpoints[i]
		cl.ep = ep
		cl.tries++
		out.URL = &url.URL{Scheme: ep.scheme, Host: ep.host, Path: ep.basePath + path, RawQuery: rawQuery}
		if ep.basePath != "" || strings.Contains(path, "%") {
			out.URL.RawPath = ep.basePath + path
			if p, err := url.PathUnescape(out.URL.RawPath); err == nil {
				out.URL.Path = p
			}
		}
		out.Host = ep.host

		tryCtx, cancel := context.WithCancel(ctx)
		timer = newTryTimer(min(c.perTry, time.Until(deadline)), cancel)
		if body != nil {
			body.timer.Store(timer)
		}
		ep.outstanding.Add(1)
		resp, err = tp.RoundTrip(out.WithContext(tryCtx))
		fired := timer.fired()
		if cl.tries > 1 {
			c.budget.endRetry() // the retry is no longer in flight
		}
		if err == nil && fired {
			// The timer fired as the headers arrived: the body is cut.
			resp.Body.Close()
			resp, err = nil, context.DeadlineExceeded
		}
		if err == nil {
			if resp.StatusCode >= 500 {
				c.m.fail5xx[i].Inc()
				c.observe(ep, outcomeFailure, time.Now())
				if canRetry && retryableStatus(resp.StatusCode) && time.Now().Before(deadline) && p.mayRetry(cl, body) {
					timer.stop()
					drain(resp)
					cancel()
					ep.outstanding.Add(-1)
					lastErr = errors.New("upstream answered " + strconv.Itoa(resp.StatusCode))
					resp = nil
					continue
				}
			} else {
				c.m.ok[i].Inc()
				c.observe(ep, outcomeOK, time.Now())
			}
			break
		}
		timer.stop()
		ep.outstanding.Add(-1)
		cancel()
		switch {
		case ctx.Err() != nil:
			// The client went away.
			c.observe(ep, outcomeNeutral, time.Now())
			cl.err = ctx.Err()
			return
		case fired:
			timedOut = true
			c.m.failTimeout[i].Inc()
		default:
			timedOut = false
			c.m.failErr[i].Inc()
		}
		var tooLarge *errBodyTooLarge
		if errors.As(err, &tooLarge) {
			cl.err = &http.MaxBytesError{Limit: tooLarge.limit}
			return
		}
		c.observe(ep, outcomeFailure, time.Now())
		lastErr = err
		if !time.Now().Before(deadline) || !canRetry || !p.mayRetry(cl, body) {
			break
		}
	}
	cl.upstreamDur = time.Since(upStart)
	tracing.Observe(r.Context(), c.m.upstream, cl.upstreamDur.Seconds())
	if resp == nil {
		kind, detail := ErrUpstreamUnreachable, describeDialError(lastErr)
		if timedOut {
			kind, detail = ErrUpstreamTimeout, "no answer within the timeout"
		}
		cl.err = &UpstreamError{Err: kind, API: t.API, RequestID: rid, Tries: cl.tries, Detail: detail}
		return
	}
	defer timer.stop() // cancels nothing once stopped; the try context ends with the call
	defer cl.ep.outstanding.Add(-1)
	defer resp.Body.Close()

	// A stale entry confirmed by the upstream.
	if stale != nil && resp.StatusCode == http.StatusNotModified {
		now := time.Now()
		if e := stale.refreshed(resp.Header, upStart, now, policy.MaxTTL); e != nil {
			p.cache.put(primary, varyNames(e.header), r.Header, e)
			stale = e
		}
		cl.cacheStatus = CacheRevalidated
		c.m.cacheStatus(CacheRevalidated)
		p.serveCached(w, r, cl, stale, now, "fwd=stale; fwd-status=304")
		return
	}
	if cl.cacheStatus != "" {
		c.m.cacheStatus(cl.cacheStatus)
	}
	if primary != "" && !cacheable && resp.StatusCode < 400 {
		p.cache.invalidate(primary)
	}

	// The answer.
	h := w.Header()
	copyResponseHeader(h, resp.Header)
	keepTargetLinks(h, resp.Header, t)
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		cl.status = http.StatusSwitchingProtocols
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = resp.Header["Upgrade"]
		in, outN, err := switchProtocols(ctx, w, resp)
		cl.in, cl.out = in, outN
		if err != nil {
			p.log.Warn("gateway: upgrade failed", "request_id", rid, "err", err)
		}
		return
	}
	var tee *teeBuffer
	var entry *cacheEntry
	var vary []string
	if cacheable && r.Method == http.MethodGet {
		entry, vary = newEntry(r.Method, r.Header.Get("Cache-Control"), resp.StatusCode, resp.Header, upStart, time.Now(), policy.MaxTTL)
		if entry != nil && (resp.ContentLength < 0 || resp.ContentLength <= policy.MaxEntryBytes) {
			tee = &teeBuffer{max: policy.MaxEntryBytes}
			if resp.ContentLength > 0 {
				tee.buf = make([]byte, 0, resp.ContentLength)
			}
			h.Set(HeaderCacheStatus, "gateflow; fwd=miss; stored")
		} else {
			entry = nil
		}
	}
	if cl.cacheStatus != "" && entry == nil {
		h.Set(HeaderCacheStatus, "gateflow; fwd=miss")
	}
	cl.status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	idle := timer.idle(c.idle)
	flush := resp.ContentLength == -1 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	n, err := copyBody(w, resp.Body, flush, idle, tee)
	idleFired := idle.stop()
	cl.out = n
	if err != nil {
		var cwe *clientWriteError
		switch {
		case errors.As(err, &cwe):
			cl.status = api.StatusClientClosed
		case idleFired:
			p.log.Warn("gateway: upstream body stalled; call cut", "request_id", rid, "service", c.name, "upstream", cl.ep.Name)
			cl.status = http.StatusGatewayTimeout
		default:
			// The upstream cut the body: the client sees a truncated
			// answer; net/http closes its connection.
			cl.status = http.StatusBadGateway
		}
		if cl.status != api.StatusClientClosed {
			// Like net/http/httputil: the client must see a broken answer,
			// not a complete-looking short one. net/http closes the
			// connection silently.
			defer panic(http.ErrAbortHandler)
		}
		return
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
	if tee != nil && !tee.over && entry != nil {
		entry.body = tee.buf
		p.cache.put(primary, vary, r.Header, entry)
	}
}

// mayRetry decides whether one more try may go: the body (if any) was not
// read yet, retries are left, and the budget allows one.
func (p *Proxy) mayRetry(cl *call, body *countingBody) bool {
	c := cl.c
	if body != nil && body.n.Load() > 0 {
		return false
	}
	if cl.retries >= c.maxRetry {
		return false
	}
	if !c.budget.tryRetry() {
		c.m.budget.Inc()
		return false
	}
	// The retry holds its budget slot while its try is in flight (Envoy's
	// active retries).
	cl.retries++
	c.m.retries.Inc()
	return true
}

// drain discards a refused answer's body (a little of it, to keep the
// connection reusable) and closes it.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 8<<10)
	resp.Body.Close()
}

// describeDialError names a connection failure without internals.
func describeDialError(err error) string {
	var ne *net.OpError
	if errors.As(err, &ne) && ne.Op == "dial" {
		return "connection refused or unreachable"
	}
	if err != nil && strings.Contains(err.Error(), "answered") {
		return err.Error()
	}
	return "connection failed"
}

// stripVersion removes the gateway's own version= query parameter.
func stripVersion(pathAndQuery string) string {
	path, q, ok := strings.Cut(pathAndQuery, "?")
	if !ok {
		return pathAndQuery
	}
	var kept []string
	for kv := range strings.SplitSeq(q, "&") {
		if kv == "version" || strings.HasPrefix(kv, "version=") {
			continue
		}
		kept = append(kept, kv)
	}
	if len(kept) == 0 {
		return path
	}
	return path + "?" + strings.Join(kept, "&")
}

// cacheKey is the primary cache key: API, version, consumer (unless the
// API's answers are public) and the target path and query.
func (p *Proxy) cacheKey(cl *call, policy CachePolicy, r *http.Request) string {
	scope := "\x00*"
	if !policy.Public {
		scope = "\x00" + cl.consumer
	}
	return cl.target.API + "\x00" + cl.target.Version + scope + "\x00" + cl.route
}

// serveCached answers from a stored entry: its header with Age and
// Cache-Status, and its body (none for HEAD); a 304 when the client's own
// validators match.
func (p *Proxy) serveCached(w http.ResponseWriter, r *http.Request, cl *call, e *cacheEntry, now time.Time, detail string) {
	h := w.Header()
	for k, vs := range e.header {
		h[k] = vs
	}
	keepTargetLinks(h, e.header, cl.target)
	h["Age"] = []string{strconv.FormatInt(int64(e.age(now)/time.Second), 10)}
	if detail == "hit" {
		left := int64((e.lifetime - e.age(now)) / time.Second)
		h[HeaderCacheStatus] = []string{"gateflow; hit; ttl=" + strconv.FormatInt(left, 10)}
	} else {
		h[HeaderCacheStatus] = []string{"gateflow; " + detail}
	}
	if cl.ep == nil {
		cl.status = e.status
	}
	if notModified(r, e) {
		delete(h, "Content-Length")
		cl.status = http.StatusNotModified
		w.WriteHeader(http.StatusNotModified)
		return
	}
	cl.status = e.status
	h["Content-Length"] = []string{strconv.Itoa(len(e.body))}
	w.WriteHeader(e.status)
	if r.Method == http.MethodHead {
		return
	}
	n, _ := w.Write(e.body)
	cl.out = int64(n)
}
