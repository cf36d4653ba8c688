package proxyapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
	"github.com/gateflow/gateflow/ingress/proxy"
	"github.com/gateflow/gateflow/ingress/proxyapi"
	"github.com/gateflow/gateflow/ingress/ratelimit"
)

// The one stack of this package's tests: a real ingress (keys, rate
// limits, middleware chain) with the gateway mounted, over a config whose
// services each test sets, and upstream instances on loopback.

type stack struct {
	url   string
	cfg   *mutableConfig
	proxy *proxy.Proxy
	rec   *recordtest.Sink
}

var (
	stackOnce sync.Once
	theStack  *stack
	stackErr  error
)

// getStack returns the package's stack, started by the first test that
// needs it and left running until the test binary exits.
func getStack(t *testing.T) *stack {
	t.Helper()
	stackOnce.Do(func() { theStack, _, stackErr = newStack(nil) })
	if stackErr != nil {
		t.Fatal(stackErr)
	}
	return theStack
}

// mutableConfig is a config registry whose services a test replaces.
type mutableConfig struct {
	cur atomic.Pointer[sysconfig.Snapshot]
	mu  sync.Mutex
	svc map[string]sysconfig.Service
}

func (m *mutableConfig) Current() *sysconfig.Snapshot { return m.cur.Load() }

// set adds (or replaces) services, owned by tenant acme unless they say.
func (m *mutableConfig) set(t *testing.T, services map[string]sysconfig.Service) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, s := range services {
		if s.Owner == "" {
			s.Owner = "acme"
		}
		m.svc[name] = s
	}
	reg, err := sysconfig.NewStatic(sysconfig.Config{Services: m.svc})
	if err != nil {
		t.Fatal(err)
	}
	m.cur.Store(reg.Current())
}

// catalogLike resolves APIs named cat-* as the catalogue does: a target
// without an API limit of its own (the service's rate_limit must apply).
type catalogLike struct{ proxy.OwnerAccess }

func (a catalogLike) Route(ctx context.Context, caller auth.Principal, api, version string) (proxy.Target, error) {
	t, err := a.OwnerAccess.Route(ctx, caller, api, version)
	if strings.HasPrefix(api, "cat-") {
		t.Limits.API = proxy.Rate{}
	}
	return t, err
}

// newStack serves an ingress with the gateway on loopback; records go to
// recorder, or to an in-memory sink when nil.
func newStack(recorder proxy.Recorder) (*stack, func(), error) {
	cfg := &mutableConfig{svc: map[string]sysconfig.Service{}}
	reg, err := sysconfig.NewStatic(sysconfig.Config{})
	if err != nil {
		return nil, nil, err
	}
	cfg.cur.Store(reg.Current())
	var keys []auth.Key
	for _, k := range gwtest.Keys {
		keys = append(keys, auth.EntryFor(k.Token, k.Tenant, k.Roles, k.User))
	}
	store, err := auth.NewStore("", keys...)
	if err != nil {
		return nil, nil, err
	}
	rec := &recordtest.Sink{}
	if recorder == nil {
		recorder = rec
	}
	p, err := proxy.New(proxy.Options{
		Access: catalogLike{proxy.OwnerAccess{Config: cfg}}, Config: cfg, WriteError: proxyapi.WriteError,
		Recorder: recorder, PathPrefix: proxyapi.Prefix, CacheBytes: 8 << 20,
	})
	if err != nil {
		return nil, nil, err
	}
	srv, err := ingress.New(ingress.Deps{Orchestrator: gwtest.NewOrch(), Keys: store, Recorder: recorder, Log: slog.New(slog.DiscardHandler)},
		ingress.Config{KeyLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}, TenantLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}})
	if err != nil {
		return nil, nil, err
	}
	if err := srv.Mount(proxyapi.Routes(p)); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	stop := func() {
		cancel()
		<-done
		p.Close()
	}
	return &stack{url: "http://" + ln.Addr().String(), cfg: cfg, proxy: p, rec: rec}, stop, nil
}

