package activities_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
)

// witness is a server of another origin that records what reaches it.
type witness struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []http.Header
}

func newWitness(t *testing.T) *witness {
	w := &witness{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.reqs = append(w.reqs, r.Header.Clone())
		w.mu.Unlock()
		rw.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *witness) seen() []http.Header {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]http.Header(nil), w.reqs...)
}

func wantClass(t *testing.T, err error, class string) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T), want class %s", err, err, class)
	}
	if ae.Type() != class || !ae.NonRetryable() {
		t.Fatalf("class %s nonRetryable %v, want %s non-retryable: %v", ae.Type(), ae.NonRetryable(), class, err)
	}
	return ae
}

// TestServiceCallsStayOnTheirOrigin: a registered service's credentials
// never leave its origin; a same-origin redirect is still followed.
func TestServiceCallsStayOnTheirOrigin(t *testing.T) {
	t.Setenv("GATEFLOW_TEST_TOKEN", "s3cret")
	other := newWitness(t)
	var landed http.Header
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/cross":
			http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
		case "/api/same":
			http.Redirect(w, r, "/api/landed", http.StatusFound)
		case "/api/landed":
			landed = r.Header.Clone()
		default:
			t.Errorf("unexpected %s", r.URL)
		}
	}, activities.HTTPOptions{})

	_, err := f.call(activities.HTTPCallInput{Service: "billing", Path: "/cross", Headers: map[string]string{"X-Api-Key": "k3y"}})
	ae := wantClass(t, err, calls.ClassNotAllowed)
	if !strings.Contains(ae.Error(), "another origin") || strings.Contains(ae.Error(), "s3cret") {
		t.Errorf("message %q", ae.Error())
	}
	if got := other.seen(); len(got) != 0 {
		t.Fatalf("the other origin received %d requests: %v", len(got), got)
	}

	if _, err := f.call(activities.HTTPCallInput{Service: "billing", Path: "/same"}); err != nil {
		t.Fatal(err)
	}
	if landed.Get("Authorization") != "Bearer s3cret" {
		t.Errorf("same-origin redirect lost the service's credentials: %v", landed)
	}
}

// TestURLRedirectDropsStepHeaders: a URL step may follow a redirect to
// another allowed host, without the headers the step set.
func TestURLRedirectDropsStepHeaders(t *testing.T) {
	other := newWitness(t)
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/next", http.StatusFound)
	}, activities.HTTPOptions{})
	f.svc.allowed[strings.TrimPrefix(other.URL, "http://")] = true
	_, err := f.call(activities.HTTPCallInput{URL: f.srv.URL + "/start", Headers: map[string]string{"X-Api-Key": "k3y", "Authorization": "Bearer t0k"}})
	if err != nil {
		t.Fatal(err)
	}
	got := other.seen()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	if got[0].Get("X-Api-Key") != "" || got[0].Get("Authorization") != "" || got[0].Get("Referer") != "" {
		t.Errorf("step headers followed the redirect: %v", got[0])
	}
}

// TestSpecialAddressesRefusedAtDial: a redirect the allow-list lets
// through (a host name could resolve anywhere) still cannot connect to a
// special-purpose address; the dialer refuses before any packet.
func TestSpecialAddressesRefusedAtDial(t *testing.T) {
	var target string
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	}, activities.HTTPOptions{DefaultTimeout: 5 * time.Second})
	for _, tc := range []struct{ target, host, rangeName string }{
		{"http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"},
		{"http://100.64.0.1/", "100.64.0.1", "CGNAT"},
		{"http://[::ffff:169.254.169.254]/latest/meta-data/", "[::ffff:169.254.169.254]", "link-local"},
		{"http://[64:ff9b::a9fe:a9fe]/", "[64:ff9b::a9fe:a9fe]", "link-local"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			target = tc.target
			// The fake allow-list admits the host (as a name on a real
			// list would be admitted), not the address dialled.
			f.svc.allowed[tc.host] = true
			_, err := f.call(activities.HTTPCallInput{URL: f.srv.URL + "/go"})
			ae := wantClass(t, err, calls.ClassNotAllowed)
			if !strings.Contains(ae.Error(), tc.rangeName) {
				t.Errorf("message %q does not name the range %s", ae.Error(), tc.rangeName)
			}
		})
	}
	// A registered service cannot point at cloud metadata either.
	f.svc.services["metadata"] = activities.Endpoint{Name: "metadata", BaseURL: "http://169.254.169.254"}
	f.svc.services["mapped"] = activities.Endpoint{Name: "mapped", BaseURL: "http://[::ffff:169.254.169.254]"}
	for _, svc := range []string{"metadata", "mapped"} {
		_, err := f.call(activities.HTTPCallInput{Service: svc, Path: "/latest/meta-data/"})
		wantClass(t, err, calls.ClassNotAllowed)
	}
}

// TestPathTraversalRefused: a path that climbs out of the service's base
// path never leaves the worker, whatever rendered it.
func TestPathTraversalRefused(t *testing.T) {
	t.Setenv("GATEFLOW_TEST_TOKEN", "s3cret")
	hits := 0
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) { hits++ }, activities.HTTPOptions{})
	for _, p := range []string{
		"/orders/../../redirect?to=http://169.254.169.254/latest/meta-data/",
		"/orders/%2e%2e/%2e%2e/admin",
		`/orders/..\..\admin`,
	} {
		_, err := f.call(activities.HTTPCallInput{Service: "billing", Path: p})
		ae := wantClass(t, err, calls.ClassBadRequest)
		if !strings.Contains(ae.Error(), `".." segment`) {
			t.Errorf("%s: message %q", p, ae.Error())
		}
	}
	if hits != 0 {
		t.Fatalf("%d requests reached the service", hits)
	}
}

// TestMCPCredentialsStayOnTheirOrigin: an MCP server redirecting to
// another origin gets the call refused; its Authorization goes nowhere.
func TestMCPCredentialsStayOnTheirOrigin(t *testing.T) {
	other := newWitness(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/mcp", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	f := newMCPFixture(t, map[string]activities.MCPEndpoint{
		"calc": {Name: "calc", URL: redirector.URL + "/mcp", Headers: map[string]string{"Authorization": "Bearer s3cret"}},
	}, activities.MCPOptions{})
	_, err := f.call("calc", "add", `{"a":1,"b":2}`, 5*time.Second)
	wantClass(t, err, calls.ClassNotAllowed)
	for _, h := range other.seen() {
		if h.Get("Authorization") != "" {
			t.Fatalf("the other origin received the MCP server's Authorization")
		}
	}
	if n := len(other.seen()); n != 0 {
		t.Errorf("the other origin received %d requests", n)
	}
}
