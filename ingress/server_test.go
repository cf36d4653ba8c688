package ingress

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/httperr"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

type harness struct {
	t    testing.TB
	srv  *Server
	fake *fakeOrch
	rec  *recordtest.Sink
	reg  *prometheus.Registry
}

func newHarness(t testing.TB, mod func(*Deps, *Config)) *harness {
	t.Helper()
	h := &harness{t: t, fake: newFake(t), rec: &recordtest.Sink{}, reg: prometheus.NewRegistry()}
	deps := Deps{Orchestrator: h.fake, Keys: testStore(t), Recorder: h.rec, Metrics: h.reg, Log: slog.New(slog.DiscardHandler)}
	cfg := Config{KeyLimit: ratelimit.Limit{RPS: 1000, Burst: 1000}, TenantLimit: ratelimit.Limit{RPS: 1000, Burst: 1000}}
	if mod != nil {
		mod(&deps, &cfg)
	}
	srv, err := New(deps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	return h
}

// do sends a request as the named test key ("" for none).
func (h *harness) do(key, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+testKeys[key].token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(w, req)
	return w
}

// apiErr decodes the error shape, failing the test when the body does not
// have it exactly.
func apiErr(t testing.TB, w *httptest.ResponseRecorder) api.Error {
	t.Helper()
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatalf("status %d: body is not the error shape: %v: %s", w.Code, err, w.Body)
	}
	e, ok := raw["error"]
	if !ok || len(raw) != 1 {
		t.Fatalf("status %d: want {\"error\": ...}, got %s", w.Code, w.Body)
	}
	for _, f := range []string{"code", "message", "details"} {
		if _, ok := e[f]; !ok {
			t.Fatalf("status %d: error has no %q: %s", w.Code, f, w.Body)
		}
	}
	var body api.Body
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if body.Error.Code == "" || body.Error.Message == "" || body.Error.Details == nil {
		t.Fatalf("status %d: empty code/message/details: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error content type %q", ct)
	}
	return *body.Error
}

func (h *harness) start(key, body string) StartResponse {
	h.t.Helper()
	w := h.do(key, "POST", "/v1/workflows", body)
	if w.Code != http.StatusCreated {
		h.t.Fatalf("start: %d %s", w.Code, w.Body)
	}
	var res StartResponse
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		h.t.Fatal(err)
	}
	return res
}

