package activities_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
)

// TestServiceAddressesNotInErrors: a failed call to a registered service
// names the service and the path, never the address the service's base
// URL points at (issue 10 item 9): the message reaches the workflow's
// status (steps[].error, error) and call records, which tenants read.
func TestServiceAddressesNotInErrors(t *testing.T) {
	f := newHTTPFixture(t, nil, activities.HTTPOptions{})
	down := closedURL(t)
	u, _ := url.Parse(down)
	f.svc.services["down"] = activities.Endpoint{Name: "down", BaseURL: down + "/internal-api/"}
	_, err := f.call(activities.HTTPCallInput{Service: "down", Path: "/orders"})
	if err == nil {
		t.Fatal("a call to a closed port succeeded")
	}
	ae := appError(t, err)
	msg := ae.Message()
	recs := f.recs.All()
	rec := recs[len(recs)-1]
	for _, leak := range []string{u.Host, u.Hostname(), u.Port(), "internal-api", "dial tcp"} {
		if strings.Contains(msg, leak) || strings.Contains(rec.ErrorMsg, leak) {
			t.Errorf("%q leaks into the error %q / record %q", leak, msg, rec.ErrorMsg)
		}
	}
	if ae.Type() != calls.ClassConnection || !strings.Contains(msg, "down/orders") || !strings.Contains(msg, "connection refused") {
		t.Errorf("error %s %q: want the service, the path and what happened", ae.Type(), msg)
	}
}

// TestMCPServerAddressesNotInErrors: the same for MCP servers.
func TestMCPServerAddressesNotInErrors(t *testing.T) {
	down := closedURL(t)
	u, _ := url.Parse(down)
	f := newMCPFixture(t, map[string]activities.MCPEndpoint{"catalog": {Name: "catalog", URL: down + "/mcp"}}, activities.MCPOptions{})
	_, err := f.call("catalog", "lookup", `{}`, 0)
	if err == nil {
		t.Fatal("a call to a closed port succeeded")
	}
	ae := appError(t, err)
	rec := lastRecord(t, f.recs)
	for _, leak := range []string{u.Host, u.Port(), "dial tcp"} {
		if strings.Contains(ae.Message(), leak) || strings.Contains(rec.ErrorMsg, leak) {
			t.Errorf("%q leaks into the error %q / record %q", leak, ae.Message(), rec.ErrorMsg)
		}
	}
	if ae.Type() != calls.ClassConnection || !strings.Contains(ae.Message(), `"catalog"`) {
		t.Errorf("error %s %q", ae.Type(), ae.Message())
	}
}

// TestOutputFitsTemporalPayload: a response within the cap that grows past
// a call's output bound once encoded (escaped text) fails with too_large.
func TestOutputFitsTemporalPayload(t *testing.T) {
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, strings.Repeat("<>", 400<<10))
	}, activities.HTTPOptions{})
	_, err := f.call(activities.HTTPCallInput{URL: f.srv.URL + "/page"})
	if err == nil {
		t.Fatal("an output over Temporal's payload limit was returned")
	}
	if ae := appError(t, err); ae.Type() != calls.ClassTooLarge || !ae.NonRetryable() || !strings.Contains(ae.Message(), "once encoded") {
		t.Errorf("%s %v %q", ae.Type(), ae.NonRetryable(), ae.Message())
	}
}
