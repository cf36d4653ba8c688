package activities_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/gateflow/gateflow/activities"
	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/record/recordtest"
)

type addIn struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

type addOut struct {
	Sum float64 `json:"sum"`
}

// newToolServer starts an MCP server (the official SDK, streamable HTTP)
// with the tools add, fail, sleep and big; guard, when set, answers
// instead of the server.
func newToolServer(t *testing.T, guard func(w http.ResponseWriter, r *http.Request) bool) *httptest.Server {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "calc", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "add", Description: "a+b"}, func(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
		return nil, addOut{Sum: in.A + in.B}, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "fail"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return nil, nil, errors.New("no such product")
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "sleep"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "late"}}}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "big"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", 64<<10)}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if guard != nil && guard(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts
}

type mcpFixture struct {
	env  *testsuite.TestActivityEnvironment
	recs *recordtest.Sink
}

// lastRecord returns the one record emitted since the previous call.
func lastRecord(t *testing.T, s *recordtest.Sink) record.Record {
	t.Helper()
	recs := s.All()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	s.Reset()
	return recs[0]
}

func newMCPFixture(t *testing.T, servers map[string]activities.MCPEndpoint, opts activities.MCPOptions) *mcpFixture {
	f := &mcpFixture{recs: &recordtest.Sink{}}
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	f.env = ts.NewTestActivityEnvironment()
	opts.HeartbeatInterval = time.Millisecond
	activities.NewMCPActivity(activities.MCPServersFunc(func(tenant, name string) (activities.MCPEndpoint, error) {
		ep, ok := servers[name]
		if !ok {
			return activities.MCPEndpoint{}, activities.ErrUnknownMCPServer
		}
		return ep, nil
	}), f.recs, opts).Register(f.env)
	return f
}

func (f *mcpFixture) call(server, tool, args string, timeout time.Duration) (activities.MCPCallOutput, error) {
	in := activities.MCPCallInput{
		StepRef: activities.StepRef{Meta: activities.RunMeta{Tenant: "acme", KeyID: "k1", Definition: "publish", Version: "1"}, StepID: "post"},
		Server:  server, Tool: tool, Timeout: timeout,
	}
	if args != "" {
		in.Arguments = []byte(args)
	}
	val, err := f.env.ExecuteActivity(activities.MCPCallActivity, in)
	if err != nil {
		return activities.MCPCallOutput{}, err
	}
	var out activities.MCPCallOutput
	err = val.Get(&out)
	return out, err
}