func TestRoutesRolesAndAuth(t *testing.T) {
	h := newHarness(t, nil)
	id := h.start("submitter", `{"definition":"order","input":{"n":1}}`).ID

	type tc struct {
		method, path, body string
		allowed            []string // test keys with access
		want               int      // status for allowed keys
	}
	cases := []tc{
		{"GET", "/v1/workflows/" + id, "", []string{"submitter", "approver", "analyst", "admin"}, 200},
		{"GET", "/v1/workflows", "", []string{"submitter", "approver", "analyst", "admin"}, 200},
		{"GET", "/v1/approvals", "", []string{"approver", "admin"}, 200},
		{"POST", "/v1/workflows/" + id + "/approvals/check", `{"decision":"approve"}`, []string{"approver", "admin"}, 200},
		{"GET", "/v1/definitions", "", []string{"submitter", "approver", "analyst", "admin"}, 200},
		{"GET", "/v1/definitions/order/versions/1", "", []string{"submitter", "approver", "analyst", "admin"}, 200},
		{"POST", "/v1/workflows", `{"definition":"order"}`, []string{"submitter", "admin"}, 201},
	}
	for _, c := range cases {
		for key, k := range testKeys {
			if k.tenant != "acme" {
				continue
			}
			w := h.do(key, c.method, c.path, c.body)
			allowed := false
			for _, a := range c.allowed {
				allowed = allowed || a == key || slices.Contains(k.roles, a)
			}
			if allowed && w.Code != c.want {
				t.Errorf("%s %s as %s: %d, want %d: %s", c.method, c.path, key, w.Code, c.want, w.Body)
			}
			if !allowed {
				if w.Code != 403 {
					t.Errorf("%s %s as %s: %d, want 403", c.method, c.path, key, w.Code)
				} else if e := apiErr(t, w); e.Code != "forbidden" {
					t.Errorf("403 code %q", e.Code)
				}
			}
		}
		// No key, malformed header, wrong key.
		for _, hdr := range []string{"", "Basic abc", "Bearer gf_a00000000001_wrongsecretwrongsecretwrong", "Bearer nonsense"} {
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
			if hdr != "" {
				req.Header.Set("Authorization", hdr)
			}
			w := httptest.NewRecorder()
			h.srv.Handler().ServeHTTP(w, req)
			if w.Code != 401 {
				t.Errorf("%s %s with %q: %d, want 401", c.method, c.path, hdr, w.Code)
				continue
			}
			apiErr(t, w)
			if w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		}
	}

	// Cancel (submitter) last: it closes the workflow.
	if w := h.do("approver", "POST", "/v1/workflows/"+id+"/cancel", ""); w.Code != 403 {
		t.Errorf("cancel as approver: %d", w.Code)
	}
	if w := h.do("submitter", "POST", "/v1/workflows/"+id+"/cancel", ""); w.Code != 202 {
		t.Errorf("cancel: %d %s", w.Code, w.Body)
	}
	if w := h.do("submitter", "POST", "/v1/workflows/"+id+"/cancel", ""); w.Code != 409 {
		t.Errorf("second cancel: %d %s", w.Code, w.Body)
	} else if e := apiErr(t, w); e.Code != "workflow_closed" {
		t.Errorf("code %q", e.Code)
	}
	// Publishing needs admin.
	def := `{"steps":[{"id":"a","kind":"wait","duration":"1s"}]}`
	if w := h.do("submitter", "PUT", "/v1/definitions/new/versions/1", def); w.Code != 403 {
		t.Errorf("publish as submitter: %d", w.Code)
	}
	if w := h.do("admin", "PUT", "/v1/definitions/new/versions/1", def); w.Code != 201 {
		t.Errorf("publish: %d %s", w.Code, w.Body)
	}
	if w := h.do("admin", "PUT", "/v1/definitions/new/versions/1", def); w.Code != 409 {
		t.Errorf("republish: %d %s", w.Code, w.Body)
	}
	if w := h.do("admin", "PUT", "/v1/definitions/new/versions/2", `{"steps":[]}`); w.Code != 422 {
		t.Errorf("invalid definition: %d %s", w.Code, w.Body)
	} else if e := apiErr(t, w); len(e.Details) != 1 || e.Details[0].Path != "steps" {
		t.Errorf("details %+v", e.Details)
	}
	yamlDef := "steps:\n  - id: a\n    kind: wait\n    duration: 1s\n"
	req := httptest.NewRequest("PUT", "/v1/definitions/y/versions/1", strings.NewReader(yamlDef))
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("Authorization", "Bearer "+testKeys["admin"].token)
	w := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(w, req)
	if w.Code != 201 {
		t.Errorf("publish YAML: %d %s", w.Code, w.Body)
	}
	req = httptest.NewRequest("PUT", "/v1/definitions/y/versions/2", strings.NewReader(yamlDef))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Authorization", "Bearer "+testKeys["admin"].token)
	w = httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(w, req)
	if w.Code != 415 {
		t.Errorf("text/plain: %d", w.Code)
	}
}

func TestTenantIsolation(t *testing.T) {
	h := newHarness(t, nil)
	id := h.start("submitter", `{"definition":"order"}`).ID
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/workflows/" + id, ""},
		{"GET", "/v1/workflows/" + id + "/events", ""},
		{"POST", "/v1/workflows/" + id + "/cancel", ""},
		{"POST", "/v1/workflows/" + id + "/approvals/check", `{"decision":"approve"}`},
	} {
		w := h.do("other", c.method, c.path, c.body)
		if w.Code != 404 {
			t.Errorf("%s %s from another tenant: %d, want 404", c.method, c.path, w.Code)
			continue
		}
		apiErr(t, w)
	}
	w := h.do("other", "GET", "/v1/workflows", "")
	var page orchestrator.Page
	_ = json.Unmarshal(w.Body.Bytes(), &page)
	if w.Code != 200 || len(page.Items) != 0 {
		t.Errorf("list from another tenant: %d %s", w.Code, w.Body)
	}
}

