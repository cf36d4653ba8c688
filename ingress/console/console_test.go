package console_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gateflow/gateflow/analytics/record/recordtest"
	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/console"
	"github.com/gateflow/gateflow/ingress/internal/gwtest"
	"github.com/gateflow/gateflow/ingress/ratelimit"
)

const helloYAML = `
name: hello
version: "1"
input_schema:
  type: object
  required: [name]
  properties:
    name: {type: string}
steps:
  - id: wait
    kind: wait
    duration: 1s
`

// stack is a real ingress with the console mounted, on a loopback port.
type stack struct {
	url   string
	rec   *recordtest.Sink
	clock *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newStack(t *testing.T, opts console.Options, groups ...api.Group) *stack {
	t.Helper()
	orch := gwtest.NewOrch()
	if err := orch.AddDefinition("acme", helloYAML); err != nil {
		t.Fatal(err)
	}
	rec := &recordtest.Sink{}
	srv, err := ingress.New(ingress.Deps{Orchestrator: orch, Keys: gwtest.KeyStore(t), Recorder: rec, Log: slog.New(slog.DiscardHandler)},
		ingress.Config{KeyLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}, TenantLimit: ratelimit.Limit{RPS: 1e6, Burst: 1e6}})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	opts.API = srv.Handler()
	opts.Now = clk.now
	con, err := console.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range append(groups, con.Routes()) {
		if err := srv.Mount(g); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &stack{url: "http://" + ln.Addr().String(), rec: rec, clock: clk}
}

// browser is a client with a cookie jar, like a browser tab.
type browser struct {
	t    *testing.T
	s    *stack
	c    *http.Client
	csrf string
}

func (s *stack) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, s: s, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, p, body string, hdr ...string) (*http.Response, string) {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.s.url+p, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

func (b *browser) signIn(key string) console.SessionInfo {
	b.t.Helper()
	resp, body := b.do("POST", "/console/session", `{"key":"`+gwtest.Token(key)+`"}`, "Origin", b.s.url, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusCreated {
		b.t.Fatalf("sign in as %s: %d %s", key, resp.StatusCode, body)
	}
	var info console.SessionInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		b.t.Fatal(err)
	}
	b.csrf = info.CSRFToken
	return info
}

func code(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not the error shape: %s", body)
	}
	return e.Error.Code
}

