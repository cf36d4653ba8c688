package activities_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
)

// fakeServices resolves a fixed set of services and allows URLs on the
// hosts listed.
type fakeServices struct {
	services map[string]activities.Endpoint
	allowed  map[string]bool // host:port
}

func (f fakeServices) Resolve(_, name string) (activities.Endpoint, error) {
	ep, ok := f.services[name]
	if !ok {
		return activities.Endpoint{}, fmt.Errorf("%q: %w", name, activities.ErrUnknownService)
	}
	return ep, nil
}

func (f fakeServices) AllowURL(_, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if !f.allowed[u.Host] {
		return fmt.Errorf("host %s: %w", u.Host, activities.ErrURLNotAllowed)
	}
	return nil
}

type httpFixture struct {
	env  *testsuite.TestActivityEnvironment
	recs *recordtest.Sink
	srv  *httptest.Server
	svc  fakeServices
}

func newHTTPFixture(t *testing.T, handler http.HandlerFunc, opts activities.HTTPOptions) *httpFixture {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	f := &httpFixture{recs: &recordtest.Sink{}, srv: srv}
	f.svc = fakeServices{
		services: map[string]activities.Endpoint{
			"billing":  {Name: "billing", BaseURL: srv.URL + "/api/", Headers: map[string]string{"Authorization": "Bearer ${env:GATEFLOW_TEST_TOKEN}"}},
			"nosecret": {Name: "nosecret", BaseURL: srv.URL, Headers: map[string]string{"X-Key": "${env:GATEFLOW_TEST_UNSET_VARIABLE}"}},
			"tiny":     {Name: "tiny", BaseURL: srv.URL, MaxResponseBytes: 8},
		},
		allowed: map[string]bool{u.Host: true, "localhost:" + u.Port(): true},
	}
	a := activities.NewHTTPActivity(f.svc, f.recs, opts)
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	f.env = ts.NewTestActivityEnvironment()
	f.env.RegisterActivityWithOptions(a.Call, activity.RegisterOptions{Name: activities.HTTPCallActivity})
	return f
}

func (f *httpFixture) call(in activities.HTTPCallInput) (activities.HTTPCallOutput, error) {
	if in.Meta.Tenant == "" {
		in.Meta = activities.RunMeta{Tenant: "acme", KeyID: "k1", Definition: "orders", Version: "1"}
	}
	if in.StepID == "" {
		in.StepID = "charge"
	}
	val, err := f.env.ExecuteActivity(activities.HTTPCallActivity, in)
	if err != nil {
		return activities.HTTPCallOutput{}, err
	}
	var out activities.HTTPCallOutput
	if err := val.Get(&out); err != nil {
		return out, err
	}
	return out, nil
}

func appError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an application error", err, err)
	}
	return ae
}

