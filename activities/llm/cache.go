package llm

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"sync"
	"time"
)

// The response cache: exact-match answers of chat completions and
// embeddings, kept per replica in memory bounded in bytes (LRU), each
// entry scoped to the tenant that asked (the tenant is part of the key and
// checked on every hit: another tenant's identical request is a miss) and
// served for a TTL. A hit is answered without a provider call, budget
// reservation or cost; its call record has cache "hit" and the cost the
// answer had (cost_saved_usd).

// Cache statuses: the Gateflow-Cache answer header and the cache field of
// call records.
const (
	// CacheHit: answered from the cache.
	CacheHit = "hit"
	// CacheMiss: eligible, not found; the answer is stored.
	CacheMiss = "miss"
	// CacheRefresh: the caller asked for a fresh answer, which is stored.
	CacheRefresh = "refresh"
	// CacheBypass: not eligible (or the caller turned the cache off).
	CacheBypass = "bypass"
)

// CacheMode is what a caller asks of the cache (CallOptions.Cache).
type CacheMode int

// Cache modes.
const (
	// CacheAuto caches when the alias asks for it or the request is
	// deterministic (temperature 0, no tools; embeddings always).
	CacheAuto CacheMode = iota
	// CacheOn caches this request whatever its temperature or tools.
	CacheOn
	// CacheOff neither reads nor stores.
	CacheOff
	// CacheRefreshOnly skips the lookup and stores the new answer.
	CacheRefreshOnly
)

// CacheInfo says how the cache took part in an answer.
type CacheInfo struct {
	// Status is CacheHit, CacheMiss, CacheRefresh or CacheBypass.
	Status string
	// Age is how old a hit is.
	Age time.Duration
}

// cachePolicy is CachePolicy parsed.
type cachePolicy struct {
	enabled       bool
	maxBytes      int64
	maxEntry      int64
	ttl           time.Duration
	maxTTL        time.Duration
	deterministic bool
}

func (c CachePolicy) parse() cachePolicy {
	p := cachePolicy{
		enabled:       !c.Disabled,
		maxBytes:      int64(c.MaxMB) << 20,
		maxEntry:      int64(c.MaxEntryKB) << 10,
		ttl:           mustDuration(c.TTL, 10*time.Minute),
		maxTTL:        mustDuration(c.MaxTTL, 24*time.Hour),
		deterministic: c.Deterministic == nil || *c.Deterministic,
	}
	if p.maxBytes == 0 {
		p.maxBytes = 64 << 20
	}
	if p.maxEntry == 0 {
		p.maxEntry = 1 << 20
	}
	return p
}

// cacheKey is the SHA-256 of a request's kind, tenant, model name and
// canonical body.
type cacheKey [sha256.Size]byte

// cacheShards spreads entries over locks.
const cacheShards = 16

// entryOverhead approximates the memory of an entry beyond its JSON size
// (structs, list element, map slot).
const entryOverhead = 512

type cacheEntry struct {
	key     cacheKey
	tenant  string
	chat    *ChatResponse
	emb     *EmbeddingResponse
	target  string
	cost    float64
	stored  time.Time
	expires time.Time
	size    int64
}

type cacheShard struct {
	mu    sync.Mutex
	ll    list.List
	items map[cacheKey]*list.Element
	bytes int64
}

// responseCache is the LRU of answers, bounded in bytes per shard.
type responseCache struct {
	mu       sync.Mutex // guards maxShard changes
	maxShard int64
	shards   [cacheShards]cacheShard
}

func newResponseCache(maxBytes int64) *responseCache {
	c := &responseCache{maxShard: maxBytes / cacheShards}
	for i := range c.shards {
		c.shards[i].items = map[cacheKey]*list.Element{}
	}
	return c
}

func (c *responseCache) shard(k cacheKey) *cacheShard {
	return &c.shards[k[0]%cacheShards]
}