func TestStartAndIdempotency(t *testing.T) {
	h := newHarness(t, nil)
	body := `{"definition":"order","input":{"a":1,"b":[1,2]}}`
	w := h.do("submitter", "POST", "/v1/workflows", body, "Idempotency-Key", "k-1")
	if w.Code != 201 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	var first StartResponse
	_ = json.Unmarshal(w.Body.Bytes(), &first)
	if w.Header().Get("Location") != "/v1/workflows/"+first.ID || first.StatusURL == "" || first.EventsURL == "" {
		t.Errorf("location %q, %+v", w.Header().Get("Location"), first)
	}
	// Same body written differently: same workflow, 200.
	w = h.do("submitter", "POST", "/v1/workflows", `{ "input": {"b":[1,2], "a":1}, "definition":"order" }`, "Idempotency-Key", "k-1")
	var again StartResponse
	_ = json.Unmarshal(w.Body.Bytes(), &again)
	if w.Code != 200 || again.ID != first.ID || w.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %s", w.Code, w.Body)
	}
	w = h.do("submitter", "POST", "/v1/workflows", `{"definition":"order","input":{"a":2}}`, "Idempotency-Key", "k-1")
	if w.Code != 409 {
		t.Errorf("different body: %d", w.Code)
	} else if e := apiErr(t, w); e.Code != "idempotency_conflict" {
		t.Errorf("code %q", e.Code)
	}
	// Same key in another tenant is another workflow.
	w = h.do("other", "POST", "/v1/workflows", body, "Idempotency-Key", "k-1")
	if w.Code != 201 {
		t.Errorf("other tenant: %d", w.Code)
	}
	for _, bad := range []string{strings.Repeat("x", 256), "has space", "tab\there"} {
		w = h.do("submitter", "POST", "/v1/workflows", body, "Idempotency-Key", bad)
		if w.Code != 400 {
			t.Errorf("key %q: %d", bad, w.Code)
		}
	}
	if w := h.do("submitter", "POST", "/v1/workflows", `{"definition":"nope"}`); w.Code != 404 {
		t.Errorf("unknown definition: %d", w.Code)
	}
}