func TestSessionAndProxy(t *testing.T) {
	s := newStack(t, console.Options{})
	b := s.browser(t)

	// Signed out: the session and the API proxy say so.
	if resp, body := b.do("GET", "/console/session", ""); resp.StatusCode != 401 || code(t, body) != "signed_out" {
		t.Fatalf("session before sign-in: %d %s", resp.StatusCode, body)
	}
	if resp, body := b.do("GET", "/console/api/v1/workflows", ""); resp.StatusCode != 401 || code(t, body) != "signed_out" {
		t.Fatalf("api before sign-in: %d %s", resp.StatusCode, body)
	}
	// A wrong key is refused at the key field, and sets no cookie.
	resp, body := b.do("POST", "/console/session", `{"key":"gf_nope_nope"}`)
	if resp.StatusCode != 401 || code(t, body) != "invalid_api_key" || len(resp.Cookies()) != 0 || !strings.Contains(body, `"path":"key"`) {
		t.Fatalf("wrong key: %d %s %v", resp.StatusCode, body, resp.Cookies())
	}
	if resp, body := b.do("POST", "/console/session", `{"key":""}`); resp.StatusCode != 400 || code(t, body) != "invalid_request" {
		t.Fatalf("empty key: %d %s", resp.StatusCode, body)
	}

	info := b.signIn("submitter")
	if info.Tenant != "acme" || info.CSRFToken == "" || strings.Join(info.Roles, ",") != "submitter" {
		t.Errorf("session: %+v", info)
	}
	u, _ := url.Parse(s.url + "/console/")
	cookies := b.c.Jar.Cookies(u)
	if len(cookies) != 1 || cookies[0].Name != "gateflow_console" {
		t.Fatalf("cookies %v", cookies)
	}
	if strings.Contains(cookies[0].Value, gwtest.Token("submitter")) || strings.Contains(cookies[0].Value, "gf_") {
		t.Error("the cookie holds the key in clear")
	}

	// The proxy calls the API as the session's key.
	resp, body = b.do("GET", "/console/api/v1/me", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"tenant":"acme"`) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("me: %d %s", resp.StatusCode, body)
	}
	// Changes need the CSRF token.
	start := `{"definition":"hello","input":{"name":"Ada"}}`
	if resp, body := b.do("POST", "/console/api/v1/workflows", start); resp.StatusCode != 403 || code(t, body) != "csrf_failed" {
		t.Fatalf("start without csrf: %d %s", resp.StatusCode, body)
	}
	if resp, body := b.do("POST", "/console/api/v1/workflows", start, "X-CSRF-Token", "x"+b.csrf); resp.StatusCode != 403 || code(t, body) != "csrf_failed" {
		t.Fatalf("start with a wrong csrf: %d %s", resp.StatusCode, body)
	}
	resp, body = b.do("POST", "/console/api/v1/workflows", start, "X-CSRF-Token", b.csrf, "Idempotency-Key", "k-1")
	if resp.StatusCode != 201 || !strings.Contains(body, `"definition":"hello"`) {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	// Problems come back in the API's error shape, with their paths.
	resp, body = b.do("POST", "/console/api/v1/workflows", `{"definition":"hello","input":{}}`, "X-CSRF-Token", b.csrf)
	if resp.StatusCode != 422 || !strings.Contains(body, `"path":"input`) {
		t.Fatalf("invalid input: %d %s", resp.StatusCode, body)
	}
	// Roles still apply: a submitter cannot list approvals.
	if resp, body := b.do("GET", "/console/api/v1/approvals", ""); resp.StatusCode != 403 || code(t, body) != "forbidden" {
		t.Fatalf("approvals as submitter: %d %s", resp.StatusCode, body)
	}
	// Only /v1 is forwarded.
	for _, p := range []string{"/console/api/healthz", "/console/api/metrics", "/console/api/v1/../metrics", "/console/api/v2/x"} {
		if resp, _ := b.do("GET", p, ""); resp.StatusCode != 404 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	// Another site's page cannot use the session.
	if resp, body := b.do("GET", "/console/api/v1/me", "", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != 403 || code(t, body) != "cross_site" {
		t.Errorf("cross-site read: %d %s", resp.StatusCode, body)
	}
	if resp, body := b.do("POST", "/console/api/v1/workflows", start, "X-CSRF-Token", b.csrf, "Origin", "https://evil.example"); resp.StatusCode != 403 || code(t, body) != "cross_site" {
		t.Errorf("cross-origin change: %d %s", resp.StatusCode, body)
	}

	// Each proxied API request is recorded once, as the key's tenant; pages
	// and the session make no record of their own.
	recs := s.rec.All()
	var targets []string
	for _, r := range recs {
		targets = append(targets, r.Target)
		if r.Tenant != "acme" && r.StatusCode != 401 && r.Target != "GET /v1/openapi.json" {
			t.Errorf("record of another tenant: %+v", r)
		}
		if strings.HasPrefix(r.Target, "GET /console") || strings.HasPrefix(r.Target, "POST /console") {
			t.Errorf("record of a page: %s", r.Target)
		}
	}
	// The console refused the requests without a CSRF token or from
	// another origin itself; the API saw the start and the invalid input.
	if n := strings.Count(strings.Join(targets, "|"), "POST /v1/workflows"); n != 2 {
		t.Errorf("%d records of POST /v1/workflows, want 2: %v", n, targets)
	}

	// Sign-out clears the cookie; a copy of it no longer works.
	old := cookies[0]
	if resp, body := b.do("DELETE", "/console/session", "", "X-CSRF-Token", b.csrf); resp.StatusCode != 204 {
		t.Fatalf("sign out: %d %s", resp.StatusCode, body)
	}
	if len(b.c.Jar.Cookies(u)) != 0 {
		t.Error("cookie kept after sign-out")
	}
	b.c.Jar.SetCookies(u, []*http.Cookie{old})
	if resp, body := b.do("GET", "/console/api/v1/me", ""); resp.StatusCode != 401 || code(t, body) != "signed_out" {
		t.Errorf("copied cookie after sign-out: %d %s", resp.StatusCode, body)
	}
}

// TestTemporalUILink: operators' runs link to the Temporal Web UI when it
// is configured, and the session says where.
func TestTemporalUILink(t *testing.T) {
	s := newStack(t, console.Options{TemporalUI: "http://127.0.0.1:8233/", TemporalNamespace: "prod"})
	info := s.browser(t).signIn("analyst")
	if info.TemporalUI != "http://127.0.0.1:8233" || info.Namespace != "prod" {
		t.Errorf("session: %+v", info)
	}
	none := newStack(t, console.Options{}).browser(t).signIn("analyst")
	if none.TemporalUI != "" {
		t.Errorf("link without a UI: %+v", none)
	}
	if _, err := console.New(console.Options{API: http.NotFoundHandler(), TemporalUI: "javascript:alert(1)"}); err == nil {
		t.Error("a non-http Temporal UI URL was accepted")
	}
}

func TestSessionCookie(t *testing.T) {
	s := newStack(t, console.Options{SessionTTL: time.Hour})
	b := s.browser(t)
	resp, body := b.do("POST", "/console/session", `{"key":"`+gwtest.Token("analyst")+`"}`, "X-Forwarded-Proto", "https")
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	c := resp.Cookies()
	if len(c) != 1 || c[0].Name != "__Secure-gateflow_console" || !c[0].Secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || c[0].Path != "/console" {
		t.Fatalf("cookie over TLS: %+v", c)
	}
	value := c[0].Value

	get := func(name, value string, hdr ...string) int {
		req, _ := http.NewRequest("GET", s.url+"/console/api/v1/me", nil)
		req.AddCookie(&http.Cookie{Name: name, Value: value})
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if n := get("__Secure-gateflow_console", value, "X-Forwarded-Proto", "https"); n != 200 {
		t.Errorf("secure cookie over TLS: %d", n)
	}
	// Over TLS the plain cookie's name is not read (a plain-HTTP page could have set it).
	if n := get("gateflow_console", value, "X-Forwarded-Proto", "https"); n != 401 {
		t.Errorf("plain cookie name over TLS: %d", n)
	}
	// A changed byte breaks the seal.
	tampered := []byte(value)
	tampered[len(tampered)/2] ^= 1
	if tampered[len(tampered)/2] == '-' || tampered[len(tampered)/2] == '_' {
		tampered[len(tampered)/2] = 'A'
	}
	if n := get("__Secure-gateflow_console", string(tampered), "X-Forwarded-Proto", "https"); n != 401 {
		t.Errorf("tampered cookie: %d", n)
	}
	// The session ends with its TTL, whatever the browser keeps.
	s.clock.add(time.Hour + time.Second)
	if n := get("__Secure-gateflow_console", value, "X-Forwarded-Proto", "https"); n != 401 {
		t.Errorf("expired session: %d", n)
	}
}

// TestFeatures: pages for optional routes (keys, catalogue) are offered
// only when the API has them.
func TestFeatures(t *testing.T) {
	plain := newStack(t, console.Options{}).browser(t).signIn("admin")
	if plain.Features.Keys || plain.Features.Catalog || plain.Features.Subscriptions || plain.Features.Analytics {
		t.Errorf("features without optional routes: %+v", plain.Features)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { api.WriteJSON(w, 200, map[string]any{"items": []any{}}) })
	doc := api.Operation{Responses: map[int]api.Response{200: {Description: "ok"}}}
	admins := []auth.Role{auth.RoleAdmin}
	keys := api.Group{Name: "keys-test", Routes: []api.Route{
		{Method: "GET", Path: "/v1/keys", Roles: admins, Handler: ok, Doc: doc},
		{Method: "POST", Path: "/v1/keys", Roles: admins, Handler: ok, Doc: doc},
	}}
	withKeys := newStack(t, console.Options{}, keys).browser(t).signIn("analyst")
	if !withKeys.Features.Keys || withKeys.Features.Catalog {
		t.Errorf("features with the key routes: %+v", withKeys.Features)
	}
}

func TestSecretSharedByReplicas(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := newStack(t, console.Options{Secret: secret})
	b := newStack(t, console.Options{Secret: secret})
	other := newStack(t, console.Options{})
	br := a.browser(t)
	br.signIn("analyst")
	ua, _ := url.Parse(a.url + "/console/")
	cookie := br.c.Jar.Cookies(ua)[0]
	for _, tc := range []struct {
		s    *stack
		want int
	}{{b, 200}, {other, 401}} {
		req, _ := http.NewRequest("GET", tc.s.url+"/console/session", nil)
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("replica: %d, want %d", resp.StatusCode, tc.want)
		}
	}
	if _, err := console.New(console.Options{API: http.NotFoundHandler(), Secret: []byte("short")}); err == nil {
		t.Error("a short secret was accepted")
	}
}

func TestEventStreamThroughTheConsole(t *testing.T) {
	s := newStack(t, console.Options{})
	b := s.browser(t)
	b.signIn("submitter")
	resp, body := b.do("POST", "/console/api/v1/workflows", `{"definition":"hello","input":{"name":"Ada"}}`, "X-CSRF-Token", b.csrf)
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var started struct{ ID string }
	_ = json.Unmarshal([]byte(body), &started)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/console/api/v1/workflows/"+started.ID+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	ev, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Body.Close()
	if ev.StatusCode != 200 || !strings.HasPrefix(ev.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", ev.StatusCode, ev.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(ev.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: status") {
			return // the first status arrived through the proxy
		}
	}
	t.Fatalf("no status event: %v", sc.Err())
}

func TestPagesAndAssets(t *testing.T) {
	s := newStack(t, console.Options{})
	b := s.browser(t)
	resp, page := b.do("GET", "/console/workflows/some-id", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self' 'sha256-") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
		if resp.Header.Get(h) != want {
			t.Errorf("%s: %q", h, resp.Header.Get(h))
		}
	}
	// The import map's hash is the one the CSP allows.
	m := regexp.MustCompile(`<script type="importmap">([^<]*)</script>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no import map in %s", page)
	}
	sum := sha256.Sum256([]byte(m[1]))
	if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("the CSP does not allow the import map %s", m[1])
	}
	if !strings.Contains(page, `src="/console/assets/`) || strings.Contains(page, "{{") {
		t.Errorf("page not filled in: %s", page)
	}
	base := regexp.MustCompile(`/console/assets/[0-9a-f]+/`).FindString(page)
	// Every file the page names (stylesheet, icon, modules to preload) is served.
	for _, m := range regexp.MustCompile(`(?:href|src)="(/console/assets/[^"]+)"`).FindAllStringSubmatch(page, -1) {
		if resp, _ := b.do("GET", m[1], ""); resp.StatusCode != 200 {
			t.Errorf("%s: %d", m[1], resp.StatusCode)
		}
	}

	// Assets: gzip, cached for good under this build, 304 on revalidation.
	req, _ := http.NewRequest("GET", s.url+base+"app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	r, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(r.Header.Get("Cache-Control"), "immutable") ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("asset: %d %v", r.StatusCode, r.Header)
	}
	req.Header.Set("If-None-Match", r.Header.Get("ETag"))
	if r2, err := http.DefaultTransport.RoundTrip(req); err != nil || r2.StatusCode != 304 {
		t.Errorf("revalidation: %v %v", r2, err)
	} else {
		r2.Body.Close()
	}
	if resp, _ := b.do("GET", "/console/assets/0000/app.js", ""); resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("asset of another build: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	for _, p := range []string{base + "nope.js", base + "../console.go", "/console/assets/x"} {
		if resp, _ := b.do("GET", p, ""); resp.StatusCode != 404 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	// Pages are not API operations.
	_, doc := b.do("GET", "/v1/openapi.json", "")
	if strings.Contains(doc, "/console") {
		t.Error("console routes in the OpenAPI document")
	}
}

// TestModulesResolve checks every static and dynamic import of the
// console's modules names an embedded file or an import-map entry, so a
// typo fails here rather than in a browser.
func TestModulesResolve(t *testing.T) {
	web := os.DirFS("web")
	imp := regexp.MustCompile(`(?:from\s*|import\s*\(\s*|import\s+)['"]([^'"]+)['"]`)
	bare := map[string]bool{"preact": true, "preact/hooks": true, "htm": true}
	err := fs.WalkDir(web, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") || strings.HasPrefix(p, "vendor/") {
			return err
		}
		b, err := fs.ReadFile(web, p)
		if err != nil {
			return err
		}
		for _, m := range imp.FindAllStringSubmatch(string(b), -1) {
			spec := m[1]
			if bare[spec] {
				continue
			}
			if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
				t.Errorf("%s imports %q: only relative paths and the import map's names", p, spec)
				continue
			}
			target := path.Join(path.Dir(p), spec)
			if _, err := fs.Stat(web, target); err != nil {
				t.Errorf("%s imports %q: %s is not in web/", p, spec, target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestModulesParse parses every module with Node when it is installed (CI
// has it for npm), so a syntax error fails here rather than in a browser.
func TestModulesParse(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the browser test loads the modules")
	}
	const script = `
const vm = require('vm'), fs = require('fs');
let bad = 0;
for (const f of process.argv.slice(1)) {
  try { new vm.SourceTextModule(fs.readFileSync(f, 'utf8'), { identifier: f }); }
  catch (e) { bad++; console.log(f + ': ' + e.message); }
}
process.exit(bad ? 1 : 0);`
	var files []string
	err = fs.WalkDir(os.DirFS("web"), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".js") && !strings.HasPrefix(p, "vendor/") {
			files = append(files, "web/"+p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, append([]string{"--experimental-vm-modules", "--no-warnings", "-e", script}, files...)...).CombinedOutput()
	if err != nil {
		t.Errorf("modules that do not parse:\n%s", out)
	}
}

// TestFirstLoadBudget: everything the console could load (every module,
// both vendored libraries, the stylesheet and the page) stays under the
// issue's 300 KB compressed; the browser test measures what a first load
// really transfers.
func TestFirstLoadBudget(t *testing.T) {
	total := 0
	err := fs.WalkDir(os.DirFS("web"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path.Base(p), "LICENSE") || path.Base(p) == "MANIFEST" {
			return err
		}
		b, err := os.ReadFile("web/" + p)
		if err != nil {
			return err
		}
		var gz strings.Builder
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		total += min(gz.Len(), len(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("all console assets: %d bytes compressed", total)
	if total > 300_000 {
		t.Errorf("console assets are %d bytes compressed, over the 300 KB budget", total)
	}
}

// TestVendored checks the committed front-end libraries against the
// sha256 sums vendor.sh wrote when it took them from npm.
func TestVendored(t *testing.T) {
	b, err := os.ReadFile("web/vendor/MANIFEST")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		data, err := os.ReadFile("web/vendor/" + f[1])
		if err != nil {
			t.Errorf("%s: %v", f[1], err)
			continue
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != f[0] {
			t.Errorf("web/vendor/%s differs from %s on npm (re-run vendor.sh)", f[1], f[2])
		}
	}
	if n < 5 {
		t.Errorf("MANIFEST lists %d files", n)
	}
}
