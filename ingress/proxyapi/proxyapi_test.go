package proxyapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
)

func intp(n int) *int { return &n }

func TestWeightedDistribution(t *testing.T) {
	s := getStack(t)
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	s.cfg.set(t, map[string]sysconfig.Service{"weighted": {Instances: []sysconfig.Instance{
		{BaseURL: a.url(), Weight: 3}, {BaseURL: b.url(), Weight: 1},
	}}})
	counts := map[string]int{}
	for range 400 {
		resp, body := s.do(t, "submitter", "GET", "/gw/weighted/id", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		counts[body]++
	}
	// Smooth weighted round robin: exactly 3:1 over whole cycles.
	if counts["a"] != 300 || counts["b"] != 100 {
		t.Fatalf("counts %v, want a=300 b=100", counts)
	}
}

func TestLoadBalancingPolicies(t *testing.T) {
	s := getStack(t)
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	s.cfg.set(t, map[string]sysconfig.Service{
		"sticky": {Instances: []sysconfig.Instance{{BaseURL: a.url()}, {BaseURL: b.url()}},
			LoadBalancing: sysconfig.LoadBalancing{Policy: sysconfig.LBHash, HashOn: "header:X-User"}},
		"least": {Instances: []sysconfig.Instance{{BaseURL: a.url()}, {BaseURL: b.url()}},
			LoadBalancing: sysconfig.LoadBalancing{Policy: sysconfig.LBLeastRequest}},
	})
	seen := map[string]bool{}
	for u := range 20 {
		user := fmt.Sprintf("user-%d", u)
		_, first := s.do(t, "submitter", "GET", "/gw/sticky/id", nil, "X-User", user)
		seen[first] = true
		for range 3 {
			if _, again := s.do(t, "submitter", "GET", "/gw/sticky/id", nil, "X-User", user); again != first {
				t.Fatalf("%s went to %s then %s", user, first, again)
			}
		}
	}
	if len(seen) != 2 {
		t.Fatalf("20 users all hashed to %v", seen)
	}
	for range 20 {
		if resp, body := s.do(t, "submitter", "GET", "/gw/least/id", nil); resp.StatusCode != 200 || (body != "a" && body != "b") {
			t.Fatalf("least_request: %d %s", resp.StatusCode, body)
		}
	}
}

// An instance killed under load is ejected (passively at once, actively
// by its health checks) without an error for idempotent calls, and takes
// calls again once its health checks pass.
func TestEjectionUnderLoadAndReturn(t *testing.T) {
	s := getStack(t)
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	s.cfg.set(t, map[string]sysconfig.Service{"fleet": {
		Instances:        []sysconfig.Instance{{BaseURL: a.url()}, {BaseURL: b.url()}},
		HealthCheck:      &sysconfig.HealthCheck{Path: "/health", Interval: "100ms", Timeout: "500ms", HealthyThreshold: 2, UnhealthyThreshold: 2},
		OutlierDetection: sysconfig.OutlierDetection{ConsecutiveFailures: 2, BaseEjectionTime: "30s"},
		RetryBudget:      sysconfig.RetryBudget{MaxRetries: intp(2), MinRetryConcurrency: 16},
	}})
	var (
		stop   atomic.Bool
		sent   atomic.Int64
		errs   atomic.Int64
		mu     sync.Mutex
		sample []string
		wg     sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := s.send("submitter", "GET", "/gw/fleet/id", nil)
				sent.Add(1)
				if err != nil {
					errs.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs.Add(1)
					mu.Lock()
					sample = append(sample, fmt.Sprintf("%d %s", resp.StatusCode, body))
					mu.Unlock()
				}
			}
		})
	}
	eventually(t, 10*time.Second, "load on both instances", func() bool { return a.hits.Load() > 50 && b.hits.Load() > 50 })
	b.stop()
	before := sent.Load()
	eventually(t, 10*time.Second, "200 calls after the kill", func() bool { return sent.Load() > before+200 })
	bHits := b.hits.Load()
	b.start(t)
	eventually(t, 15*time.Second, "b back after its health checks pass", func() bool { return b.hits.Load() > bHits+20 })
	stop.Store(true)
	wg.Wait()
	if n := errs.Load(); n != 0 {
		t.Fatalf("%d of %d idempotent calls failed while one instance stayed healthy; e.g. %v", n, sent.Load(), sample[:min(3, len(sample))])
	}
	var retried int
	for _, r := range s.rec.Kind(calls.KindProxy) {
		if r.API == "fleet" && r.Retries > 0 {
			retried++
		}
	}
	t.Logf("%d calls, %d retried on another instance", sent.Load(), retried)
}