func TestRequestValidation(t *testing.T) {
	h := newHarness(t, func(_ *Deps, c *Config) { c.MaxBodyBytes = 2048; c.MaxJSONDepth = 8 })
	cases := []struct {
		name, body string
		status     int
		code       string
		paths      []string
	}{
		{"empty", ``, 400, "invalid_json", []string{""}},
		{"syntax", `{"definition":`, 400, "invalid_json", nil},
		{"trailing", `{"definition":"order"} {}`, 400, "invalid_json", nil},
		{"not object", `[1]`, 400, "invalid_request", []string{""}},
		{"unknown field", `{"definition":"order","inptu":{}}`, 400, "invalid_request", []string{"inptu"}},
		{"case mismatch", `{"Definition":"order"}`, 400, "invalid_request", []string{"Definition"}},
		{"missing definition", `{"input":{}}`, 400, "invalid_request", []string{"definition"}},
		{"bad name", `{"definition":"a b"}`, 400, "invalid_request", []string{"definition"}},
		{"input not object", `{"definition":"order","input":[1]}`, 400, "invalid_request", []string{"input"}},
		{"wrong type", `{"definition":"order","version":3}`, 400, "invalid_request", []string{"version"}},
		{"label", `{"definition":"order","labels":{"Bad Key":"x"}}`, 400, "invalid_request", []string{"labels.Bad Key"}},
		{"inline unknown nested", `{"definition":{"steps":[{"id":"a","kind":"wait","retyr":{}}]}}`, 400, "invalid_request", []string{"definition.steps[0].retyr"}},
		{"inline wrong nested type", `{"definition":{"steps":[{"id":"a","kind":"http","retry":{"max_attempts":"3"}}]}}`, 400, "invalid_request", []string{"definition.steps[0].retry.max_attempts"}},
		{"too deep", `{"definition":"order","input":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{}}}}}}}}}}`, 400, "invalid_json", nil},
		{"too large", `{"definition":"order","input":{"x":"` + strings.Repeat("a", 3000) + `"}}`, 413, "payload_too_large", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := h.do("submitter", "POST", "/v1/workflows", c.body)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			e := apiErr(t, w)
			if e.Code != c.code {
				t.Errorf("code %q, want %q", e.Code, c.code)
			}
			if c.paths != nil {
				var got []string
				for _, d := range e.Details {
					got = append(got, d.Path)
				}
				if strings.Join(got, ",") != strings.Join(c.paths, ",") {
					t.Errorf("paths %q, want %q (%s)", got, c.paths, w.Body)
				}
			}
		})
	}
	if n := h.fake.count("Start"); n != 0 {
		t.Errorf("%d invalid requests reached the orchestrator", n)
	}

	// Decisions and list queries.
	id := h.start("submitter", `{"definition":"order"}`).ID
	for _, c := range []struct{ body, path string }{
		{`{"decision":"maybe"}`, "decision"},
		{`{"decision":"approve","comment":"` + strings.Repeat("c", 4097) + `"}`, ""},
		{`{"decision":"approve","by":"me"}`, "by"},
	} {
		w := h.do("approver", "POST", "/v1/workflows/"+id+"/approvals/check", c.body)
		if w.Code != 400 && w.Code != 413 {
			t.Errorf("decision %.40s: %d", c.body, w.Code)
			continue
		}
		if e := apiErr(t, w); c.path != "" && (len(e.Details) == 0 || e.Details[0].Path != c.path) {
			t.Errorf("decision %.40s: details %+v", c.body, e.Details)
		}
	}
	for _, q := range []string{"status=weird", "limit=0", "limit=101", "started_after=yesterday", "cursor=!!", "foo=1", "status=running&status=failed",
		"started_after=2025-02-01T00:00:00Z&started_before=2025-01-01T00:00:00Z", "definition=a%20b"} {
		w := h.do("submitter", "GET", "/v1/workflows?"+q, "")
		if w.Code != 400 {
			t.Errorf("list ?%s: %d %s", q, w.Code, w.Body)
			continue
		}
		if e := apiErr(t, w); len(e.Details) == 0 {
			t.Errorf("list ?%s: no details", q)
		}
	}
	if w := h.do("submitter", "GET", "/v1/workflows?status=running&limit=5&started_after=2025-01-01T00:00:00Z", ""); w.Code != 200 {
		t.Errorf("valid list: %d %s", w.Code, w.Body)
	}
	if w := h.do("submitter", "GET", "/v1/workflows/bad%2Fid", ""); w.Code != 404 {
		t.Errorf("bad id: %d", w.Code)
	}
}

func TestDecideErrors(t *testing.T) {
	h := newHarness(t, nil)
	id := h.start("submitter", `{"definition":"order"}`).ID
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{&orchestrator.Error{Kind: orchestrator.ErrForbidden, Code: "not_approver", Message: "no"}, 403, "not_approver"},
		{&orchestrator.Error{Kind: orchestrator.ErrConflict, Code: "step_not_waiting", Message: "no"}, 409, "step_not_waiting"},
		{&orchestrator.Error{Kind: orchestrator.ErrConflict, Code: "duplicate_vote", Message: "no"}, 409, "duplicate_vote"},
		{&orchestrator.Error{Kind: orchestrator.ErrNotFound, Code: "step_not_found", Message: "no"}, 404, "step_not_found"},
		{&orchestrator.Error{Kind: orchestrator.ErrUnavailable, Code: "temporal_unavailable", Message: "down"}, 503, "temporal_unavailable"},
		{context.DeadlineExceeded, 504, "timeout"},
		{errors.New("secret internal detail"), 500, "internal"},
	} {
		h.fake.decideErr = c.err
		w := h.do("approver", "POST", "/v1/workflows/"+id+"/approvals/check", `{"decision":"reject","comment":"no"}`)
		if w.Code != c.status {
			t.Errorf("%v: %d, want %d", c.err, w.Code, c.status)
			continue
		}
		e := apiErr(t, w)
		if e.Code != c.code {
			t.Errorf("%v: code %q, want %q", c.err, e.Code, c.code)
		}
		if strings.Contains(w.Body.String(), "secret internal") {
			t.Errorf("internal error leaked: %s", w.Body)
		}
	}
}

