package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/gateflow/gateflow/activities"
)

// TestCallStepHeartbeatTimeouts holds the activity options behind
// docs/WORKFLOWS.md's "a worker dying mid-call costs ~10 s, not the whole
// attempt timeout": http and model steps whose attempt may last longer
// than 20 s get a 10 s heartbeat timeout, shorter ones none. mcp steps get
// it too: without it, the fault run's orchestration whose worker was
// SIGKILLed during its mcp step stayed open for the step's whole 5-minute
// attempt (issue 15).
// worker's TestWorkerKilledDuringStep checks the effect on a real server.
func TestCallStepHeartbeatTimeouts(t *testing.T) {
	h := newHarness(t, nil)
	type started struct {
		activity                string
		startToClose, heartbeat time.Duration
	}
	var mu sync.Mutex
	var got []started // in start order: the steps run one after another
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, started{info.ActivityType.Name, info.StartToCloseTimeout, info.HeartbeatTimeout})
	})
	h.run(input(def(t, `{"steps": [
		{"id": "http_long", "kind": "http", "service": "s", "timeout": "30s"},
		{"id": "http_short", "kind": "http", "service": "s", "timeout": "15s"},
		{"id": "http_default", "kind": "http", "service": "s"},
		{"id": "model_default", "kind": "model", "model": "m", "prompt": "hi"},
		{"id": "model_short", "kind": "model", "model": "m", "prompt": "hi", "timeout": "10s"},
		{"id": "mcp_default", "kind": "mcp", "server": "files", "tool": "write"},
		{"id": "mcp_short", "kind": "mcp", "server": "files", "tool": "write", "timeout": "10s"}
	]}`), `{}`))
	h.result()
	want := []struct {
		step string
		started
	}{
		{"http_long", started{activities.HTTPCallActivity, 35 * time.Second, 10 * time.Second}},
		{"http_short", started{activities.HTTPCallActivity, 20 * time.Second, 0}}, // may last 20 s: none
		{"http_default", started{activities.HTTPCallActivity, 5 * time.Minute, 10 * time.Second}},
		{"model_default", started{activities.ModelCallActivity, 10 * time.Minute, 10 * time.Second}},
		{"model_short", started{activities.ModelCallActivity, 15 * time.Second, 0}},
		{"mcp_default", started{activities.MCPCallActivity, 5 * time.Minute, 10 * time.Second}},
		{"mcp_short", started{activities.MCPCallActivity, 15 * time.Second, 0}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d activities started, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i] != w.started {
			t.Errorf("%s: %+v, want %+v", w.step, got[i], w.started)
		}
	}
}