// Under a full outage the retry budget bounds the retries in flight to a
// fraction of the calls in flight.
func TestRetryBudgetFullOutage(t *testing.T) {
	s := getStack(t)
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	a.mode.Store("hold")
	b.mode.Store("hold")
	s.cfg.set(t, map[string]sysconfig.Service{"outage": {
		Instances:        []sysconfig.Instance{{BaseURL: a.url()}, {BaseURL: b.url()}},
		OutlierDetection: sysconfig.OutlierDetection{Disabled: true},
		RetryBudget:      sysconfig.RetryBudget{MaxRetries: intp(2), BudgetPercent: 20, MinRetryConcurrency: 2},
	}})
	const n = 40
	var wg sync.WaitGroup
	var done atomic.Int64
	statuses := make(chan int, n)
	for range n {
		wg.Go(func() {
			resp, err := s.send("submitter", "GET", "/gw/outage/id", nil)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses <- resp.StatusCode
			}
			done.Add(1)
		})
	}
	held := func() int64 { return a.held.Load() + b.held.Load() }
	eventually(t, 10*time.Second, "every first try at an instance", func() bool { return held() == n })
	// Release the first wave (503): each call wants a retry.
	a.releaseAll() // retries park again
	b.releaseAll()
	// Calls refused a retry end now; the retries that got a slot park.
	eventually(t, 20*time.Second, "the calls without a retry to end", func() bool {
		retries := held() - n
		if retries > 0 && done.Load()+retries == n {
			return true
		}
		if time.Now().UnixMilli()%1000 < 50 {
			t.Logf("held %d (retries %d), calls done %d", held(), retries, done.Load())
		}
		return false
	})
	retries := held() - n
	if retries < 2 || retries > n*20/100 {
		t.Fatalf("%d retries in flight for %d calls: want between min_retry_concurrency 2 and 20%% of the calls (%d)", retries, n, n*20/100)
	}
	a.mode.Store("fail")
	b.mode.Store("fail")
	a.releaseAll()
	b.releaseAll()
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusServiceUnavailable {
			t.Fatalf("status %d: the upstream's 503 should be passed through", st)
		}
	}
	t.Logf("%d calls, %d retries admitted by the budget", n, retries)
}

