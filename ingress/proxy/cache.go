package proxy

import (
	"container/list"
	"hash/maphash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/cachecontrol/cacheobject"
)

// The gateway's answer cache: RFC 9111 semantics for a shared cache
// (pquerna/cachecontrol parses Cache-Control and decides storability and
// the freshness lifetime; this file adds Vary, Age, revalidation and the
// store), over a byte-bounded in-memory LRU per replica. It is a local
// cache, not a cache server: replicas do not share it.

// Cache statuses, as call records and metrics name them.
const (
	CacheHit         = "hit"         // served from the cache
	CacheMiss        = "miss"        // forwarded; stored when allowed
	CacheRevalidated = "revalidated" // stale, the upstream said 304: served from the cache
	CacheBypass      = "bypass"      // the request may not be served from the cache
)

// cacheEntry is one stored answer.
type cacheEntry struct {
	key    string
	status int
	header http.Header
	body   []byte
	// responseTime is when the answer arrived (local clock); correctedAge
	// its age then (RFC 9111 4.2.3).
	responseTime time.Time
	correctedAge time.Duration
	// lifetime is the freshness lifetime, capped by the API's max TTL.
	lifetime time.Duration
	// noCache answers must be revalidated before every use.
	noCache bool
	etag    string
	lastMod string
	size    int64
}

// age is the entry's current age.
func (e *cacheEntry) age(now time.Time) time.Duration {
	return e.correctedAge + now.Sub(e.responseTime)
}

// cacheStore is a byte-bounded LRU split into shards to spread lock
// contention.
type cacheStore struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const cacheShards = 16

type cacheShard struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	lru   list.List                // of *cacheEntry, most recent first
	items map[string]*list.Element // full key -> element
	// vary holds, per primary key, the request headers its answers vary
	// on (nil: none).
	vary map[string][]string
}

func newCacheStore(maxBytes int64) *cacheStore {
	s := &cacheStore{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].max = maxBytes / cacheShards
		s.shards[i].items = map[string]*list.Element{}
		s.shards[i].vary = map[string][]string{}
	}
	return s
}

func (s *cacheStore) shard(primary string) *cacheShard {
	return &s.shards[maphash.String(s.seed, primary)%cacheShards]
}

// varyKey is the full key of the variant of primary selected by the
// request's values of the vary headers.
func varyKey(primary string, names []string, h http.Header) string {
	if len(names) == 0 {
		return primary
	}
	var b strings.Builder
	b.WriteString(primary)
	for _, n := range names {
		b.WriteByte(0)
		b.WriteString(strings.Join(h.Values(n), ","))
	}
	return b.String()
}

// get returns the stored variant of primary that matches the request.
func (s *cacheStore) get(primary string, reqHeader http.Header) *cacheEntry {
	sh := s.shard(primary)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	key := primary
	if names := sh.vary[primary]; names != nil {
		key = varyKey(primary, names, reqHeader)
	}
	el, ok := sh.items[key]
	if !ok {
		return nil
	}
	sh.lru.MoveToFront(el)
	return el.Value.(*cacheEntry)
}