func TestEchoErrorsAndPanics(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.srv.Mount(api.Group{Name: "test", Routes: []api.Route{{
		Method: "GET", Path: "/v1/test/panic", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }),
	}}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key, method, path string
		status            int
		code              string
	}{
		{"", "GET", "/nowhere", 404, "route_not_found"},
		{"submitter", "GET", "/v1/nowhere", 404, "route_not_found"},
		{"submitter", "DELETE", "/v1/workflows", 405, "method_not_allowed"},
		{"submitter", "GET", "/v1/test/panic", 500, "internal"},
	} {
		w := h.do(c.key, c.method, c.path, "")
		if w.Code != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, w.Code, c.status)
			continue
		}
		if e := apiErr(t, w); e.Code != c.code {
			t.Errorf("%s %s: code %q, want %q", c.method, c.path, e.Code, c.code)
		}
	}
	h.fake.panicOn = "Status"
	id := "0190c7d2-aaaa-7bbb-8ccc-000000000000"
	if w := h.do("submitter", "GET", "/v1/workflows/"+id, ""); w.Code != 500 {
		t.Errorf("panic in orchestrator: %d", w.Code)
	} else {
		apiErr(t, w)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, func(_ *Deps, c *Config) {
		c.KeyLimit = ratelimit.Limit{RPS: 20, Burst: 2}
		c.TenantLimit = ratelimit.Limit{RPS: 20, Burst: 3}
	})
	for i := 0; i < 2; i++ {
		w := h.do("submitter", "GET", "/v1/definitions", "")
		if w.Code != 200 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
		if w.Header().Get("RateLimit-Limit") == "" || w.Header().Get("RateLimit-Remaining") == "" || w.Header().Get("RateLimit-Reset") == "" {
			t.Errorf("missing RateLimit headers: %v", w.Header())
		}
	}
	w := h.do("submitter", "GET", "/v1/definitions", "")
	if w.Code != 429 {
		t.Fatalf("third: %d", w.Code)
	}
	if e := apiErr(t, w); e.Code != "rate_limited" {
		t.Errorf("code %q", e.Code)
	}
	if w.Header().Get("Retry-After") == "" || w.Header().Get("RateLimit-Remaining") != "0" {
		t.Errorf("headers %v", w.Header())
	}
	// The tenant bucket (3) has one token left: another key of the tenant
	// gets it, then the tenant is refused too.
	if w := h.do("analyst", "GET", "/v1/definitions", ""); w.Code != 200 {
		t.Errorf("second key: %d", w.Code)
	}
	if w := h.do("analyst", "GET", "/v1/definitions", ""); w.Code != 429 {
		t.Errorf("tenant exhausted: %d", w.Code)
	}
	// Another tenant is not affected.
	if w := h.do("other", "GET", "/v1/definitions", ""); w.Code != 200 {
		t.Errorf("other tenant: %d", w.Code)
	}
	// Recovery: buckets refill (20/s); poll with a bound instead of
	// asserting timing.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if w := h.do("submitter", "GET", "/v1/definitions", ""); w.Code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rate limit did not recover")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := testCounter(t, h.reg, "gateflow_ingress_rate_limited_total"); got < 2 {
		t.Errorf("rate-limited metric %v", got)
	}
}

func testCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func TestRequestIDRecordsMetricsLogs(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	h := newHarness(t, func(d *Deps, _ *Config) {
		d.Log = slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	})
	w := h.do("submitter", "POST", "/v1/workflows", `{"definition":"order"}`, "X-Request-Id", "client-req-1")
	if got := w.Header().Get(HeaderRequestID); got != "client-req-1" {
		t.Errorf("request id %q", got)
	}
	var res StartResponse
	_ = json.Unmarshal(w.Body.Bytes(), &res)
	w = h.do("submitter", "GET", "/v1/workflows/"+res.ID, "", "X-Request-Id", "bad id with spaces")
	if got := w.Header().Get(HeaderRequestID); got == "" || strings.Contains(got, " ") {
		t.Errorf("generated request id %q", got)
	}
	h.do("", "GET", "/v1/workflows", "")
	h.do("", "GET", "/healthz", "")

	recs := h.rec.All()
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3 (probes are not recorded): %+v", len(recs), recs)
	}
	r := recs[0]
	if err := r.Validate(); err != nil {
		t.Error(err)
	}
	if r.Kind != calls.KindIngress || r.Target != "POST /v1/workflows" || r.Tenant != "acme" || r.KeyID != "a00000000001" ||
		r.StatusCode != 201 || r.Outcome != record.OutcomeOK || r.WorkflowID != "acme/"+res.ID || r.Definition != "order" ||
		r.ReqBytes == 0 || r.RespBytes == 0 || r.Labels["request_id"] != "client-req-1" {
		t.Errorf("record %+v", r)
	}
	if recs[1].Target != "GET /v1/workflows/{id}" || recs[1].WorkflowID != "acme/"+res.ID {
		t.Errorf("record %+v", recs[1])
	}
	if recs[2].StatusCode != 401 || recs[2].Outcome != record.OutcomeRejected || recs[2].ErrorClass != "unauthenticated" {
		t.Errorf("record %+v", recs[2])
	}

	w = h.do("", "GET", "/metrics", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `gateflow_ingress_requests_total{method="POST",route="/v1/workflows",status="201"} 1`) ||
		!strings.Contains(w.Body.String(), "gateflow_ingress_request_duration_seconds_bucket") {
		t.Errorf("metrics: %s", w.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), `"request_id":"client-req-1"`) || !strings.Contains(logs.String(), `"route":"/v1/workflows"`) {
		t.Errorf("access log: %s", logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestHealthAndReadiness(t *testing.T) {
	up := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	tests := []struct {
		name       string
		kafka      ReadyCheck
		temporal   func(context.Context) error
		path       string
		wantCode   int
		wantStatus string
	}{
		{"all up", ReadyCheck{Name: "kafka", Check: up}, up, "/readyz", 200, "ready"},
		{"required down", ReadyCheck{Name: "kafka", Check: down}, up, "/readyz", 503, "unready"},
		{"optional down", ReadyCheck{Name: "kafka", Check: down, Optional: true}, up, "/readyz", 200, "degraded"},
		{"optional down, strict", ReadyCheck{Name: "kafka", Check: down, Optional: true}, up, "/readyz?strict=true", 503, "unready"},
		{"temporal down", ReadyCheck{Name: "kafka", Check: down, Optional: true}, down, "/readyz", 503, "unready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(d *Deps, _ *Config) {
				d.Ready = []ReadyCheck{
					{Name: "temporal", Check: tt.temporal},
					tt.kafka,
					{Name: "clickhouse", Check: up, Optional: true},
				}
			})
			if w := h.do("", "GET", "/healthz", ""); w.Code != 200 {
				t.Errorf("healthz %d", w.Code)
			}
			w := h.do("", "GET", tt.path, "")
			var rr ReadyResponse
			_ = json.Unmarshal(w.Body.Bytes(), &rr)
			kafkaUp := tt.kafka.Check(context.Background()) == nil
			if w.Code != tt.wantCode || rr.Status != tt.wantStatus || len(rr.Checks) != 3 ||
				rr.Checks["kafka"].OK != kafkaUp || (!kafkaUp && rr.Checks["kafka"].Error == "") ||
				rr.Checks["kafka"].Optional != tt.kafka.Optional {
				t.Errorf("readyz %d %s", w.Code, w.Body)
			}
		})
	}
}

func TestEventsStream(t *testing.T) {
	h := newHarness(t, nil)
	id := h.start("submitter", `{"definition":"order"}`).ID
	h.fake.watch = []orchestrator.Status{
		{ID: id, Status: workflows.Status{State: workflows.RunRunning, Seq: 1}},
		{ID: id, Status: workflows.Status{State: workflows.RunSucceeded, Seq: 2}},
	}
	w := h.do("approver", "GET", "/v1/workflows/"+id+"/events", "")
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	events := parseSSE(t, w.Body)
	if len(events) != 3 || events[0].name != "status" || events[0].id != "1" || events[1].name != "status" || events[2].name != "end" ||
		!strings.Contains(events[2].data, "succeeded") {
		t.Errorf("events %+v", events)
	}
	if w := h.do("approver", "GET", "/v1/workflows/unknown/events", ""); w.Code != 404 {
		t.Errorf("unknown: %d", w.Code)
	} else {
		apiErr(t, w)
	}
}