func TestMCPCallActivity(t *testing.T) {
	t.Setenv("GATEFLOW_TEST_MCP_TOKEN", "s3cret")
	ts := newToolServer(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("X-Token") != "s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return true
		}
		return false
	})
	f := newMCPFixture(t, map[string]activities.MCPEndpoint{
		"calc":    {Name: "calc", URL: ts.URL, Headers: map[string]string{"X-Token": "${env:GATEFLOW_TEST_MCP_TOKEN}"}},
		"nokey":   {Name: "nokey", URL: ts.URL},
		"badref":  {Name: "badref", URL: ts.URL, Headers: map[string]string{"X-Token": "${env:GATEFLOW_TEST_MCP_UNSET}"}},
		"limited": {Name: "limited", URL: ts.URL, Headers: map[string]string{"X-Token": "s3cret"}},
	}, activities.MCPOptions{MaxResponseBytes: 16 << 10})

	out, err := f.call("calc", "add", `{"a": 2, "b": 3.5}`, 0)
	if err != nil {
		t.Fatal(err)
	}
	if out.IsError || out.Structured.(map[string]any)["sum"] != 5.5 || !strings.Contains(out.Content, "5.5") || out.Attempt != 1 {
		t.Errorf("output %+v", out)
	}
	r := lastRecord(t, f.recs)
	if r.Kind != calls.KindMCP || r.Target != "calc/add" || r.Tenant != "acme" || r.KeyID != "k1" || r.StepID != "post" ||
		r.Outcome != record.OutcomeOK || r.StatusCode != 200 || r.ReqBytes == 0 || r.RespBytes == 0 || r.Attempt != 1 {
		t.Errorf("record %+v", r)
	}

	// The tool reports an error: the step gets it as output.
	out, err = f.call("calc", "fail", "", 0)
	if err != nil || !out.IsError || !strings.Contains(out.Content, "no such product") {
		t.Errorf("tool error: %+v %v", out, err)
	}
	if r := lastRecord(t, f.recs); r.Outcome != record.OutcomeError || r.ErrorClass != calls.ClassToolError {
		t.Errorf("tool error record %+v", r)
	}

	cases := []struct {
		name, server, tool, args string
		timeout                  time.Duration
		class                    string
		retryable                bool
		outcome                  record.Outcome
	}{
		{"unknown tool", "calc", "nope", "", 0, calls.ClassBadRequest, false, record.OutcomeError},
		{"arguments not an object", "calc", "add", `[1,2]`, 0, calls.ClassBadRequest, false, record.OutcomeRejected},
		{"unknown server", "ghost", "add", "", 0, calls.ClassBadRequest, false, record.OutcomeRejected},
		{"credentials refused", "nokey", "add", "", 0, calls.ClassAuth, false, record.OutcomeError},
		{"secret missing", "badref", "add", "", 0, calls.ClassInternal, false, record.OutcomeError},
		{"timeout", "calc", "sleep", "", 200 * time.Millisecond, calls.ClassTimeout, true, record.OutcomeTimeout},
		{"too large", "limited", "big", "", 0, calls.ClassTooLarge, false, record.OutcomeError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.call(tc.server, tc.tool, tc.args, tc.timeout)
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v", err)
			}
			if ae.Type() != tc.class || ae.NonRetryable() == tc.retryable {
				t.Errorf("class %s nonRetryable %v: %v", ae.Type(), ae.NonRetryable(), err)
			}
			var d activities.CallErrorDetails
			if ae.Details(&d) != nil || d.Attempt != 1 {
				t.Errorf("details %+v", d)
			}
			r := lastRecord(t, f.recs)
			if r.Outcome != tc.outcome || r.ErrorClass != tc.class || r.ErrorMsg == "" || strings.Contains(r.ErrorMsg, "s3cret") {
				t.Errorf("record %+v", r)
			}
		})
	}
}

func TestMCPCallActivityHTTPStatuses(t *testing.T) {
	var status int
	ts := newToolServer(t, func(w http.ResponseWriter, r *http.Request) bool {
		if status == 0 {
			return false
		}
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		http.Error(w, "busy", status)
		return true
	})
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	f := newMCPFixture(t, map[string]activities.MCPEndpoint{"calc": {URL: ts.URL}, "dead": {URL: deadURL}}, activities.MCPOptions{})
	cases := []struct {
		status    int
		server    string
		class     string
		retryable bool
		delay     time.Duration
	}{
		{http.StatusTooManyRequests, "calc", calls.ClassRateLimit, true, 7 * time.Second},
		{http.StatusServiceUnavailable, "calc", calls.ClassOverloaded, true, 0},
		{http.StatusInternalServerError, "calc", calls.ClassStatus, true, 0},
		{http.StatusNotFound, "calc", calls.ClassBadRequest, false, 0},
		{0, "dead", calls.ClassConnection, true, 0},
	}
	for _, tc := range cases {
		status = tc.status
		_, err := f.call(tc.server, "add", `{"a":1,"b":1}`, 2*time.Second)
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) {
			t.Fatalf("%d: error %v", tc.status, err)
		}
		if ae.Type() != tc.class || ae.NonRetryable() == tc.retryable || ae.NextRetryDelay() != tc.delay {
			t.Errorf("%d: class %s nonRetryable %v delay %s: %v", tc.status, ae.Type(), ae.NonRetryable(), ae.NextRetryDelay(), err)
		}
		r := lastRecord(t, f.recs)
		if r.StatusCode != int32(tc.status) {
			t.Errorf("%d: record status %d", tc.status, r.StatusCode)
		}
	}
}