func TestErrors(t *testing.T) {
	s := getStack(t)
	slow := startUpstream(t, "slow")
	sick := startUpstream(t, "sick")
	sick.mode.Store("sick")
	dead := startUpstream(t, "dead")
	dead.stop()
	s.cfg.set(t, map[string]sysconfig.Service{
		"slow": {BaseURL: slow.url(), Timeouts: sysconfig.Timeouts{PerTry: "200ms", Request: "1s"}, RetryBudget: sysconfig.RetryBudget{MaxRetries: intp(0)}},
		"dead": {BaseURL: dead.url()},
		"sick": {BaseURL: sick.url(), HealthCheck: &sysconfig.HealthCheck{Path: "/health", Interval: "100ms", UnhealthyThreshold: 1}},
		"mine": {BaseURL: slow.url(), Owner: "other"},
	})
	cases := []struct {
		name, path string
		status     int
		code       string
	}{
		{"upstream timeout", "/gw/slow/slow?ms=5000", 504, "upstream_timeout"},
		{"connection refused after retries", "/gw/dead/id", 502, "upstream_unreachable"},
		{"another tenant's API", "/gw/mine/id", 404, "api_not_found"},
		{"no such API", "/gw/nope/id", 404, "api_not_found"},
		{"version of an unversioned API", "/gw/slow/id?version=2", 404, "api_not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do(t, "submitter", "GET", tc.path, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			e := decodeError(t, body)
			if e.Error.Code != tc.code {
				t.Fatalf("code %q, want %q", e.Error.Code, tc.code)
			}
			if tc.status >= 500 && !strings.Contains(e.Error.Message, resp.Header.Get("X-Request-Id")) {
				t.Fatalf("message %q lacks the request id %s", e.Error.Message, resp.Header.Get("X-Request-Id"))
			}
		})
	}
	t.Run("no healthy upstream", func(t *testing.T) {
		var resp *http.Response
		var body string
		eventually(t, 10*time.Second, "the sick instance to be taken out", func() bool {
			resp, body = s.do(t, "submitter", "GET", "/gw/sick/id", nil)
			return resp.StatusCode == 503
		})
		if e := decodeError(t, body); e.Error.Code != "no_healthy_upstream" {
			t.Fatalf("code %q", e.Error.Code)
		}
	})
	t.Run("upstream errors pass through untouched", func(t *testing.T) {
		for _, code := range []int{404, 409, 500} {
			resp, body := s.do(t, "submitter", "POST", fmt.Sprintf("/gw/slow/status?code=%d", code), strings.NewReader("{}"))
			if resp.StatusCode != code || body != fmt.Sprintf(`{"upstream":"says %d"}`, code) || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
			}
		}
	})
	t.Run("no key", func(t *testing.T) {
		if resp, _ := s.do(t, "", "GET", "/gw/slow/id", nil); resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestLimits(t *testing.T) {
	s := getStack(t)
	u := startUpstream(t, "u")
	s.cfg.set(t, map[string]sysconfig.Service{
		"limited":     {BaseURL: u.url(), GatewayRateLimit: sysconfig.RateLimit{RPS: 0.001, Burst: 2}},
		"cat-limited": {BaseURL: u.url(), GatewayRateLimit: sysconfig.RateLimit{RPS: 0.001, Burst: 2}},
		"small":       {BaseURL: u.url(), MaxRequestBodyBytes: 1024},
	})
	// The service's own route, and a catalogue-like target that names no
	// API limit: the service's rate_limit applies to both.
	var resp *http.Response
	var body string
	for _, svc := range []string{"limited", "cat-limited"} {
		for i := range 2 {
			resp, body := s.do(t, "submitter", "GET", "/gw/"+svc+"/id", nil)
			if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "2" {
				t.Fatalf("%s call %d: %d %s %v", svc, i, resp.StatusCode, body, resp.Header)
			}
		}
		resp, body = s.do(t, "submitter", "GET", "/gw/"+svc+"/id", nil)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Remaining") != "0" {
			t.Fatalf("%s third call: %d %s %v", svc, resp.StatusCode, body, resp.Header)
		}
		if e := decodeError(t, body); e.Error.Code != "rate_limited" {
			t.Fatalf("%s code %q", svc, e.Error.Code)
		}
	}
	if resp, body := s.do(t, "submitter", "POST", "/gw/small/upload", strings.NewReader(strings.Repeat("x", 1024))); resp.StatusCode != 200 || body != "1024" {
		t.Fatalf("at the limit: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, "submitter", "POST", "/gw/small/upload", strings.NewReader(strings.Repeat("x", 1025)))
	if resp.StatusCode != 413 {
		t.Fatalf("over the limit: %d %s", resp.StatusCode, body)
	}
	// Without a length the limit cuts the stream.
	resp, body = s.do(t, "submitter", "POST", "/gw/small/upload", io.MultiReader(strings.NewReader(strings.Repeat("x", 4000))))
	if resp.StatusCode != 413 && resp.StatusCode != 400 {
		t.Fatalf("chunked over the limit: %d %s", resp.StatusCode, body)
	}
}

func TestHeaderHygiene(t *testing.T) {
	s := getStack(t)
	u := startUpstream(t, "u")
	t.Setenv("PROXYTEST_TOKEN", "s3cret")
	s.cfg.set(t, map[string]sysconfig.Service{"echo": {Instances: []sysconfig.Instance{{BaseURL: u.url() + "/base"}},
		Headers: map[string]string{"X-Service-Key": "${env:PROXYTEST_TOKEN}"}}})
	s.cfg.set(t, map[string]sysconfig.Service{"hdr": {BaseURL: u.url(), Headers: map[string]string{"X-Service-Key": "${env:PROXYTEST_TOKEN}"}}})
	resp, body := s.do(t, "submitter", "GET", "/gw/hdr/headers?a=1&b=%2F", nil,
		"Connection", "X-Drop", "X-Drop", "1", "Keep-Alive", "timeout=5", "Gateflow-Tenant", "evil",
		"X-Forwarded-For", "6.6.6.6", "Accept", "text/plain", "Proxy-Authorization", "Basic eA==")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var got struct {
		Header http.Header `json:"header"`
		Host   string      `json:"host"`
		Query  string      `json:"query"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	h := got.Header
	for _, k := range []string{"Authorization", "X-Drop", "Keep-Alive", "Proxy-Authorization"} {
		if v := h.Get(k); v != "" {
			t.Errorf("%s reached the upstream: %q", k, v)
		}
	}
	if strings.Contains(body, gwtest.Token("submitter")) {
		t.Error("the client's key reached the upstream")
	}
	want := map[string]string{
		"X-Service-Key": "s3cret", "Gateflow-Tenant": "acme", "Gateflow-Api": "hdr", "Accept": "text/plain",
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Request-Id": resp.Header.Get("X-Request-Id"),
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	if !strings.HasPrefix(h.Get("Forwarded"), "for=127.0.0.1;host=") || !strings.HasPrefix(h.Get("Gateflow-Consumer"), "acme/") {
		t.Errorf("Forwarded %q, Gateflow-Consumer %q", h.Get("Forwarded"), h.Get("Gateflow-Consumer"))
	}
	if got.Query != "a=1&b=%2F" || got.Host != u.addr {
		t.Errorf("query %q host %q", got.Query, got.Host)
	}
	if resp.Header.Get("X-Hop") != "" || resp.Header.Get("X-Instance") != "u" {
		t.Errorf("answer header: %v", resp.Header)
	}
	// A base path on the instance is kept, escapes in the path too.
	resp, body = s.do(t, "submitter", "GET", "/gw/echo/a%2Fb/c", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestStreaming100MBBothWays(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MB")
	}
	s := getStack(t)
	u := startUpstream(t, "u")
	s.cfg.set(t, map[string]sysconfig.Service{"bulk": {BaseURL: u.url(), MaxRequestBodyBytes: 200 << 20}})
	const size = 100 << 20
	// With the collector made eager, the heap in use tracks live memory:
	// buffering a body would grow it by the body's size.
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, allocBase := ms.HeapInuse, ms.TotalAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	})
	// Upload: a generated body of unknown length (chunked).
	resp, body := s.do(t, "submitter", "POST", "/gw/bulk/upload", io.LimitReader(zeros{}, size))
	if resp.StatusCode != 200 || body != fmt.Sprint(size) {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	// Download, counted as it arrives.
	dr, err := s.send("submitter", "GET", fmt.Sprintf("/gw/bulk/download?n=%d", size), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, dr.Body)
	dr.Body.Close()
	close(stop)
	wg.Wait()
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	growth := int64(peak.Load()) - int64(base)
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use grew by at most %d KiB while 200 MB went through (client, gateway and upstream in one process); %d MiB allocated in all",
		growth>>10, (ms.TotalAlloc-allocBase)>>20)
	if growth > 16<<20 {
		t.Fatalf("heap grew by %d MiB: bodies are buffered", growth>>20)
	}
	var rec *record.Record
	for _, r := range s.rec.Kind(calls.KindProxy) {
		if r.API == "bulk" && r.Method == "POST" {
			rec = &r
		}
	}
	if rec == nil || rec.ReqBytes != size {
		t.Fatalf("upload record: %+v", rec)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestSSEAndWebSocket(t *testing.T) {
	s := getStack(t)
	u := startUpstream(t, "u")
	s.cfg.set(t, map[string]sysconfig.Service{"live": {BaseURL: u.url()}})

	resp, err := s.send("submitter", "GET", "/gw/live/sse", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// The first event arrives while the upstream still holds the stream
	// open: nothing buffers it.
	if ev, err := readSSE(br); err != nil || ev != "one" {
		t.Fatalf("first event %q, %v", ev, err)
	}
	close(u.gate)
	if ev, err := readSSE(br); err != nil || ev != "two" {
		t.Fatalf("second event %q, %v", ev, err)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /gw/live/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", gwtest.Token("submitter"))
	cr := bufio.NewReader(conn)
	wresp, err := http.ReadResponse(cr, nil)
	if err != nil || wresp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(wresp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("upgrade: %v %v", wresp, err)
	}
	for _, msg := range []string{"hello\n", "again\n"} {
		fmt.Fprint(conn, msg)
		line, err := cr.ReadString('\n')
		if err != nil || line != strings.ToUpper(msg) {
			t.Fatalf("echo %q, %v", line, err)
		}
	}
}

func TestCache(t *testing.T) {
	s := getStack(t)
	u := startUpstream(t, "u")
	s.cfg.set(t, map[string]sysconfig.Service{
		"cached": {BaseURL: u.url(), Cache: sysconfig.Cache{Enabled: true, MaxTTL: "1m"}},
		"public": {BaseURL: u.url(), Cache: sysconfig.Cache{Enabled: true, Public: true}},
	})
	get := func(key, path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		return s.do(t, key, "GET", path, nil, hdr...)
	}
	hits := func() int64 { return u.hits.Load() }

	t.Run("fresh answers are served from the cache with Age", func(t *testing.T) {
		h0 := hits()
		r1, b1 := get("submitter", "/gw/cached/cache/a?cc=max-age=60")
		r2, b2 := get("submitter", "/gw/cached/cache/a?cc=max-age=60")
		if hits()-h0 != 1 || b1 != b2 {
			t.Fatalf("upstream hit %d times; %q vs %q", hits()-h0, b1, b2)
		}
		if !strings.Contains(r1.Header.Get("Cache-Status"), "fwd=miss; stored") || !strings.Contains(r2.Header.Get("Cache-Status"), "hit") || r2.Header.Get("Age") == "" {
			t.Fatalf("headers: %v / %v", r1.Header, r2.Header)
		}
		// HEAD is served from the stored GET.
		r3, b3 := s.do(t, "submitter", "HEAD", "/gw/cached/cache/a?cc=max-age=60", nil)
		if hits()-h0 != 1 || r3.StatusCode != 200 || b3 != "" {
			t.Fatalf("HEAD: %d %q, hits %d", r3.StatusCode, b3, hits()-h0)
		}
		// The client may insist.
		get("submitter", "/gw/cached/cache/a?cc=max-age=60", "Cache-Control", "no-cache")
		if hits()-h0 != 2 {
			t.Fatal("request no-cache was served from the cache")
		}
	})
	t.Run("answers are scoped to the consumer unless public", func(t *testing.T) {
		h0 := hits()
		get("submitter", "/gw/cached/cache/scoped?cc=max-age=60")
		get("admin", "/gw/cached/cache/scoped?cc=max-age=60") // same tenant, another consumer
		if hits()-h0 != 2 {
			t.Fatalf("another consumer got a stored answer (%d upstream hits)", hits()-h0)
		}
		get("submitter", "/gw/public/cache/shared?cc=max-age=60")
		get("admin", "/gw/public/cache/shared?cc=max-age=60")
		if hits()-h0 != 3 {
			t.Fatalf("a public answer was not shared (%d upstream hits)", hits()-h0)
		}
	})
	t.Run("vary", func(t *testing.T) {
		h0 := hits()
		_, en := get("submitter", "/gw/cached/cache/v?cc=max-age=60&vary=Accept-Language", "Accept-Language", "en")
		_, fr := get("submitter", "/gw/cached/cache/v?cc=max-age=60&vary=Accept-Language", "Accept-Language", "fr")
		_, en2 := get("submitter", "/gw/cached/cache/v?cc=max-age=60&vary=Accept-Language", "Accept-Language", "en")
		if hits()-h0 != 2 || en != en2 || !strings.Contains(fr, "lang=fr") {
			t.Fatalf("hits %d, en %q en2 %q fr %q", hits()-h0, en, en2, fr)
		}
	})
	t.Run("no-store and private are never stored", func(t *testing.T) {
		for _, cc := range []string{"no-store", "private,max-age=60"} {
			h0 := hits()
			get("submitter", "/gw/cached/cache/n?cc="+cc)
			r, _ := get("submitter", "/gw/cached/cache/n?cc="+cc)
			if hits()-h0 != 2 || strings.Contains(r.Header.Get("Cache-Status"), "hit") {
				t.Fatalf("%s: %d upstream hits, %v", cc, hits()-h0, r.Header)
			}
		}
	})
	t.Run("revalidation with 304", func(t *testing.T) {
		h0 := hits()
		_, b1 := get("submitter", "/gw/cached/cache/r?cc=max-age=0&etag=v1")
		r2, b2 := get("submitter", "/gw/cached/cache/r?cc=max-age=0&etag=v1")
		if hits()-h0 != 2 || b1 != b2 || r2.StatusCode != 200 || !strings.Contains(r2.Header.Get("Cache-Status"), "fwd-status=304") {
			t.Fatalf("hits %d, %q / %q, %d %v", hits()-h0, b1, b2, r2.StatusCode, r2.Header)
		}
		// The client's own validator gets a 304 from the stored answer.
		r3, b3 := get("submitter", "/gw/cached/cache/r?cc=max-age=0&etag=v1", "If-None-Match", `"v1"`)
		if r3.StatusCode != 304 || b3 != "" {
			t.Fatalf("conditional: %d %q", r3.StatusCode, b3)
		}
		var revalidated int
		for _, r := range s.rec.Kind(calls.KindProxy) {
			if r.API == "cached" && r.CacheStatus == "revalidated" {
				revalidated++
			}
		}
		if revalidated < 1 {
			t.Fatalf("%d records with cache status revalidated", revalidated)
		}
	})
	t.Run("an unsafe method invalidates", func(t *testing.T) {
		h0 := hits()
		get("submitter", "/gw/cached/cache/w?cc=max-age=60")
		s.do(t, "submitter", "POST", "/gw/cached/cache/w?cc=max-age=60", strings.NewReader("x"))
		get("submitter", "/gw/cached/cache/w?cc=max-age=60")
		if hits()-h0 != 3 {
			t.Fatalf("%d upstream hits, want 3", hits()-h0)
		}
	})
}

func TestRecordsAndOpenAPI(t *testing.T) {
	s := getStack(t)
	u := startUpstream(t, "u")
	s.cfg.set(t, map[string]sysconfig.Service{"rec": {Instances: []sysconfig.Instance{{BaseURL: u.url(), Zone: "z1"}}}})
	before := len(s.rec.Kind(calls.KindIngress))
	resp, _ := s.do(t, "submitter", "PUT", "/gw/rec/status?code=201&x=1", strings.NewReader("hello"))
	if resp.StatusCode != 201 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var got *record.Record
	for _, r := range s.rec.Kind(calls.KindProxy) {
		if r.API == "rec" {
			got = &r
		}
	}
	want := record.Record{Tenant: "acme", Kind: calls.KindProxy, Target: "rec", API: "rec", Consumer: "acme", ConsumerApp: gwtest.Keys["submitter"].Token[3:15],
		Upstream: u.addr + "@z1", Method: "PUT", Route: "/status?code=201&x=1", StatusCode: 201, Outcome: record.OutcomeOK, ReqBytes: 5, Attempt: 1}
	if got == nil || got.Tenant != want.Tenant || got.Target != want.Target || got.API != want.API || got.Consumer != want.Consumer ||
		got.Upstream != want.Upstream || got.Method != want.Method || got.Route != want.Route || got.StatusCode != want.StatusCode ||
		got.Outcome != want.Outcome || got.ReqBytes != want.ReqBytes || got.RespBytes == 0 || got.LatencyMS <= 0 || got.UpstreamLatencyMS <= 0 ||
		got.Labels["request_id"] != resp.Header.Get("X-Request-Id") || got.Attempt != 1 {
		t.Fatalf("record:\n got %+v\nwant %+v", got, want)
	}
	if after := len(s.rec.Kind(calls.KindIngress)); after != before {
		t.Fatalf("%d ingress records for a proxied call", after-before)
	}
	_, doc := s.do(t, "", "GET", "/v1/openapi.json", nil)
	if !strings.Contains(doc, `"/gw/{api}/{path}"`) || !strings.Contains(doc, `"gatewayPatch"`) {
		t.Fatal("the gateway route is not in the OpenAPI document")
	}
}
