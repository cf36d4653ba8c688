package proxy

import (
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/sysconfig"
)

func endpoints(weights ...int) []*Endpoint {
	var eps []*Endpoint
	for i, w := range weights {
		e, err := newEndpoint(sysconfig.Instance{BaseURL: "http://10.0.0." + strconv.Itoa(i+1) + ":80", Weight: w})
		if err != nil {
			panic(err)
		}
		eps = append(eps, e)
	}
	return eps
}

func TestSelectorsWeights(t *testing.T) {
	cases := []struct {
		name    string
		weights []int
		sel     func([]*Endpoint) Selector
		// tolerance of each share, in calls out of n
		tol int
	}{
		{"round robin 5:1:1", []int{5, 1, 1}, func(e []*Endpoint) Selector { return NewRoundRobin(e) }, 1},
		{"round robin 1:1", []int{1, 1}, func(e []*Endpoint) Selector { return NewRoundRobin(e) }, 1},
		{"least request 3:1 (idle endpoints)", []int{3, 1}, func([]*Endpoint) Selector { return LeastRequest{} }, 7000},
		{"hash ring 2:1 over many keys", []int{2, 1}, func(e []*Endpoint) Selector { return NewHashRing(e) }, 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eps := endpoints(tc.weights...)
			sel := tc.sel(eps)
			const n = 7000
			counts := make([]int, len(eps))
			for k := range n {
				i := sel.Select(eps, "key-"+strconv.Itoa(k), 0, 0)
				if i < 0 {
					t.Fatal("no endpoint")
				}
				counts[i]++
			}
			total := 0
			for _, w := range tc.weights {
				total += w
			}
			for i, w := range tc.weights {
				want := n * w / total
				if d := counts[i] - want; d > tc.tol || -d > tc.tol {
					t.Errorf("endpoint %d (weight %d): %d calls, want %d ± %d (all: %v)", i, w, counts[i], want, tc.tol, counts)
				}
			}
		})
	}
}

func TestRoundRobinInterleaves(t *testing.T) {
	eps := endpoints(5, 1, 1)
	rr := NewRoundRobin(eps)
	run := 0
	for range 14 {
		if rr.Select(eps, "", 0, 0) == 0 {
			run++
			if run > 4 {
				t.Fatal("weight 5 of 7 should never get more than 4 calls in a row with smooth round robin (a a b a c a a, repeated)")
			}
		} else {
			run = 0
		}
	}
}

func TestSelectorsSkipUnavailableAndTried(t *testing.T) {
	for name, mk := range map[string]func([]*Endpoint) Selector{
		"round_robin":   func(e []*Endpoint) Selector { return NewRoundRobin(e) },
		"least_request": func([]*Endpoint) Selector { return LeastRequest{} },
		"hash":          func(e []*Endpoint) Selector { return NewHashRing(e) },
	} {
		t.Run(name, func(t *testing.T) {
			eps := endpoints(1, 1, 1)
			sel := mk(eps)
			now := time.Now().UnixNano()
			eps[0].activeDown.Store(true)
			eps[1].ejectedUntil.Store(now + int64(time.Minute))
			for k := range 50 {
				if i := sel.Select(eps, strconv.Itoa(k), 0, now); i != 2 {
					t.Fatalf("picked %d, want the only available endpoint 2", i)
				}
			}
			// A retry prefers an untried endpoint, but takes a tried one
			// rather than none.
			eps[1].ejectedUntil.Store(0)
			for k := range 50 {
				if i := sel.Select(eps, strconv.Itoa(k), 1<<2, now); i != 1 {
					t.Fatalf("picked %d, want the untried endpoint 1", i)
				}
			}
			if i := sel.Select(eps, "x", 1<<1|1<<2, now); i != 1 && i != 2 {
				t.Fatalf("picked %d with everything tried", i)
			}
			eps[1].activeDown.Store(true)
			eps[2].activeDown.Store(true)
			if i := sel.Select(eps, "x", 0, now); i != -1 {
				t.Fatalf("picked %d with nothing available", i)
			}
		})
	}
}

