package ingress

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The fuzz targets drive the real handlers with the fake orchestrator,
// which fails the test when anything invalid reaches it. Each answer must
// be a success or a 4xx in the error shape: never a 500 or a panic.

func checkAnswer(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code >= 500 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if w.Code >= 400 {
		apiErr(t, w)
	}
}

func FuzzSubmission(f *testing.F) {
	for _, s := range []string{
		`{"definition":"order","input":{"a":1}}`,
		`{"definition":"order","version":"1","labels":{"team":"x"}}`,
		`{"definition":{"name":"x","steps":[{"id":"a","kind":"wait","duration":"1s","retry":{"max_attempts":2}}]}}`,
		`{"definition":"order","input":[1]}`,
		`{"definition":null}`, `[]`, `{`, `{"definition":"order","input":{"a":{"b":{"c":{}}}}}`,
		"{\"definition\":\"order\u0000\"}",
	} {
		f.Add([]byte(s), "key-1")
	}
	h := newHarness(f, nil)
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		h.fake.t = t
		h.t = t
		req := httptest.NewRequest("POST", "/v1/workflows", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+testKeys["submitter"].token)
		req.Header["Idempotency-Key"] = []string{key}
		w := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(w, req)
		checkAnswer(t, w)
	})
}

func FuzzDecision(f *testing.F) {
	for _, s := range []string{`{"decision":"approve"}`, `{"decision":"reject","comment":"no"}`, `{"decision":1}`, `{"comment":"x"}`, `null`} {
		f.Add([]byte(s), "check")
	}
	f.Add([]byte(`{"decision":"approve"}`), "fan[1].x")
	f.Add([]byte(`{"decision":"approve"}`), "../x")
	h := newHarness(f, nil)
	id := h.start("submitter", `{"definition":"order"}`).ID
	f.Fuzz(func(t *testing.T, body []byte, step string) {
		h.fake.t = t
		h.t = t
		req := httptest.NewRequest("POST", "/v1/workflows/"+id+"/approvals/"+url.PathEscape(step), strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+testKeys["approver"].token)
		w := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(w, req)
		if w.Code == http.StatusOK {
			if _, err := DecodeDecision(body, step, 0); err != nil {
				t.Fatalf("accepted an invalid decision: %v", err)
			}
		}
		checkAnswer(t, w)
	})
}

func FuzzListQuery(f *testing.F) {
	for _, s := range []string{"", "status=running", "limit=5&cursor=AQID", "started_after=2025-01-01T00:00:00Z",
		"definition=x'%20OR%201=1", "status=running&status=failed", "%zz", "limit=-1", "foo=bar"} {
		f.Add(s)
	}
	h := newHarness(f, nil)
	f.Fuzz(func(t *testing.T, query string) {
		h.fake.t = t
		h.t = t
		req := httptest.NewRequest("GET", "/v1/workflows", nil)
		req.URL.RawQuery = query
		req.Header.Set("Authorization", "Bearer "+testKeys["submitter"].token)
		w := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(w, req)
		checkAnswer(t, w)
	})
}
