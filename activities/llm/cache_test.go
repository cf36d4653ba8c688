package llm

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/analytics/record"
)

func zeroTemp(model, text string) *ChatRequest {
	req := userRequest(model, text)
	zero := 0.0
	req.Temperature = &zero
	return req
}

func chatJSON(t *testing.T, r *ChatResponse) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCacheDeterministicHit(t *testing.T) {
	srv := okProvider(t)
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {InputPerMTok: 1, OutputPerMTok: 2}}), nil)
	ctx := context.Background()
	first, err := env.gw.Chat(ctx, zeroTemp("p/m", "hi"), CallOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if first.Cache == nil || first.Cache.Status != CacheMiss {
		t.Errorf("first cache info %+v", first.Cache)
	}
	env.clock.Advance(3 * time.Second)
	second, err := env.gw.Chat(ctx, zeroTemp("p/m", "hi"), CallOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.Requests()) != 1 {
		t.Fatalf("provider called %d times", len(srv.Requests()))
	}
	if second.Cache == nil || second.Cache.Status != CacheHit || second.Cache.Age != 3*time.Second {
		t.Errorf("second cache info %+v", second.Cache)
	}
	// The hit is the first answer, byte for byte.
	if a, b := chatJSON(t, first), chatJSON(t, second); a != b {
		t.Errorf("hit differs\nfirst:  %s\nsecond: %s", a, b)
	}
	// Modifying the answer does not modify the cache.
	second.Choices[0].Message.Content = textJSON("changed")
	third, _ := env.gw.Chat(ctx, zeroTemp("p/m", "hi"), CallOptions{Tenant: "acme"})
	if third.Choices[0].Message.Text() == "changed" {
		t.Error("cache entry modified through an answer")
	}
	recs := env.recs.All()
	if len(recs) != 3 {
		t.Fatalf("records %+v", recs)
	}
	miss, hit := recs[0], recs[1]
	if miss.Cache != CacheMiss || miss.TokensIn != 19 || miss.CostUSD == 0 {
		t.Errorf("miss record %+v", miss)
	}
	if hit.Cache != CacheHit || hit.TokensIn != 0 || hit.CostUSD != 0 || hit.CostSavedUSD != miss.CostUSD || hit.Target != "p/m" || hit.Outcome != record.OutcomeOK {
		t.Errorf("hit record %+v", hit)
	}
}

func TestCacheNeverSharedAcrossTenants(t *testing.T) {
	srv := okProvider(t)
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}}), nil)
	ctx := context.Background()
	for _, tenant := range []string{"acme", "globex", "acme", "globex", ""} {
		if _, err := env.gw.Chat(ctx, zeroTemp("p/m", "the same question"), CallOptions{Tenant: tenant}); err != nil {
			t.Fatal(err)
		}
	}
	// acme, globex and the tenant-less call each paid once.
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("provider called %d times, want 3 (one per tenant)", n)
	}
	hits := 0
	for _, r := range env.recs.All() {
		if r.Cache == CacheHit {
			hits++
		}
	}
	if hits != 2 {
		t.Errorf("%d hits", hits)
	}
}

func TestCacheEligibility(t *testing.T) {
	srv := okProvider(t)
	cfg := oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}})
	cfg.Aliases = map[string]Alias{"cached": {Targets: []AliasTarget{{Model: "p/m"}}, Cache: &AliasCache{Enabled: true, TTL: "1h"}}}
	env := newTestGateway(t, cfg, nil)
	ctx := context.Background()
	warm := 0.7
	tools := zeroTemp("p/m", "with tools")
	tools.Tools = []Tool{{Type: "function", Function: FunctionDecl{Name: "send_email"}}}
	hot := userRequest("p/m", "creative")
	hot.Temperature = &warm
	cases := []struct {
		name  string
		req   *ChatRequest
		opts  CallOptions
		calls int // provider calls for two identical requests
		first string
	}{
		{"temperature 0.7", hot, CallOptions{}, 2, CacheBypass},
		{"no temperature", userRequest("p/m", "default temperature"), CallOptions{}, 2, CacheBypass},
		{"tools", tools, CallOptions{}, 2, CacheBypass},
		{"caller asks", userRequest("p/m", "asked"), CallOptions{Cache: CacheOn}, 1, CacheMiss},
		{"alias cache", userRequest("cached", "alias"), CallOptions{}, 1, CacheMiss},
		{"caller refuses", zeroTemp("p/m", "refused"), CallOptions{Cache: CacheOff}, 2, CacheBypass},
		{"refresh", zeroTemp("p/m", "refreshed"), CallOptions{Cache: CacheRefreshOnly}, 2, CacheRefresh},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.Requests())
			r1, err := env.gw.Chat(ctx, tc.req, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.gw.Chat(ctx, tc.req, tc.opts); err != nil {
				t.Fatal(err)
			}
			if got := len(srv.Requests()) - before; got != tc.calls {
				t.Errorf("%d provider calls, want %d", got, tc.calls)
			}
			if r1.Cache.Status != tc.first {
				t.Errorf("first status %s, want %s", r1.Cache.Status, tc.first)
			}
		})
	}
	// A refreshed answer is served to later callers.
	before := len(srv.Requests())
	if r, _ := env.gw.Chat(ctx, zeroTemp("p/m", "refreshed"), CallOptions{}); r.Cache.Status != CacheHit || len(srv.Requests()) != before {
		t.Errorf("refreshed answer not stored: %+v", r.Cache)
	}
}

