package mcpserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gateflow/gateflow/ingress"
	"github.com/gateflow/gateflow/ingress/api"
)

// TestBodyChecked: /mcp checks its body like every JSON route before the
// SDK sees it: nesting depth, syntax (issue 10 item 9), in the one error
// shape.
func TestBodyChecked(t *testing.T) {
	e := newEnv(t)
	deep := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"workflow_status","arguments":{"id":` +
		strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}}`
	for name, body := range map[string]string{"deep": deep, "malformed": `{"jsonrpc":"2.0",`, "empty": " "} {
		resp, b := e.in.Do(t, "submitter", "POST", "/mcp", body)
		var eb api.Body
		if err := json.Unmarshal(b, &eb); err != nil || resp.StatusCode != 400 || eb.Error == nil || eb.Error.Code != "invalid_json" || eb.Error.Details == nil {
			t.Errorf("%s: %d %s", name, resp.StatusCode, b)
		}
	}
}

// TestMCPStreamCap: an MCP request is a long-lived response: a key holds
// at most StreamsPerKey at once (429 too_many_streams beyond).
func TestMCPStreamCap(t *testing.T) {
	e := newEnvWith(t, func(c *ingress.Config) { c.StreamsPerKey = 1 })
	s := e.connect(t, "submitter")
	done := make(chan error, 1)
	go func() {
		// "order" keeps running: the call holds its request for wait_seconds.
		_, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "start_order", Arguments: map[string]any{"input": map[string]any{"amount": 1}, "wait_seconds": 3}})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, b := e.in.Do(t, "submitter", "POST", "/mcp", `{"jsonrpc":"2.0","id":7,"method":"ping"}`)
		if resp.StatusCode == 429 {
			var eb api.Body
			if err := json.Unmarshal(b, &eb); err != nil || eb.Error == nil || eb.Error.Code != "too_many_streams" || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("429 without the error shape: %s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never refused while a call was in flight: %d %s", resp.StatusCode, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Another key of the tenant is not affected.
	if resp, b := e.in.Do(t, "approver", "POST", "/mcp", `{"jsonrpc":"2.0","id":7,"method":"ping"}`); resp.StatusCode == 429 {
		t.Errorf("approver refused: %s", b)
	}
}