// client is an HTTP client with its own connections and a bound on every
// call.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// do sends a request with the named key and returns the answer with its
// body read.
func (s *stack) do(t *testing.T, key, method, path string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	resp, err := s.send(key, method, path, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func (s *stack) send(key, method, path string, body io.Reader, hdr ...string) (*http.Response, error) {
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+gwtest.Token(key))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return client.Do(req)
}

// upstream is one instance: a loopback server that can be stopped and
// started again on the same address.
type upstream struct {
	name string
	addr string

	mu  sync.Mutex
	srv *http.Server

	hits atomic.Int64
	// mode: "" serves, "fail" answers 503 to everything but /health,
	// "sick" fails /health only, "hold" parks requests until release.
	mode    atomic.Value
	held    atomic.Int64
	relMu   sync.Mutex
	release chan struct{} // closed by releaseAll; replaced for the next wave
	gate    chan struct{} // SSE: closed by the test to send the second event
}

func startUpstream(t *testing.T, name string) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{name: name, addr: ln.Addr().String(), release: make(chan struct{}), gate: make(chan struct{})}
	u.mode.Store("")
	u.serve(ln)
	t.Cleanup(u.stop)
	return u
}

func (u *upstream) url() string { return "http://" + u.addr }

func (u *upstream) serve(ln net.Listener) {
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 5 * time.Second}
	u.mu.Lock()
	u.srv = srv
	u.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// releaseAll answers the held requests (503); later ones are held again.
func (u *upstream) releaseAll() {
	u.relMu.Lock()
	defer u.relMu.Unlock()
	close(u.release)
	u.release = make(chan struct{})
}

// stop kills the instance: the listener and every connection close.
func (u *upstream) stop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.srv != nil {
		_ = u.srv.Close()
		u.srv = nil
	}
}

// start brings a stopped instance back on its address.
func (u *upstream) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", u.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	u.serve(ln)
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode := u.mode.Load().(string)
	if r.URL.Path == "/health" {
		if mode == "sick" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		return
	}
	u.hits.Add(1)
	w.Header().Set("X-Instance", u.name)
	switch mode {
	case "fail":
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case "hold":
		u.relMu.Lock()
		rel := u.release
		u.relMu.Unlock()
		u.held.Add(1)
		select {
		case <-rel:
		case <-r.Context().Done():
		}
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	switch r.URL.Path {
	case "/id":
		_, _ = io.WriteString(w, u.name)
	case "/headers":
		h := map[string]any{"header": r.Header, "host": r.Host, "path": r.URL.Path, "raw_path": r.URL.RawPath, "query": r.URL.RawQuery}
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		_ = json.NewEncoder(w).Encode(h)
	case "/status":
		code, _ := strconv.Atoi(q.Get("code"))
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"upstream":"says `+q.Get("code")+`"}`)
	case "/slow":
		ms, _ := strconv.Atoi(q.Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "late")
	case "/download":
		n, _ := strconv.ParseInt(q.Get("n"), 10, 64)
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = byte(i)
		}
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	case "/upload":
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, strconv.FormatInt(n, 10))
	case "/sse":
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-u.gate:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	case "/ws":
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		// Echo lines, upper-cased, until the client closes.
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString(strings.ToUpper(line))
			_ = brw.Flush()
		}
	default:
		if strings.HasPrefix(r.URL.Path, "/cache/") {
			u.cache(w, r)
			return
		}
		http.NotFound(w, r)
	}
}

// cache answers with the Cache-Control, ETag and Vary of the query, and
// 304 when If-None-Match matches the ETag.
func (u *upstream) cache(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if cc := q.Get("cc"); cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	if v := q.Get("vary"); v != "" {
		w.Header().Set("Vary", v)
	}
	if et := q.Get("etag"); et != "" {
		w.Header().Set("ETag", `"`+et+`"`)
		if r.Header.Get("If-None-Match") == `"`+et+`"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	_, _ = fmt.Fprintf(w, "%s %s lang=%s n=%d", u.name, r.URL.Path, r.Header.Get("Accept-Language"), u.hits.Load())
}

// readSSE reads one event's data line from br.
func readSSE(br *bufio.Reader) (string, error) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
			return d, nil
		}
	}
}

// errorBody is the API's error shape.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeError(t *testing.T, body string) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not the error shape: %q (%v)", body, err)
	}
	return e
}

// eventually polls cond every 20 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