func TestCacheTTL(t *testing.T) {
	srv := okProvider(t)
	cfg := oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}})
	cfg.Cache = CachePolicy{TTL: "1m", MaxTTL: "2m"}
	env := newTestGateway(t, cfg, nil)
	ctx := context.Background()
	call := func(opts CallOptions) string {
		r, err := env.gw.Chat(ctx, zeroTemp("p/m", "q"), opts)
		if err != nil {
			t.Fatal(err)
		}
		return r.Cache.Status
	}
	call(CallOptions{})
	env.clock.Advance(59 * time.Second)
	if s := call(CallOptions{}); s != CacheHit {
		t.Errorf("before the TTL: %s", s)
	}
	env.clock.Advance(2 * time.Second)
	if s := call(CallOptions{CacheTTL: time.Hour}); s != CacheMiss {
		t.Errorf("after the TTL: %s", s)
	}
	// The caller's TTL is capped by max_ttl (2m).
	env.clock.Advance(119 * time.Second)
	if s := call(CallOptions{}); s != CacheHit {
		t.Errorf("within max_ttl: %s", s)
	}
	env.clock.Advance(2 * time.Second)
	if s := call(CallOptions{}); s != CacheMiss {
		t.Errorf("beyond max_ttl: %s", s)
	}
}

func TestCacheBoundedLRU(t *testing.T) {
	c := newResponseCache(16 * 1000) // 1000 bytes per shard
	now := time.Now()
	keys := []cacheKey{}
	for i := 0; i < 40; i++ {
		k := newCacheKey("chat", "t", "m", []byte{byte(i)})
		keys = append(keys, k)
		c.put(&cacheEntry{key: k, tenant: "t", chat: &ChatResponse{}, size: 300, expires: now.Add(time.Hour)})
	}
	_, bytes := c.size()
	if bytes > 16*1000 {
		t.Errorf("%d bytes held over the bound", bytes)
	}
	// Per shard at most 3 entries of 300 bytes; the newest survive.
	if c.get(keys[39], "t", now) == nil {
		t.Error("newest entry evicted")
	}
	if c.get(keys[39], "other", now) != nil {
		t.Error("entry served to another tenant")
	}
	// An entry above the shard bound is not stored.
	big := newCacheKey("chat", "t", "m", []byte("big"))
	c.put(&cacheEntry{key: big, tenant: "t", chat: &ChatResponse{}, size: 2000, expires: now.Add(time.Hour)})
	if c.get(big, "t", now) != nil {
		t.Error("oversized entry stored")
	}
	c.resize(0)
	if n, b := c.size(); n != 0 || b != 0 {
		t.Errorf("after resize to 0: %d entries, %d bytes", n, b)
	}
}

