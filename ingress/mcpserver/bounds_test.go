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
	ping := func(key string) (int, []byte) {
		resp, b := e.in.Do(t, key, "POST", "/mcp", `{"jsonrpc":"2.0","id":7,"method":"ping"}`)
		return resp.StatusCode, b
	}
	deadline := time.Now().Add(30 * time.Second)
	for refused := false; !refused; {
		if time.Now().After(deadline) {
			t.Fatal("a second request was never refused while a call held the key's slot")
		}
		done := make(chan error, 1)
		go func() {
			// "order" keeps running: the call holds its request for
			// wait_seconds.
			_, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "start_order",
				Arguments: map[string]any{"input": map[string]any{"amount": 1}, "wait_seconds": 2}})
			done <- err
		}()
		for waiting := true; waiting; {
			select {
			case err := <-done:
				// Over, or itself refused because a ping held the slot
				// at that moment: try again.
				if err != nil && !strings.Contains(err.Error(), "Too Many Requests") {
					t.Fatal(err)
				}
				waiting = false
			default:
				code, b := ping("submitter")
				if code == 429 {
					var eb api.Body
					if err := json.Unmarshal(b, &eb); err != nil || eb.Error == nil || eb.Error.Code != "too_many_streams" {
						t.Fatalf("429 without the error shape: %s", b)
					}
					refused = true
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					waiting = false
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	// Another key of the tenant is not affected.
	if code, b := ping("approver"); code == 429 {
		t.Errorf("approver refused: %s", b)
	}
}
