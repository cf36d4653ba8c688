//go:build integration

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFaultRunShort is the CI version of `gateflow faultrun` (issue 15):
// every part as its own process (Temporal server, a three-broker Kafka
// cluster, ClickHouse, two ingress, two workers, two sinks), a minute of
// light load (API calls, gateway calls, orchestrations of every step kind
// with approvals decided by a bot) while a random ingress, worker or sink
// is SIGKILLed every few seconds and a broker, the whole Kafka process,
// ClickHouse and the Temporal server are each killed once. It fails on any
// lost or duplicated orchestration, approval or call record. The command
// prints its seed: `gateflow faultrun --short --seed N --keep` replays a
// failure's schedule of faults.
func TestFaultRunShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault run takes about two minutes")
	}
	// In `make test` again since its three CI failures were dealt with: a
	// compound fault that left a rollup short (the next sink now re-sends
	// in-doubt batches; --short also keeps faults apart),
	// a flaky service in lockstep with retries, and orchestrations whose
	// mcp step waited out its 5-minute attempt after its worker was killed
	// (mcp steps now have a heartbeat timeout). An unclosed orchestration
	// is described from Temporal in the output below (UNCLOSED ...).
	bin := buildGateflow(t)
	dir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "faultrun", "--short", "--dir", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 30 * time.Second
	err := cmd.Run()
	t.Logf("gateflow faultrun --short:\n%s", out.String())
	if err == nil && strings.Contains(out.String(), "PASS: lost 0, duplicated 0") {
		return
	}
	// The parts' logs, for the failure's cause.
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "out.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("--- tail of %s:\n%s", l, b)
	}
	t.Fatalf("fault run failed: %v", err)
}
