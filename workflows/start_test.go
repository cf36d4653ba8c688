package workflows_test

import (
	"testing"
	"time"

	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
)

func TestWithServiceDefaults(t *testing.T) {
	d := def(t, `{"steps": [
		{"id": "a", "kind": "http", "service": "pay"},
		{"id": "b", "kind": "http", "service": "pay", "timeout": "2s", "retry": {"max_attempts": 9}},
		{"id": "c", "kind": "http", "url": "http://127.0.0.1/x"},
		{"id": "p", "kind": "parallel", "branches": [{"name": "x", "steps": [{"id": "d", "kind": "http", "service": "pay"}]}]},
		{"id": "f", "kind": "foreach", "items": "[1]", "steps": [{"id": "e", "kind": "http", "service": "other",
			"compensate": {"id": "u", "kind": "http", "service": "pay"}}]}
	]}`)
	defaults := func(name string) (definition.Duration, *definition.RetryPolicy, bool) {
		if name != "pay" {
			return "", nil, false
		}
		return "7s", &definition.RetryPolicy{MaxAttempts: 4, InitialInterval: "3s", NonRetryableStatuses: []int{400}}, true
	}
	got := workflows.WithServiceDefaults(d, defaults)
	a, b, c := got.Steps[0], got.Steps[1], got.Steps[2]
	if a.Timeout != "7s" || a.Retry == nil || a.Retry.MaxAttempts != 4 || a.Retry.InitialInterval != "3s" {
		t.Errorf("a: %+v %+v", a, a.Retry)
	}
	if b.Timeout != "2s" || b.Retry.MaxAttempts != 9 || b.Retry.InitialInterval != "3s" || b.Retry.NonRetryableStatuses[0] != 400 {
		t.Errorf("b: %+v %+v", b, b.Retry)
	}
	if c.Timeout != "" || c.Retry != nil {
		t.Errorf("c (url) changed: %+v", c)
	}
	if d := got.Steps[3].Branches[0].Steps[0]; d.Timeout != "7s" {
		t.Errorf("nested d: %+v", d)
	}
	if e := got.Steps[4].Steps[0]; e.Timeout != "" || e.Compensate.Timeout != "7s" {
		t.Errorf("foreach e: %+v, compensate %+v", e, e.Compensate)
	}
	// The original is untouched (it may be the registry's shared copy).
	if d.Steps[0].Timeout != "" || d.Steps[0].Retry != nil || d.Steps[3].Branches[0].Steps[0].Timeout != "" || d.Steps[4].Steps[0].Compensate.Timeout != "" {
		t.Error("WithServiceDefaults modified its argument")
	}
}

func TestExecutionTimeout(t *testing.T) {
	if got := workflows.ExecutionTimeout(&definition.Definition{}); got != 0 {
		t.Errorf("no timeout: %s", got)
	}
	if got := workflows.ExecutionTimeout(&definition.Definition{Timeout: "10m"}); got != 10*time.Minute+workflows.CompensationGrace {
		t.Errorf("10m: %s", got)
	}
}