// get returns the live entry of key for tenant.
func (c *responseCache) get(k cacheKey, tenant string, now time.Time) *cacheEntry {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.items[k]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		s.remove(el)
		return nil
	}
	if e.tenant != tenant {
		// The tenant is part of the key, so this cannot happen short of a
		// hash collision; never serve another tenant's answer.
		return nil
	}
	s.ll.MoveToFront(el)
	return e
}

// put stores e, evicting the least recently used entries beyond the
// bound.
func (c *responseCache) put(e *cacheEntry) {
	c.mu.Lock()
	max := c.maxShard
	c.mu.Unlock()
	if e.size > max {
		return
	}
	s := c.shard(e.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[e.key]; ok {
		s.remove(el)
	}
	s.items[e.key] = s.ll.PushFront(e)
	s.bytes += e.size
	for s.bytes > max {
		s.remove(s.ll.Back())
	}
}

func (s *cacheShard) remove(el *list.Element) {
	e := s.ll.Remove(el).(*cacheEntry)
	delete(s.items, e.key)
	s.bytes -= e.size
}

// resize changes the bound, evicting what no longer fits.
func (c *responseCache) resize(maxBytes int64) {
	c.mu.Lock()
	c.maxShard = maxBytes / cacheShards
	max := c.maxShard
	c.mu.Unlock()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for s.bytes > max {
			s.remove(s.ll.Back())
		}
		s.mu.Unlock()
	}
}

// purge drops every entry (the model configuration changed).
func (c *responseCache) purge() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.ll.Init()
		s.items = map[cacheKey]*list.Element{}
		s.bytes = 0
		s.mu.Unlock()
	}
}

// size is the bytes held, for tests.
func (c *responseCache) size() (entries int, bytes int64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		entries += len(s.items)
		bytes += s.bytes
		s.mu.Unlock()
	}
	return entries, bytes
}

// newCacheKey hashes the parts of a request that decide its answer.
func newCacheKey(kind, tenant, model string, body []byte) cacheKey {
	h := sha256.New()
	var n [8]byte
	for _, part := range []string{kind, tenant, model} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	h.Write(body)
	var k cacheKey
	h.Sum(k[:0])
	return k
}

// chatCacheKey is the key of a chat request: every field but the
// streaming ones (a streamed answer and a plain one are the same answer).
func chatCacheKey(tenant string, req *ChatRequest) (cacheKey, error) {
	r := *req
	r.Stream = false
	r.StreamOptions = nil
	b, err := json.Marshal(&r)
	if err != nil {
		return cacheKey{}, err
	}
	return newCacheKey("chat", tenant, req.Model, b), nil
}

// deterministic reports whether a chat request asks for one answer: a
// temperature of 0 and no tools (a tool call answer is a decision the
// caller acts on; it is cached only when asked for).
func deterministic(req *ChatRequest) bool {
	return req.Temperature != nil && *req.Temperature == 0 && len(req.Tools) == 0
}

// cloneChat copies a cached response so that callers may modify theirs.
// Message contents are raw JSON shared with the cache; nothing modifies
// them in place.
func cloneChat(r *ChatResponse) *ChatResponse {
	out := *r
	out.Choices = append([]Choice(nil), r.Choices...)
	for i := range out.Choices {
		m := &out.Choices[i].Message
		m.ToolCalls = append([]ToolCall(nil), m.ToolCalls...)
	}
	if r.Usage.PromptTokensDetails != nil {
		d := *r.Usage.PromptTokensDetails
		out.Usage.PromptTokensDetails = &d
	}
	out.Cache = nil
	return &out
}

// cloneEmbeddings copies a cached embeddings answer (the vectors are
// shared: nothing modifies them in place).
func cloneEmbeddings(r *EmbeddingResponse) *EmbeddingResponse {
	out := *r
	out.Data = append([]Embedding(nil), r.Data...)
	out.Cache = nil
	return &out
}
