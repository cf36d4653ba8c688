package ingress

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"

	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// dialError is what Temporal's client reports when its frontend is down.
const dialError = `connection error: desc = "transport: Error while dialing: dial tcp 10.20.30.40:7233: connect: connection refused"`

// TestNoAddressesInAnswers: errors that reach a client carry no internal
// address; a server-side failure names the request id instead, for the
// access log, which keeps the whole error (issue 10 item 9).
func TestNoAddressesInAnswers(t *testing.T) {
	for name, err := range map[string]error{
		"orchestrator error with a cause": &orchestrator.Error{Kind: orchestrator.ErrUnavailable, Code: "temporal_unavailable",
			Message: "decide: Temporal is unavailable; retry later", Cause: serviceerror.NewUnavailable(dialError)},
		"foreign error wrapping a kind": fmt.Errorf("query workflow: %s: %w", dialError, orchestrator.ErrUnavailable),
		"internal error":                errors.New(dialError),
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			id := h.start("submitter", `{"definition":"order"}`).ID
			h.fake.decideErr = err
			w := h.do("approver", "POST", "/v1/workflows/"+id+"/approvals/a", `{"decision":"approve"}`, "X-Request-Id", "rid-123")
			body := w.Body.String()
			if w.Code < 500 || strings.Contains(body, "10.20.30.40") || strings.Contains(body, "7233") || !strings.Contains(body, "rid-123") {
				t.Errorf("%d %s", w.Code, body)
			}
			apiErr(t, w)
		})
	}
}

// TestReadinessNamesNoAddress: /readyz is public; a failed check's error
// is shown without addresses.
func TestReadinessNamesNoAddress(t *testing.T) {
	h := newHarness(t, func(d *Deps, _ *Config) {
		d.Ready = []ReadyCheck{{Name: "temporal", Check: func(context.Context) error { return errors.New(dialError) }}}
	})
	w := h.do("", "GET", "/readyz", "")
	if w.Code != 503 || strings.Contains(w.Body.String(), "10.20.30.40") || !strings.Contains(w.Body.String(), "connection refused") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}
