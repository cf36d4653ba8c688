package ingress

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// serve runs the harness's server on a loopback port until the test ends.
func (h *harness) serve() string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, ln) }()
	h.t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// openEvents opens the SSE stream of id as key; the caller closes the body.
func openEvents(t *testing.T, base, key, id string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/workflows/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testKeys[key].token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// gaugeValue reads a gauge of the harness's registry.
func (h *harness) gaugeValue(name string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var m *dto.Metric = mf.GetMetric()[0]
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// eventually polls cond for up to 20 s (no timing assertion: only a bound
// on how long the test waits for what must happen).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStreamCaps: a key and a tenant hold at most so many streams; beyond
// is 429 too_many_streams in the one error shape with Retry-After, and a
// closed stream frees its slot (issue 10 item 7).
func TestStreamCaps(t *testing.T) {
	h := newHarness(t, func(_ *Deps, c *Config) { c.StreamsPerKey, c.StreamsPerTenant = 2, 3 })
	acme := h.start("submitter", `{"definition":"order"}`).ID
	other := h.start("other", `{"definition":"order"}`).ID
	h.fake.watch = []orchestrator.Status{{ID: acme, Status: workflows.Status{State: workflows.RunRunning, Seq: 1}}}
	h.fake.watchBlock = true
	base := h.serve()

	var open []*http.Response
	defer func() {
		for _, r := range open {
			r.Body.Close()
		}
	}()
	admit := func(key, id string) {
		t.Helper()
		r := openEvents(t, base, key, id)
		if r.StatusCode != 200 {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			t.Fatalf("%s: %d %s", key, r.StatusCode, b)
		}
		open = append(open, r)
	}
	refuse := func(key, id, scope string) {
		t.Helper()
		r := openEvents(t, base, key, id)
		defer r.Body.Close()
		var body api.Body
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Error == nil {
			t.Fatalf("%s: %d, not the error shape: %v", key, r.StatusCode, err)
		}
		if r.StatusCode != 429 || body.Error.Code != "too_many_streams" || r.Header.Get("Retry-After") == "" ||
			!strings.Contains(body.Error.Message, scope) || body.Error.Details == nil {
			t.Fatalf("%s: %d %+v Retry-After=%q, want 429 too_many_streams for the %s", key, r.StatusCode, body.Error, r.Header.Get("Retry-After"), scope)
		}
	}
	admit("submitter", acme)
	admit("submitter", acme)
	refuse("submitter", acme, "key")
	admit("admin", acme) // the tenant's third
	refuse("approver", acme, "tenant")
	admit("other", other) // another tenant is not affected
	if got := h.gaugeValue("gateflow_ingress_event_streams"); got != 4 {
		t.Errorf("open streams gauge %v, want 4", got)
	}
	// A closed stream frees the slot of its key and tenant.
	open[0].Body.Close()
	eventually(t, "the closed stream's slot is released", func() bool {
		k, _ := h.srv.gate.open("acme", "a00000000001")
		return k == 1
	})
	admit("submitter", acme)
}

// TestStreamMaxAge: a stream that lasted MaxStreamAge ends with a shutdown
// event whose reason is max_age, and frees its slot.
func TestStreamMaxAge(t *testing.T) {
	h := newHarness(t, func(_ *Deps, c *Config) { c.MaxStreamAge = 300 * time.Millisecond })
	id := h.start("submitter", `{"definition":"order"}`).ID
	h.fake.watch = []orchestrator.Status{{ID: id, Status: workflows.Status{State: workflows.RunRunning, Seq: 1}}}
	h.fake.watchBlock = true
	base := h.serve()

	r := openEvents(t, base, "submitter", id)
	defer r.Body.Close()
	all, err := io.ReadAll(r.Body) // ends when the server ends the stream
	if err != nil {
		t.Fatal(err)
	}
	events := string(all)
	i := strings.LastIndex(events, "event: shutdown\ndata: ")
	if i < 0 {
		t.Fatalf("no shutdown event: %q", events)
	}
	var ev shutdownEvent
	line, _, _ := strings.Cut(events[i+len("event: shutdown\ndata: "):], "\n")
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Reason != "max_age" || !strings.Contains(ev.Message, "300ms") {
		t.Fatalf("shutdown event %q: %+v %v", line, ev, err)
	}
	eventually(t, "the slot is released", func() bool { k, _ := h.srv.gate.open("acme", "a00000000001"); return k == 0 })
}

// TestStreamWriteDeadline: a client that stops reading does not pin the
// handler: once the connection's buffers are full, the write deadline
// ends the stream and frees its slot.
func TestStreamWriteDeadline(t *testing.T) {
	h := newHarness(t, func(_ *Deps, c *Config) {
		c.StreamWriteTimeout = 200 * time.Millisecond
		c.MaxStreamAge = time.Hour // only the write deadline can end it
	})
	id := h.start("submitter", `{"definition":"order"}`).ID
	big := json.RawMessage(`"` + strings.Repeat("x", 64<<10) + `"`)
	for i := range 2000 { // ~128 MiB if it were all read
		h.fake.watch = append(h.fake.watch, orchestrator.Status{ID: id, Status: workflows.Status{State: workflows.RunRunning, Seq: int64(i + 1), Output: big}})
	}
	h.fake.watchBlock = true
	base := h.serve()

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	fmt.Fprintf(conn, "GET /v1/workflows/%s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", id, testKeys["submitter"].token)
	// Read the status line, then stop reading.
	if line, err := bufio.NewReaderSize(conn, 16).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q %v", line, err)
	}
	eventually(t, "the stalled stream is cut and its slot released", func() bool {
		k, _ := h.srv.gate.open("acme", "a00000000001")
		return k == 0 && h.gaugeValue("gateflow_ingress_event_streams") == 0
	})
}