func TestHashRingSticky(t *testing.T) {
	eps := endpoints(1, 1, 1)
	r := NewHashRing(eps)
	first := map[string]int{}
	for k := range 300 {
		key := "user-" + strconv.Itoa(k)
		first[key] = r.Select(eps, key, 0, 0)
		if again := r.Select(eps, key, 0, 0); again != first[key] {
			t.Fatalf("key %s moved from %d to %d", key, first[key], again)
		}
	}
	// Taking endpoint 0 out moves only its keys.
	eps[0].activeDown.Store(true)
	for key, was := range first {
		now := r.Select(eps, key, 0, 0)
		if was != 0 && now != was {
			t.Fatalf("key %s of endpoint %d moved to %d when endpoint 0 left", key, was, now)
		}
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	eps := endpoints(1, 1)
	eps[0].outstanding.Store(10)
	counts := [2]int{}
	for range 1000 {
		counts[LeastRequest{}.Select(eps, "", 0, 0)]++
	}
	if counts[0] != 0 {
		t.Fatalf("the loaded endpoint got %d of 1000 calls", counts[0])
	}
}

func testCluster(n int, od sysconfig.OutlierDetection, hc *sysconfig.HealthCheck) *cluster {
	p := &Proxy{log: slog.New(slog.DiscardHandler)}
	m, err := newMetrics(p, nil)
	if err != nil {
		panic(err)
	}
	c := &cluster{name: "svc", endpoints: endpoints(make([]int, n)...), outlier: od.Effective(), health: hc, log: p.log}
	c.m = m.forCluster(c)
	return c
}

func TestOutlierDetection(t *testing.T) {
	c := testCluster(4, sysconfig.OutlierDetection{ConsecutiveFailures: 3, BaseEjectionTime: "10s", MaxEjectionTime: "25s", MaxEjectionPercent: 50}, nil)
	now := time.Now()
	e := c.endpoints[0]
	fail := func(e *Endpoint, n int, at time.Time) {
		for range n {
			c.observe(e, outcomeFailure, at)
		}
	}
	fail(e, 2, now)
	c.observe(e, outcomeOK, now) // a success resets the count
	fail(e, 2, now)
	if !e.Available(now.UnixNano()) {
		t.Fatal("ejected before 3 failures in a row")
	}
	fail(e, 1, now)
	if e.Available(now.UnixNano()) {
		t.Fatal("not ejected after 3 failures in a row")
	}
	if !e.Available(now.Add(10*time.Second + time.Millisecond).UnixNano()) {
		t.Fatal("first ejection should last the base time (10s)")
	}
	// Ejected again right after: twice the base time, then capped at 25s.
	back := now.Add(11 * time.Second)
	fail(e, 3, back)
	if e.Available(back.Add(19*time.Second).UnixNano()) || !e.Available(back.Add(21*time.Second).UnixNano()) {
		t.Fatal("second ejection should last 2 x 10s")
	}
	back = back.Add(21 * time.Second)
	fail(e, 3, back)
	if e.Available(back.Add(24*time.Second).UnixNano()) || !e.Available(back.Add(26*time.Second).UnixNano()) {
		t.Fatal("third ejection should be capped at 25s")
	}
	// Floor: 50% of 4 is 2 ejected at most.
	fail(c.endpoints[1], 3, back)
	fail(c.endpoints[2], 3, back)
	avail := 0
	for _, e := range c.endpoints {
		if e.Available(back.UnixNano()) {
			avail++
		}
	}
	if avail != 2 {
		t.Fatalf("%d endpoints available, want 2 (max_ejection_percent 50)", avail)
	}
}

func TestOutlierNeverEjectsTheLast(t *testing.T) {
	for _, n := range []int{1, 2} {
		c := testCluster(n, sysconfig.OutlierDetection{ConsecutiveFailures: 1, MaxEjectionPercent: 100}, nil)
		now := time.Now()
		for _, e := range c.endpoints {
			c.observe(e, outcomeFailure, now)
		}
		avail := 0
		for _, e := range c.endpoints {
			if e.Available(now.UnixNano()) {
				avail++
			}
		}
		if avail != 1 {
			t.Fatalf("%d endpoints: %d available after all failed, want 1", n, avail)
		}
	}
}

func TestActiveHealthThresholds(t *testing.T) {
	c := testCluster(1, sysconfig.OutlierDetection{}, &sysconfig.HealthCheck{Path: "/h", HealthyThreshold: 2, UnhealthyThreshold: 3})
	e := c.endpoints[0]
	steps := []struct {
		ok   bool
		up   bool
		note string
	}{
		{false, true, "1 failure"}, {false, true, "2 failures"}, {true, true, "a pass resets"},
		{false, true, "1"}, {false, true, "2"}, {false, false, "3 failures: down"},
		{true, false, "1 pass"}, {false, false, "a failure resets the passes"}, {true, false, "1 pass"}, {true, true, "2 passes: up"},
	}
	for i, s := range steps {
		c.probed(e, s.ok)
		if up := !e.activeDown.Load(); up != s.up {
			t.Fatalf("step %d (%s): up=%v, want %v", i, s.note, up, s.up)
		}
	}
	// Coming back through the active checks ends a passive ejection.
	e.ejectedUntil.Store(time.Now().Add(time.Hour).UnixNano())
	c.probed(e, false)
	c.probed(e, false)
	c.probed(e, false)
	c.probed(e, true)
	c.probed(e, true)
	if !e.Available(time.Now().UnixNano()) {
		t.Fatal("healthy again but still ejected")
	}
}

func TestRetryBudget(t *testing.T) {
	b := &retryBudget{percent: 20, minConcurrency: 3}
	for range 100 {
		b.begin()
	}
	got := 0
	for range 50 {
		if b.tryRetry() {
			got++
		}
	}
	if got != 20 {
		t.Fatalf("%d retries allowed with 100 calls in flight at 20%%, want 20", got)
	}
	for range 20 {
		b.endRetry()
	}
	for range 100 {
		b.end()
	}
	got = 0
	for range 10 {
		if b.tryRetry() {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("%d retries allowed when idle, want min_retry_concurrency 3", got)
	}
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestCacheStorability(t *testing.T) {
	now := time.Now()
	date := now.UTC().Format(http.TimeFormat)
	cases := []struct {
		name     string
		method   string
		reqCC    string
		status   int
		h        http.Header
		store    bool
		lifetime time.Duration
		noCache  bool
	}{
		{"max-age", "GET", "", 200, hdr("Cache-Control", "max-age=60", "Date", date), true, 60 * time.Second, false},
		{"s-maxage wins for a shared cache", "GET", "", 200, hdr("Cache-Control", "max-age=60, s-maxage=30", "Date", date), true, 30 * time.Second, false},
		{"capped by max ttl", "GET", "", 200, hdr("Cache-Control", "max-age=3600"), true, 5 * time.Minute, false},
		{"no-store", "GET", "", 200, hdr("Cache-Control", "no-store, max-age=60"), false, 0, false},
		{"private", "GET", "", 200, hdr("Cache-Control", "private, max-age=60"), false, 0, false},
		{"request no-store", "GET", "no-store", 200, hdr("Cache-Control", "max-age=60"), false, 0, false},
		{"set-cookie", "GET", "", 200, hdr("Cache-Control", "max-age=60", "Set-Cookie", "a=b"), false, 0, false},
		{"vary star", "GET", "", 200, hdr("Cache-Control", "max-age=60", "Vary", "*"), false, 0, false},
		{"POST", "POST", "", 200, hdr("Cache-Control", "max-age=60"), false, 0, false},
		{"no freshness, no validator", "GET", "", 200, hdr(), false, 0, false},
		{"no freshness, etag: stored for revalidation", "GET", "", 200, hdr("Etag", `"v1"`), true, 0, false},
		{"no-cache with etag", "GET", "", 200, hdr("Cache-Control", "no-cache, max-age=60", "Etag", `"v1"`), true, 60 * time.Second, true},
		{"expires", "GET", "", 200, hdr("Expires", now.Add(90*time.Second).UTC().Format(http.TimeFormat), "Date", date), true, 90 * time.Second, false},
		{"500 without freshness", "GET", "", 500, hdr(), false, 0, false},
		{"404 with max-age", "GET", "", 404, hdr("Cache-Control", "max-age=60"), true, 60 * time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newEntry(tc.method, tc.reqCC, tc.status, tc.h, now, now, 5*time.Minute)
			if (e != nil) != tc.store {
				t.Fatalf("stored=%v, want %v", e != nil, tc.store)
			}
			if e == nil {
				return
			}
			if d := e.lifetime - tc.lifetime; d > 2*time.Second || d < -2*time.Second {
				t.Errorf("lifetime %s, want %s", e.lifetime, tc.lifetime)
			}
			if e.noCache != tc.noCache {
				t.Errorf("noCache %v, want %v", e.noCache, tc.noCache)
			}
		})
	}
}

func TestCacheFreshnessAndAge(t *testing.T) {
	now := time.Now()
	h := hdr("Cache-Control", "max-age=60", "Age", "10", "Date", now.UTC().Format(http.TimeFormat))
	e, _ := newEntry("GET", "", 200, h, now, now, time.Hour)
	if e == nil {
		t.Fatal("not stored")
	}
	if a := e.age(now.Add(5 * time.Second)); a < 15*time.Second || a > 16*time.Second {
		t.Fatalf("age %s, want ~15s (upstream Age 10 + 5 s resident)", a)
	}
	cases := []struct {
		reqCC string
		after time.Duration
		fresh bool
	}{
		{"", 40 * time.Second, true},
		{"", 51 * time.Second, false}, // 10 + 51 > 60
		{"max-age=20", 5 * time.Second, true},
		{"max-age=20", 11 * time.Second, false},
		{"min-fresh=30", 25 * time.Second, false},
		{"no-cache", 0, false},
		{"max-stale=30", 70 * time.Second, true},
		{"max-stale", 500 * time.Second, true},
	}
	for _, tc := range cases {
		r := parseRequestRules(hdr("Cache-Control", tc.reqCC))
		if got := r.fresh(e, now.Add(tc.after)); got != tc.fresh {
			t.Errorf("%q after %s: fresh=%v, want %v", tc.reqCC, tc.after, got, tc.fresh)
		}
	}
	if !parseRequestRules(hdr("Pragma", "no-cache")).noCache {
		t.Error("Pragma: no-cache without Cache-Control should mean no-cache")
	}
}

func TestCacheStoreVaryAndBound(t *testing.T) {
	s := newCacheStore(16 * 4096)
	put := func(primary string, vary []string, req http.Header, body string) {
		s.put(primary, vary, req, &cacheEntry{status: 200, header: http.Header{}, body: []byte(body)})
	}
	put("k", []string{"Accept-Language"}, hdr("Accept-Language", "en"), "hello")
	put("k", []string{"Accept-Language"}, hdr("Accept-Language", "fr"), "bonjour")
	if e := s.get("k", hdr("Accept-Language", "fr")); e == nil || string(e.body) != "bonjour" {
		t.Fatalf("fr variant: %+v", e)
	}
	if e := s.get("k", hdr("Accept-Language", "en")); e == nil || string(e.body) != "hello" {
		t.Fatalf("en variant: %+v", e)
	}
	if e := s.get("k", hdr("Accept-Language", "de")); e != nil {
		t.Fatal("a variant for de was never stored")
	}
	s.invalidate("k")
	if e := s.get("k", hdr("Accept-Language", "fr")); e != nil {
		t.Fatal("invalidated entry still served")
	}
	// The byte bound holds: shards evict their least recently used.
	big := string(make([]byte, 1000))
	for i := range 1000 {
		put("key"+strconv.Itoa(i), nil, nil, big)
	}
	var total int64
	for i := range s.shards {
		total += s.shards[i].bytes
		if s.shards[i].bytes > s.shards[i].max {
			t.Fatalf("shard %d holds %d bytes > %d", i, s.shards[i].bytes, s.shards[i].max)
		}
	}
	if total == 0 {
		t.Fatal("nothing stored")
	}
}

func TestHeaderHygiene(t *testing.T) {
	in := hdr("Authorization", "Bearer gf_secret", "Connection", "keep-alive, X-Drop", "X-Drop", "1", "Keep-Alive", "5",
		"Gateflow-Tenant", "spoofed", "X-Forwarded-For", "1.2.3.4", "Te", "trailers, deflate", "Accept", "application/json",
		"Proxy-Authorization", "Basic x", "Transfer-Encoding", "chunked")
	out := outboundHeader(in, 0)
	for _, k := range []string{"Authorization", "Connection", "X-Drop", "Keep-Alive", "Gateflow-Tenant", "X-Forwarded-For", "Proxy-Authorization", "Transfer-Encoding"} {
		if _, ok := out[k]; ok {
			t.Errorf("%s forwarded", k)
		}
	}
	if out.Get("Accept") != "application/json" || out.Get("Te") != "trailers" {
		t.Errorf("kept fields wrong: %v", out)
	}
	up := outboundHeader(hdr("Connection", "Upgrade", "Upgrade", "websocket"), 0)
	if up.Get("Connection") != "Upgrade" || up.Get("Upgrade") != "websocket" {
		t.Errorf("upgrade fields dropped: %v", up)
	}
	resp := http.Header{}
	copyResponseHeader(resp, hdr("Connection", "close, X-Hop", "X-Hop", "1", "Content-Type", "text/plain", "Keep-Alive", "5"))
	if len(resp) != 1 || resp.Get("Content-Type") != "text/plain" {
		t.Errorf("answer fields: %v", resp)
	}
}

func TestStripVersion(t *testing.T) {
	for in, want := range map[string]string{
		"/a?version=2":         "/a",
		"/a?x=1&version=2&y=3": "/a?x=1&y=3",
		"/a?myversion=2":       "/a?myversion=2",
		"/a":                   "/a",
	} {
		if got := stripVersion(in); got != want {
			t.Errorf("stripVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
