package activities_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
)

// fakeIssuer issues "https://gw/cb/<step>" URLs and keeps the tickets.
type fakeIssuer struct{ tickets []activities.CallbackTicket }

func (f *fakeIssuer) Issue(t activities.CallbackTicket) (string, time.Time, error) {
	f.tickets = append(f.tickets, t)
	return "https://gw/cb/" + t.StepID, time.Unix(1_800_000_000, 0), nil
}

// TestHTTPCallback: a step with a callback hands the URL to the service
// (header and body field) and leaves the attempt pending.
func TestHTTPCallback(t *testing.T) {
	var gotHeader string
	var gotBody map[string]any
	iss := &fakeIssuer{}
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Get(activities.HeaderCallbackURL)
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &gotBody)
		w.WriteHeader(http.StatusAccepted)
	}, activities.HTTPOptions{Callbacks: iss})
	t.Setenv("GATEFLOW_TEST_TOKEN", "tok")
	_, err := f.call(activities.HTTPCallInput{Service: "billing", Method: "POST", Body: json.RawMessage(`{"job": 1}`),
		Callback: &activities.CallbackRequest{TTL: time.Hour, BodyField: "callback_url"}})
	if !errors.Is(err, activity.ErrResultPending) {
		t.Fatalf("error %v, want the result pending", err)
	}
	if gotHeader != "https://gw/cb/charge" || gotBody["callback_url"] != "https://gw/cb/charge" || gotBody["job"] != 1.0 {
		t.Errorf("header %q body %v", gotHeader, gotBody)
	}
	if len(iss.tickets) != 1 || iss.tickets[0].Tenant != "acme" || iss.tickets[0].Target != "billing" || iss.tickets[0].TTL != time.Hour {
		t.Errorf("tickets %+v", iss.tickets)
	}
	recs := f.recs.All()
	if len(recs) != 1 || recs[0].Labels["callback"] != "pending" || strings.Contains(recs[0].ErrorMsg, "gw/cb") {
		t.Errorf("records %+v", recs)
	}
}

func TestHTTPCallbackNotConfigured(t *testing.T) {
	f := newHTTPFixture(t, func(w http.ResponseWriter, r *http.Request) { t.Error("called without a callback URL") },
		activities.HTTPOptions{})
	_, err := f.call(activities.HTTPCallInput{Service: "billing", Method: "POST", Callback: &activities.CallbackRequest{TTL: time.Hour}})
	if ae := appError(t, err); ae.Type() != calls.ClassInternal || !strings.Contains(ae.Message(), "not configured") {
		t.Errorf("error %v", err)
	}
}