func TestHTTPCallSuccess(t *testing.T) {
	t.Setenv("GATEFLOW_TEST_TOKEN", "s3cret")
	var got *http.Request
	var gotBody []byte
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Trace", "abc")
		fmt.Fprint(w, `{"id":"ch_1","amount":42}`)
	}, activities.HTTPOptions{})

	out, err := f.call(activities.HTTPCallInput{
		Service: "billing", Method: "post", Path: "/charges",
		Headers: map[string]string{"X-Step": "yes"},
		Query:   map[string]string{"dry": "1"},
		Body:    json.RawMessage(`{"amount":42}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/api/charges" || got.URL.Query().Get("dry") != "1" {
		t.Errorf("request %s %s", got.Method, got.URL)
	}
	if got.Header.Get("Authorization") != "Bearer s3cret" || got.Header.Get("X-Step") != "yes" {
		t.Errorf("headers %v", got.Header)
	}
	if got.Header.Get("Content-Type") != "application/json" || string(gotBody) != `{"amount":42}` {
		t.Errorf("body %q (%s)", gotBody, got.Header.Get("Content-Type"))
	}
	if out.Status != 200 || out.Attempt != 1 || out.Headers["x-trace"] != "abc" {
		t.Errorf("output %+v", out)
	}
	body, _ := out.Body.(map[string]any)
	if body["id"] != "ch_1" || body["amount"] != 42.0 {
		t.Errorf("body %#v", out.Body)
	}
	recs := f.recs.All()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if r.Kind != calls.KindHTTP || r.Target != "billing" || r.Outcome != record.OutcomeOK || r.StatusCode != 200 ||
		r.Tenant != "acme" || r.KeyID != "k1" || r.StepID != "charge" || r.Definition != "orders" || r.Version != "1" ||
		r.Attempt != 1 || r.ReqBytes != 13 || r.RespBytes != int64(len(`{"id":"ch_1","amount":42}`)) || r.Labels["method"] != "POST" {
		t.Errorf("record %+v", r)
	}
	if strings.Contains(fmt.Sprint(r), "s3cret") {
		t.Error("record holds the secret")
	}
}

func TestHTTPCallBodies(t *testing.T) {
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/text":
			fmt.Fprint(w, "plain words")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/notfound":
			http.Error(w, "nope", http.StatusNotFound)
		}
	}, activities.HTTPOptions{})
	out, err := f.call(activities.HTTPCallInput{URL: f.srv.URL, Path: "text"})
	if err != nil || out.Body != "plain words" {
		t.Errorf("text: %v %#v", err, out.Body)
	}
	out, err = f.call(activities.HTTPCallInput{URL: f.srv.URL + "/empty"})
	if err != nil || out.Body != nil || out.Status != 204 {
		t.Errorf("empty: %v %+v", err, out)
	}
	out, err = f.call(activities.HTTPCallInput{URL: f.srv.URL + "/notfound", SuccessStatuses: []int{200, 404}})
	if err != nil || out.Status != 404 {
		t.Errorf("404 as success: %v %+v", err, out)
	}
	if recs := f.recs.All(); len(recs) != 3 || recs[0].Target != strings.TrimPrefix(f.srv.URL, "http://") {
		t.Errorf("records %+v", recs)
	}
}

func TestHTTPCallErrors(t *testing.T) {
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			http.Error(w, "database down", http.StatusInternalServerError)
		case "/401":
			w.WriteHeader(http.StatusUnauthorized)
		case "/429":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/503":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/422":
			w.WriteHeader(http.StatusUnprocessableEntity)
		case "/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		case "/big":
			fmt.Fprint(w, strings.Repeat("x", 2048))
		case "/redirect":
			http.Redirect(w, r, "http://198.51.100.7/elsewhere", http.StatusFound)
		}
	}, activities.HTTPOptions{MaxResponseBytes: 1024})

	cases := []struct {
		name         string
		in           activities.HTTPCallInput
		class        string
		nonRetryable bool
		status       int
		outcome      record.Outcome
	}{
		{"500", activities.HTTPCallInput{URL: f.srv.URL + "/500"}, calls.ClassStatus, false, 500, record.OutcomeError},
		{"500 listed", activities.HTTPCallInput{URL: f.srv.URL + "/500", NonRetryableStatuses: []int{500}}, calls.ClassStatus, true, 500, record.OutcomeError},
		{"401", activities.HTTPCallInput{URL: f.srv.URL + "/401"}, calls.ClassAuth, true, 401, record.OutcomeError},
		{"429", activities.HTTPCallInput{URL: f.srv.URL + "/429"}, calls.ClassRateLimit, false, 429, record.OutcomeError},
		{"503", activities.HTTPCallInput{URL: f.srv.URL + "/503"}, calls.ClassOverloaded, false, 503, record.OutcomeError},
		{"422", activities.HTTPCallInput{URL: f.srv.URL + "/422"}, calls.ClassStatus, false, 422, record.OutcomeError},
		{"timeout", activities.HTTPCallInput{URL: f.srv.URL + "/slow", Timeout: 50 * time.Millisecond}, calls.ClassTimeout, false, 0, record.OutcomeTimeout},
		{"too large", activities.HTTPCallInput{URL: f.srv.URL + "/big"}, calls.ClassTooLarge, true, 200, record.OutcomeError},
		{"unknown service", activities.HTTPCallInput{Service: "nope"}, calls.ClassBadRequest, true, 0, record.OutcomeError},
		{"host not allowed", activities.HTTPCallInput{URL: "http://198.51.100.7/x"}, calls.ClassNotAllowed, true, 0, record.OutcomeError},
		{"redirect not allowed", activities.HTTPCallInput{URL: f.srv.URL + "/redirect"}, calls.ClassNotAllowed, true, 0, record.OutcomeError},
		{"bad url", activities.HTTPCallInput{URL: "ftp://example.com/x"}, calls.ClassBadRequest, true, 0, record.OutcomeError},
		{"per-service cap", activities.HTTPCallInput{Service: "tiny", Path: "/big"}, calls.ClassTooLarge, true, 200, record.OutcomeError},
		{"name resolving to a refused address", activities.HTTPCallInput{URL: "http://localhost:" + portOf(f.srv.URL) + "/x"}, calls.ClassNotAllowed, true, 0, record.OutcomeError},
		{"missing secret", activities.HTTPCallInput{Service: "nosecret"}, calls.ClassInternal, true, 0, record.OutcomeError},
		{"connection refused", activities.HTTPCallInput{URL: closedURL(t)}, calls.ClassConnection, false, 0, record.OutcomeError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.recs.All())
			if tc.name == "connection refused" {
				f.svc.allowed[strings.TrimPrefix(tc.in.URL, "http://")] = true
			}
			if tc.name == "name resolving to a refused address" {
				// localhost is allowed by name, its address is not.
				ip := strings.TrimPrefix(f.srv.URL, "http://")
				delete(f.svc.allowed, ip)
				defer func() { f.svc.allowed[ip] = true }()
			}
			_, err := f.call(tc.in)
			if err == nil {
				t.Fatal("no error")
			}
			ae := appError(t, err)
			if ae.Type() != tc.class || ae.NonRetryable() != tc.nonRetryable {
				t.Errorf("type %q nonRetryable %v, want %q %v (%v)", ae.Type(), ae.NonRetryable(), tc.class, tc.nonRetryable, err)
			}
			var d activities.CallErrorDetails
			if err := ae.Details(&d); err != nil || d.Attempt != 1 || d.StatusCode != tc.status {
				t.Errorf("details %+v %v", d, err)
			}
			recs := f.recs.All()
			if len(recs) != before+1 {
				t.Fatalf("%d new records", len(recs)-before)
			}
			r := recs[len(recs)-1]
			if r.Outcome != tc.outcome || r.ErrorClass != tc.class || r.StatusCode != int32(tc.status) || r.ErrorMsg == "" {
				t.Errorf("record %+v", r)
			}
			if err := r.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func portOf(raw string) string {
	u, _ := url.Parse(raw)
	return u.Port()
}

// closedURL returns a loopback URL where nothing listens.
func closedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func TestHTTPCallSecretNotInError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("filetoken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := activities.ResolveSecrets("Bearer ${file:" + path + "} ${other} $${x}")
	if err != nil || v != "Bearer filetoken ${other} $${x}" {
		t.Errorf("%q %v", v, err)
	}
	t.Setenv("GATEFLOW_TEST_TOKEN", "abc")
	v, err = activities.ResolveSecrets("${env:GATEFLOW_TEST_TOKEN}-${env:GATEFLOW_TEST_TOKEN}")
	if err != nil || v != "abc-abc" {
		t.Errorf("%q %v", v, err)
	}
	_, err = activities.ResolveSecrets("${file:" + filepath.Join(dir, "missing") + "}")
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
}

// TestHTTPCallIdentityHeaders: every service call says who it is for, and a
// step can neither replace the service's configured headers (any case) nor
// set the gateway's own.
func TestHTTPCallIdentityHeaders(t *testing.T) {
	t.Setenv("GATEFLOW_TEST_TOKEN", "s3cret")
	var got http.Header
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}, activities.HTTPOptions{})

	meta := activities.RunMeta{Tenant: "acme", KeyID: "k1", SubmittedBy: "ann"}
	if _, err := f.call(activities.HTTPCallInput{StepRef: activities.StepRef{Meta: meta}, Service: "billing", Method: "GET"}); err != nil {
		t.Fatal(err)
	}
	if got.Get(calls.HeaderTenant) != "acme" || got.Get(calls.HeaderUser) != "ann" || got.Get("Authorization") != "Bearer s3cret" {
		t.Errorf("headers %v", got)
	}
	// A key without a user: no user header (SubmittedBy is the key id).
	got = nil
	meta = activities.RunMeta{Tenant: "acme", KeyID: "k1", SubmittedBy: "k1"}
	if _, err := f.call(activities.HTTPCallInput{StepRef: activities.StepRef{Meta: meta}, Service: "billing", Method: "GET"}); err != nil {
		t.Fatal(err)
	}
	if got.Get(calls.HeaderTenant) != "acme" || got.Values(calls.HeaderUser) != nil {
		t.Errorf("headers without a user %v", got)
	}

	for name, value := range map[string]string{"authorization": "Bearer mine", "Gateflow-Tenant": "other", "GATEFLOW-user": "root"} {
		got = nil
		_, err := f.call(activities.HTTPCallInput{Service: "billing", Method: "GET", Headers: map[string]string{name: value}})
		ae := appError(t, err)
		if ae.Type() != calls.ClassBadRequest || !ae.NonRetryable() || !strings.Contains(ae.Error(), "may not") {
			t.Errorf("%s: %v (type %s)", name, err, ae.Type())
		}
		if got != nil {
			t.Errorf("%s: the request was sent", name)
		}
	}
}
