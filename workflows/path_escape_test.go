package workflows_test

import (
	"strings"
	"testing"

	"github.com/gateflow/gateflow/workflows"
)

// TestHTTPPathValuesEscaped: input interpolated into a service path is
// escaped, and a value that would climb out of the path fails the step
// before any call (item 4 of issue 10).
func TestHTTPPathValuesEscaped(t *testing.T) {
	d := def(t, `{"steps": [{"id": "get", "kind": "http", "service": "orders",
		"path": "/orders/${{ input.id }}?expand=${{ input.expand }}"}]}`)

	h := newHarness(t, nil)
	h.run(input(d, `{"id": "A#12 b/c?x", "expand": "items&admin=1"}`))
	h.result()
	if got := h.f.paths(); len(got) != 1 || got[0] != "/orders/A%2312%20b%2Fc%3Fx?expand=items%26admin%3D1" {
		t.Errorf("paths %q", got)
	}

	h = newHarness(t, nil)
	h.run(input(d, `{"id": "../../redirect?to=http://169.254.169.254/latest/meta-data/", "expand": ""}`))
	ae := h.failure()
	if ae.Type() != workflows.ErrTypeStepFailed || !ae.NonRetryable() || !strings.Contains(ae.Error(), "would leave the service's base path") {
		t.Errorf("failure %q (%s, non-retryable %v)", ae.Error(), ae.Type(), ae.NonRetryable())
	}
	if strings.Contains(ae.Error(), "169.254") {
		t.Errorf("the failure quotes the input: %q", ae.Error())
	}
	if got := h.f.paths(); len(got) != 0 {
		t.Errorf("calls made: %q", got)
	}
}