// put stores e as the variant of primary for the request, evicting the
// least recently used entries beyond the shard's bytes.
func (s *cacheStore) put(primary string, varyNames []string, reqHeader http.Header, e *cacheEntry) {
	sh := s.shard(primary)
	e.key = varyKey(primary, varyNames, reqHeader)
	e.size = int64(len(e.body)+len(e.key)) + headerSize(e.header) + 200
	if e.size > sh.max {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.vary[primary]; !sameNames(old, varyNames) {
		// The answers now vary on other headers: the old variants can no
		// longer be selected.
		sh.dropPrimary(primary)
	}
	if len(varyNames) > 0 {
		sh.vary[primary] = varyNames
	} else {
		delete(sh.vary, primary)
	}
	if el, ok := sh.items[e.key]; ok {
		sh.remove(el)
	}
	sh.items[e.key] = sh.lru.PushFront(e)
	sh.bytes += e.size
	for sh.bytes > sh.max {
		sh.remove(sh.lru.Back())
	}
}

// invalidate drops every variant of primary (RFC 9111 4.4: an unsafe
// method's success invalidates the target URI).
func (s *cacheStore) invalidate(primary string) {
	sh := s.shard(primary)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.dropPrimary(primary)
	delete(sh.vary, primary)
}

func (sh *cacheShard) dropPrimary(primary string) {
	for key, el := range sh.items {
		if key == primary || strings.HasPrefix(key, primary+"\x00") {
			sh.remove(el)
		}
	}
}

func (sh *cacheShard) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	sh.lru.Remove(el)
	delete(sh.items, e.key)
	sh.bytes -= e.size
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func headerSize(h http.Header) int64 {
	n := 0
	for k, vs := range h {
		n += len(k)
		for _, v := range vs {
			n += len(v) + 8
		}
	}
	return int64(n)
}

// requestRules are what a request's Cache-Control (or Pragma) asks of the
// cache.
type requestRules struct {
	noStore, noCache, onlyIfCached bool
	maxAge, minFresh, maxStale     time.Duration // -1: not set
}

func parseRequestRules(h http.Header) requestRules {
	r := requestRules{maxAge: -1, minFresh: -1, maxStale: -1}
	cc := h.Get("Cache-Control")
	if cc == "" {
		if strings.Contains(strings.ToLower(h.Get("Pragma")), "no-cache") {
			r.noCache = true
		}
		return r
	}
	d, err := cacheobject.ParseRequestCacheControl(cc)
	if err != nil {
		r.noCache = true // unparsable: do not serve without asking
		return r
	}
	r.noStore, r.noCache, r.onlyIfCached = d.NoStore, d.NoCache, d.OnlyIfCached
	if d.MaxAge >= 0 {
		r.maxAge = time.Duration(d.MaxAge) * time.Second
	}
	if d.MinFresh > 0 {
		r.minFresh = time.Duration(d.MinFresh) * time.Second
	}
	if d.MaxStaleSet || d.MaxStale >= 0 { // the parser sets MaxStaleSet only without a value
		r.maxStale = time.Duration(d.MaxStale) * time.Second
		if d.MaxStale < 0 {
			r.maxStale = 1<<62 - 1 // max-stale without a value: any staleness
		}
	}
	return r
}

// fresh reports whether e may be served to a request with rules r without
// revalidation (RFC 9111 4.2 and 5.2.1).
func (r requestRules) fresh(e *cacheEntry, now time.Time) bool {
	if e.noCache || r.noCache {
		return false
	}
	age := e.age(now)
	if r.maxAge >= 0 && age > r.maxAge {
		return false
	}
	left := e.lifetime - age
	if r.minFresh > 0 {
		left -= r.minFresh
	}
	if left > 0 {
		return true
	}
	// A stale answer only with max-stale, and never a must-revalidate one
	// (those set noCache when stale: see newEntry).
	return r.maxStale > 0 && -left <= r.maxStale
}

// newEntry decides whether a shared cache may store the answer to req
// (RFC 9111 3) and returns the entry to fill, or nil. The upstream's
// freshness lifetime is capped by maxTTL.
func newEntry(reqMethod string, reqCacheControl string, status int, h http.Header, requestTime, responseTime time.Time, maxTTL time.Duration) (*cacheEntry, []string) {
	if reqMethod != http.MethodGet || h.Get("Set-Cookie") != "" {
		return nil, nil
	}
	vary := varyNames(h)
	if vary == nil && h.Get("Vary") != "" {
		return nil, nil // Vary: * (or unparsable): never matches
	}
	var req http.Request
	req.Method = reqMethod
	if reqCacheControl != "" {
		req.Header = http.Header{"Cache-Control": {reqCacheControl}}
	}
	reasons, expires, _, obj, err := cacheobject.UsingRequestResponseWithObject(&req, status, h, false)
	if err != nil || len(reasons) > 0 {
		return nil, nil
	}
	e := &cacheEntry{status: status, responseTime: responseTime, etag: h.Get("Etag"), lastMod: h.Get("Last-Modified")}
	if !expires.IsZero() {
		e.lifetime = min(expires.Sub(obj.NowUTC), maxTTL)
	}
	rd := obj.RespDirectives
	e.noCache = rd.NoCachePresent
	if e.lifetime <= 0 && e.etag == "" && e.lastMod == "" {
		return nil, nil // never fresh and cannot be revalidated
	}
	if (rd.MustRevalidate || rd.ProxyRevalidate || rd.SMaxAge >= 0) && e.lifetime <= 0 {
		e.noCache = true
	}
	// Age (RFC 9111 4.2.3).
	var ageValue time.Duration
	if a, err := strconv.ParseInt(strings.TrimSpace(h.Get("Age")), 10, 64); err == nil && a > 0 {
		ageValue = time.Duration(a) * time.Second
	}
	apparent := time.Duration(0)
	if !obj.RespDateHeader.IsZero() {
		apparent = max(0, responseTime.Sub(obj.RespDateHeader))
	}
	e.correctedAge = max(apparent, ageValue+responseTime.Sub(requestTime))
	e.header = storedHeader(h)
	return e, vary
}

// varyNames returns the canonical header names of Vary (nil for none, and
// for "*", which the caller tells apart).
func varyNames(h http.Header) []string {
	var names []string
	for _, v := range h.Values("Vary") {
		for n := range strings.SplitSeq(v, ",") {
			n = strings.TrimSpace(n)
			switch {
			case n == "":
			case n == "*":
				return nil
			default:
				names = append(names, http.CanonicalHeaderKey(n))
			}
		}
	}
	return names
}

// storedHeader is the header kept with an entry: hop-by-hop fields and
// Age (computed at use) dropped.
func storedHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		if isHopHeader(k) || k == "Age" {
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// refreshed returns a copy of e updated by a 304 answer (RFC 9111 4.3.4):
// the 304's header fields replace the stored ones (except the framing),
// and its freshness applies from now.
func (e *cacheEntry) refreshed(h http.Header, requestTime, responseTime time.Time, maxTTL time.Duration) *cacheEntry {
	merged := make(http.Header, len(e.header))
	for k, vs := range e.header {
		merged[k] = vs
	}
	for k, vs := range h {
		if isHopHeader(k) || k == "Age" || k == "Content-Length" {
			continue
		}
		merged[k] = append([]string(nil), vs...)
	}
	n, _ := newEntry(http.MethodGet, "", e.status, merged, requestTime, responseTime, maxTTL)
	if n == nil {
		return nil
	}
	n.body = e.body
	return n
}

// notModified reports whether the client's own validators match e, so
// that a 304 may answer it (RFC 9110 13.1.2 and 13.1.3).
func notModified(r *http.Request, e *cacheEntry) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if e.etag == "" {
			return false
		}
		for t := range strings.SplitSeq(inm, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(e.etag, "W/") {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" && e.lastMod != "" {
		t, err1 := http.ParseTime(ims)
		lm, err2 := http.ParseTime(e.lastMod)
		return err1 == nil && err2 == nil && !lm.After(t)
	}
	return false
}