type sseEvent struct{ name, id, data string }

func parseSSE(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

func TestGracefulShutdown(t *testing.T) {
	h := newHarness(t, nil)
	id := h.start("submitter", `{"definition":"order"}`).ID
	h.fake.watch = []orchestrator.Status{{ID: id, Status: workflows.Status{State: workflows.RunRunning, Seq: 1}}}
	h.fake.watchBlock = true
	h.fake.statusDelay = 300 * time.Millisecond

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	// An open event stream.
	req, _ := http.NewRequest("GET", base+"/v1/workflows/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testKeys["submitter"].token)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	rd := bufio.NewReader(stream.Body)
	if line, _ := rd.ReadString('\n'); !strings.HasPrefix(line, "id: 1") {
		t.Fatalf("first line %q", line)
	}
	// A slow request in flight when shutdown begins.
	slow := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/v1/workflows/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+testKeys["submitter"].token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- -1
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()

	rest, _ := io.ReadAll(rd)
	if !strings.Contains(string(rest), "event: shutdown") {
		t.Errorf("stream did not end with a shutdown event: %q", rest)
	}
	if code := <-slow; code != 200 {
		t.Errorf("in-flight request: %d", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestMount(t *testing.T) {
	h := newHarness(t, nil)
	g := api.Group{Name: "analytics", Description: "Call analytics.", Routes: []api.Route{{
		Method: "GET", Path: "/v1/analytics/targets/{target}", Roles: []auth.Role{auth.RoleAnalyst},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := api.Caller(r.Context())
			if r.PathValue("target") == "bad" {
				httperr.Write(w, r, api.Errorf(400, "bad_target", "bad target"))
				return
			}
			api.WriteJSON(w, 200, map[string]string{"target": r.PathValue("target"), "tenant": p.Tenant, "rid": api.RequestID(r.Context())})
		}),
		Doc: api.Operation{Summary: "Volume of a target", Params: []api.Param{{Name: "target", In: "path"}},
			Responses: map[int]api.Response{200: {Description: "ok", Schema: api.Ref("Volume")}}},
	}}, Schemas: map[string]any{"Volume": map[string]any{"type": "object"}}}
	if err := h.srv.Mount(g); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Mount(g); err == nil {
		t.Error("mounting twice should fail")
	}
	w := h.do("analyst", "GET", "/v1/analytics/targets/orders", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"target":"orders"`) || !strings.Contains(w.Body.String(), `"tenant":"acme"`) {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	if w := h.do("submitter", "GET", "/v1/analytics/targets/orders", ""); w.Code != 403 {
		t.Errorf("role: %d", w.Code)
	}
	if w := h.do("analyst", "GET", "/v1/analytics/targets/bad", ""); w.Code != 400 {
		t.Errorf("error: %d", w.Code)
	} else if e := apiErr(t, w); e.Code != "bad_target" {
		t.Errorf("code %q", e.Code)
	}
	recs := h.rec.All()
	if last := recs[len(recs)-1]; last.Target != "GET /v1/analytics/targets/{target}" || last.StatusCode != 400 || last.ErrorClass != "bad_target" {
		t.Errorf("record %+v", last)
	}
	doc := h.srv.OpenAPI()
	if _, ok := doc["paths"].(map[string]any)["/v1/analytics/targets/{target}"]; !ok {
		t.Error("mounted route missing from the OpenAPI document")
	}
}

// TestOpenAPIMatchesRoutes walks every Echo route and the document both
// ways.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	h := newHarness(t, nil)
	w := h.do("", "GET", "/v1/openapi.json", "")
	if w.Code != 200 {
		t.Fatalf("%d", w.Code)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	registered := map[string]bool{}
	for _, r := range h.srv.e.Routes() {
		if strings.HasPrefix(r.Method, "echo_") {
			continue
		}
		path := openAPIPath(r.Path)
		key := strings.ToLower(r.Method) + " " + path
		registered[key] = true
		if _, ok := doc.Paths[path][strings.ToLower(r.Method)]; !ok {
			t.Errorf("route %s %s is not in the OpenAPI document", r.Method, path)
		}
	}
	for path, item := range doc.Paths {
		for method, op := range item {
			if !registered[method+" "+path] {
				t.Errorf("documented %s %s is not a route", method, path)
			}
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s has no responses", method, path)
			}
			// Every path parameter is documented.
			params, _ := op["parameters"].([]any)
			for _, name := range api.PathParams(path) {
				found := false
				for _, p := range params {
					pm := p.(map[string]any)
					found = found || (pm["name"] == name && pm["in"] == "path" && pm["required"] == true)
				}
				if !found {
					t.Errorf("%s %s: path parameter %s not documented", method, path, name)
				}
			}
		}
	}
	// Every $ref resolves.
	var full map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &full)
	schemas := full["components"].(map[string]any)["schemas"].(map[string]any)
	headers := full["components"].(map[string]any)["headers"].(map[string]any)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				name := ref[strings.LastIndex(ref, "/")+1:]
				_, s := schemas[name]
				_, h := headers[name]
				if !s && !h {
					t.Errorf("dangling $ref %s", ref)
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(full)
}

// openAPIPath turns Echo's ":name" segments into "{name}".
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

func TestMeAndRunInput(t *testing.T) {
	h := newHarness(t, nil)
	w := h.do("approver", "GET", "/v1/me", "")
	var me MeResponse
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &me) != nil {
		t.Fatalf("me: %d %s", w.Code, w.Body)
	}
	if me.Tenant != "acme" || me.User != "alice" || me.KeyID == "" || strings.Join(me.Roles, ",") != "approver,finance" {
		t.Errorf("me: %+v", me)
	}
	if w := h.do("", "GET", "/v1/me", ""); w.Code != 401 {
		t.Errorf("me without a key: %d", w.Code)
	}

	s := h.start("submitter", `{"definition":"order","input":{"amount":1}}`)
	w = h.do("analyst", "GET", "/v1/workflows/"+s.ID+"/input", "")
	var in orchestrator.RunInput
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &in) != nil {
		t.Fatalf("input: %d %s", w.Code, w.Body)
	}
	if in.ID != s.ID || string(in.Input) != `{"amount":1}` || in.Definition.Name != "order" {
		t.Errorf("input: %+v", in)
	}
	if w := h.do("other", "GET", "/v1/workflows/"+s.ID+"/input", ""); w.Code != 404 || apiErr(t, w).Code != "workflow_not_found" {
		t.Errorf("another tenant's input: %d %s", w.Code, w.Body)
	}
}

// TestPageRoutes mounts a page group: its routes (one with a {rest...}
// wildcard) answer behind the middleware, stay out of the OpenAPI
// document and make no call record.
func TestPageRoutes(t *testing.T) {
	h := newHarness(t, nil)
	echoPath := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path+"|"+r.PathValue("file"))
	})
	err := h.srv.Mount(api.Group{Name: "console", Description: "pages", Routes: []api.Route{
		{Method: "GET", Path: "/console", Public: true, Page: true, Handler: echoPath},
		{Method: "GET", Path: "/console/assets/{file...}", Public: true, Page: true, Handler: echoPath},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/console":                  "/console|",
		"/console/assets/a/b/c.js":  "/console/assets/a/b/c.js|a/b/c.js",
		"/console/assets/style.css": "/console/assets/style.css|style.css",
	} {
		w := h.do("", "GET", path, "")
		if w.Code != 200 || w.Body.String() != want || w.Header().Get(HeaderRequestID) == "" {
			t.Errorf("%s: %d %q", path, w.Code, w.Body)
		}
	}
	if n := len(h.rec.All()); n != 0 {
		t.Errorf("%d call records for pages", n)
	}
	doc := h.srv.OpenAPI()
	for p := range doc["paths"].(map[string]any) {
		if strings.HasPrefix(p, "/console") {
			t.Errorf("page %s in the OpenAPI document", p)
		}
	}
	for _, tag := range doc["tags"].([]any) {
		if tag.(map[string]any)["name"] == "console" {
			t.Error("a group of pages only is an OpenAPI tag")
		}
	}
}
