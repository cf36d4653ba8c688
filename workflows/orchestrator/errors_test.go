package orchestrator

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"
)

// TestTemporalErrorHidesAddresses: a Temporal outage is reported to the
// client by class; the dial error with its address is only in the cause,
// which the access log prints (issue 10 item 9).
func TestTemporalErrorHidesAddresses(t *testing.T) {
	err := temporalError(serviceerror.NewUnavailable(`transport: Error while dialing: dial tcp 10.20.30.40:7233: connect: connection refused`), "start workflow x")
	var oe *Error
	if !errors.As(err, &oe) || !errors.Is(err, ErrUnavailable) || oe.Code != "temporal_unavailable" {
		t.Fatalf("%#v", err)
	}
	if strings.Contains(oe.Message, "10.20.30.40") || !strings.Contains(oe.Message, "Temporal is unavailable") {
		t.Errorf("client message %q", oe.Message)
	}
	if !strings.Contains(err.Error(), "10.20.30.40") {
		t.Errorf("the log line %q lost the cause", err.Error())
	}
}