// A streamed answer is stored once complete; the same request, streamed
// or not, is then answered from the cache.
func TestCacheStreams(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "openai/chat_tool_stream.sse")))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {InputPerMTok: 1}}), nil)
	ctx := context.Background()
	req := zeroTemp("p/m", "weather?")
	s, err := env.gw.ChatStream(ctx, req, CallOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Cache().Status != CacheMiss {
		t.Errorf("first stream %+v", s.Cache())
	}
	first, err := Collect(s)
	if err != nil {
		t.Fatal(err)
	}
	s, err = env.gw.ChatStream(ctx, req, CallOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Cache().Status != CacheHit {
		t.Errorf("second stream %+v", s.Cache())
	}
	chunks := readAll(t, s)
	s.Close()
	replayed := &assembler{}
	for _, c := range chunks {
		replayed.add(c)
	}
	if a, b := chatJSON(t, first), chatJSON(t, replayed.response()); a != b {
		t.Errorf("replay differs\nfirst:  %s\nreplay: %s", a, b)
	}
	if last := chunks[len(chunks)-1]; last.Usage == nil || last.Usage.PromptTokens != 82 || last.Usage.CostUSD != first.Usage.CostUSD {
		t.Errorf("replayed usage %+v", last.Usage)
	}
	plain, err := env.gw.Chat(ctx, req, CallOptions{Tenant: "acme"})
	if err != nil || plain.Cache.Status != CacheHit || plain.Choices[0].Message.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` {
		t.Errorf("plain after stream: %+v %v", plain, err)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("provider called %d times", n)
	}
}

// A stream that fails or is closed early is not stored.
func TestCacheIncompleteStreamNotStored(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.SSE(llmtest.Fixture(t, "openai/chat_stream.sse")))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}}), nil)
	req := zeroTemp("p/m", "hi")
	s, err := env.gw.ChatStream(context.Background(), req, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	s.Close()
	if n, _ := env.gw.cache.size(); n != 0 {
		t.Errorf("%d entries after a closed stream", n)
	}
}

func TestCacheEmbeddings(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/embeddings_response.json")))
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"e": {InputPerMTok: 0.02}}), nil)
	ctx := context.Background()
	first, err := env.gw.Embed(ctx, embedRequest("p/e", `["a","b"]`), CallOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	req := embedRequest("p/e", `["a","b"]`)
	req.EncodingFormat = "base64" // the same vectors
	second, err := env.gw.Embed(ctx, req, CallOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if second.Cache.Status != CacheHit || len(srv.Requests()) != 1 {
		t.Fatalf("second %+v, %d calls", second.Cache, len(srv.Requests()))
	}
	a, _ := json.Marshal(first)
	b, _ := json.Marshal(second)
	if string(a) != string(b) {
		t.Errorf("hit differs:\n%s\n%s", a, b)
	}
	if _, err := env.gw.Embed(ctx, embedRequest("p/e", `["a","b"]`), CallOptions{Tenant: "globex"}); err != nil || len(srv.Requests()) != 2 {
		t.Errorf("another tenant served from the cache: %v", err)
	}
}

func TestCachePurgedWhenModelsChange(t *testing.T) {
	srv := okProvider(t)
	cfg := oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}})
	env := newTestGateway(t, cfg, nil)
	ctx := context.Background()
	_, _ = env.gw.Chat(ctx, zeroTemp("p/m", "q"), CallOptions{})
	if err := env.gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if r, _ := env.gw.Chat(ctx, zeroTemp("p/m", "q"), CallOptions{}); r.Cache.Status != CacheHit {
		t.Error("an identical reload emptied the cache")
	}
	changed := oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {InputPerMTok: 5}})
	if err := env.gw.Reload(changed); err != nil {
		t.Fatal(err)
	}
	if r, _ := env.gw.Chat(ctx, zeroTemp("p/m", "q"), CallOptions{}); r.Cache.Status != CacheMiss {
		t.Error("a changed model configuration kept the cache")
	}
}

// Cache hits cost nothing and take no budget.
func TestCacheHitSkipsBudget(t *testing.T) {
	srv := okProvider(t)
	spend := &fakeSpend{}
	clock := newFakeClock()
	budget := NewBudgets(spend, LimitFunc(func(string) (int64, int64) { return 1_000_000, 0 }), clock, BudgetPolicy{})
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}}), budget)
	ctx := context.Background()
	_, _ = env.gw.Chat(ctx, zeroTemp("p/m", "q"), CallOptions{Tenant: "acme"})
	spend.set(2_000_000, 0, nil) // over budget now
	clock.Advance(time.Minute)   // past the spend cache
	r, err := env.gw.Chat(ctx, zeroTemp("p/m", "q"), CallOptions{Tenant: "acme"})
	if err != nil || r.Cache.Status != CacheHit {
		t.Errorf("hit refused by the budget: %v", err)
	}
	if _, err := env.gw.Chat(ctx, zeroTemp("p/m", "another"), CallOptions{Tenant: "acme"}); ClassOf(err) != ClassBudget {
		t.Errorf("miss over budget: %v", err)
	}
}
