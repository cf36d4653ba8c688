package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/tracing"
	"github.com/gateflow/gateflow/analytics/record"
)

// Defaults of the MCP activity.
const (
	DefaultMCPTimeout = 30 * time.Second
	// DefaultMCPMaxResponseBytes caps what a tool call reads; the output
	// (text and structured content) must also stay within MaxOutputBytes.
	DefaultMCPMaxResponseBytes = 1 << 20
)

// ErrUnknownMCPServer is returned (wrapped) by MCPServers for a name the
// registry does not hold.
var ErrUnknownMCPServer = errors.New("unknown MCP server")

// MCPEndpoint is a registered MCP server as the MCP activity needs it.
type MCPEndpoint struct {
	// Name is the registry name (the call record's target is name/tool).
	Name string
	// URL is the server's streamable HTTP endpoint.
	URL string
	// Headers are sent with every request; values may hold secret
	// references (${env:NAME}, ${file:/path}) resolved at call time.
	Headers map[string]string
	// Timeout of one tool call; zero means the activity's default.
	Timeout time.Duration
}

// MCPServers resolves the servers of mcp steps. The worker wires it to the
// registry's mcp_servers; lookups happen at call time so that a reload
// applies to the next attempt.
type MCPServers interface {
	MCPServer(tenant, name string) (MCPEndpoint, error)
}

// MCPServersFunc adapts a function to MCPServers.
type MCPServersFunc func(tenant, name string) (MCPEndpoint, error)

// MCPServer calls f.
func (f MCPServersFunc) MCPServer(tenant, name string) (MCPEndpoint, error) { return f(tenant, name) }

// MCPOptions tune the MCP activity; zero values take the defaults.
type MCPOptions struct {
	// Transport sends the requests; nil means a pooled transport.
	Transport http.RoundTripper
	// Tracing wraps Transport so that each request to the server gets a
	// client span and a traceparent; nil passes the activity's trace on.
	Tracing *tracing.Tracing
	// DefaultTimeout bounds one call (connect, initialize, tool call) when
	// neither the step nor the server sets a timeout (default 30 s).
	DefaultTimeout time.Duration
	// MaxResponseBytes caps what one call reads from the server (default
	// 1 MiB, at most MaxOutputBytes); beyond, the call fails with
	// calls.ClassTooLarge.
	MaxResponseBytes int64
	// HeartbeatInterval is how often a call in flight heartbeats; zero
	// means half the heartbeat timeout (at most 5 s), or 10 s without one:
	// heartbeats are how a cancellation reaches a long tool call.
	HeartbeatInterval time.Duration
	Logger            *slog.Logger
}

// MCPActivity runs the mcp steps of orchestrations: one tool call on a
// registered MCP server (streamable HTTP, the official Go SDK's client) per
// attempt, one call record per attempt (kind mcp), failures typed with the
// error classes of this package. Retries are Temporal's.
type MCPActivity struct {
	servers   MCPServers
	rec       Recorder
	transport http.RoundTripper
	client    *mcp.Client
	timeout   time.Duration
	maxResp   int64
	hbEvery   time.Duration
	log       *slog.Logger
}

// NewMCPActivity returns the MCP activity resolving servers through
// servers and emitting one call record per attempt to rec.
func NewMCPActivity(servers MCPServers, rec Recorder, opts MCPOptions) *MCPActivity {
	if rec == nil {
		rec = NopRecorder{}
	}
	if opts.Transport == nil {
		// MCP servers are registered like services: private addresses
		// are theirs to use, the ranges no call has a reason to reach
		// (cloud metadata above all) are refused at dial time.
		opts.Transport = newTransport(dialPolicy{internalOK: true}, http.ProxyFromEnvironment)
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = DefaultMCPTimeout
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMCPMaxResponseBytes
	}
	opts.MaxResponseBytes = min(opts.MaxResponseBytes, MaxOutputBytes)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &MCPActivity{
		servers:   servers,
		rec:       rec,
		transport: opts.Tracing.Transport(opts.Transport),
		// No roots, sampling or elicitation: a step only calls a tool.
		client:  mcp.NewClient(&mcp.Implementation{Name: "gateflow", Version: "1"}, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}}),
		timeout: opts.DefaultTimeout,
		maxResp: opts.MaxResponseBytes,
		hbEvery: opts.HeartbeatInterval,
		log:     opts.Logger,
	}
}

// Register registers Call under MCPCallActivity.
func (a *MCPActivity) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.Call, activity.RegisterOptions{Name: MCPCallActivity})
}

// mcpError is a classified failure of one attempt.
type mcpError struct {
	class      string // "" when the activity was cancelled
	retryable  bool
	status     int
	retryAfter time.Duration
	msg        string
}

func (e *mcpError) Error() string { return e.msg }

// Call makes one tool call: resolve the server, connect (initialize),
// call the tool within the attempt's timeout, close. The tool's text
// content, structured result and is_error flag are the step's output.
func (a *MCPActivity) Call(ctx context.Context, in MCPCallInput) (MCPCallOutput, error) {
	start := time.Now()
	var attempt int32 = 1
	var hbTimeout time.Duration
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		attempt = info.Attempt
		hbTimeout = info.HeartbeatTimeout
	}
	rec := newCallRecord(ctx, calls.KindMCP, in.StepRef, in.Server+"/"+in.Tool, start)
	rec.ReqBytes = int64(len(in.Arguments))

	stop := heartbeatWhileCalling(ctx, a.hbEvery, hbTimeout)
	out, cerr := a.call(ctx, in, &rec)
	stop()
	rec.LatencyMS = latencyMS(start, time.Now())
	if cerr == nil {
		rec.Outcome = record.OutcomeOK
		if out.IsError {
			rec.Outcome = record.OutcomeError
			rec.SetError(calls.ClassToolError, errors.New(out.Content))
		}
		a.rec.Emit(rec)
		out.Attempt = attempt
		return out, nil
	}
	switch cerr.class {
	case "":
		rec.Outcome = record.OutcomeCancelled
	case calls.ClassTimeout:
		rec.Outcome = record.OutcomeTimeout
	case calls.ClassBadRequest:
		if cerr.status == 0 {
			rec.Outcome = record.OutcomeRejected // refused before any request
		} else {
			rec.Outcome = record.OutcomeError
		}
	default:
		rec.Outcome = record.OutcomeError
	}
	if cerr.status != 0 {
		rec.StatusCode = int32(cerr.status)
	}
	class := cerr.class
	if class == "" {
		class = calls.ClassCancelled
	}
	rec.SetError(class, cerr)
	a.rec.Emit(rec)
	a.log.Debug("mcp call failed", "step", in.StepID, "target", rec.Target, "attempt", attempt, "class", class, "status", cerr.status, "error", cerr.msg)
	if cerr.class == "" {
		return MCPCallOutput{}, ctx.Err()
	}
	return MCPCallOutput{}, temporal.NewApplicationErrorWithOptions(cerr.msg, cerr.class, temporal.ApplicationErrorOptions{
		NonRetryable:   !cerr.retryable,
		NextRetryDelay: cerr.retryAfter,
		Details:        []any{CallErrorDetails{Attempt: attempt, StatusCode: cerr.status}},
	})
}

// call performs the attempt; rec gets status and sizes.
func (a *MCPActivity) call(ctx context.Context, in MCPCallInput, rec *record.Record) (MCPCallOutput, *mcpError) {
	what := fmt.Sprintf("mcp server %q tool %q", in.Server, in.Tool)
	ep, err := a.servers.MCPServer(in.Meta.Tenant, in.Server)
	if err != nil {
		return MCPCallOutput{}, &mcpError{class: calls.ClassBadRequest, msg: fmt.Sprintf("%s: %v", what, err)}
	}
	args, err := toolArguments(in.Arguments)
	if err != nil {
		return MCPCallOutput{}, &mcpError{class: calls.ClassBadRequest, msg: fmt.Sprintf("%s: arguments: %v", what, err)}
	}
	headers := make(map[string]string, len(ep.Headers))
	keys := make([]string, 0, len(ep.Headers))
	for k := range ep.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := ResolveSecrets(ep.Headers[k])
		if err != nil {
			return MCPCallOutput{}, &mcpError{class: calls.ClassInternal, msg: fmt.Sprintf("%s: header %s: %v", what, k, err)}
		}
		headers[k] = v
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = ep.Timeout
	}
	if timeout <= 0 {
		timeout = a.timeout
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	u, err := url.Parse(ep.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return MCPCallOutput{}, &mcpError{class: calls.ClassBadRequest, msg: fmt.Sprintf("%s: the server URL is not an absolute http(s) URL", what)}
	}
	tr := &observingTransport{base: a.transport, headers: headers, origin: origin(u), max: a.maxResp}
	transport := &mcp.StreamableClientTransport{
		Endpoint: ep.URL,
		// The client timeout bounds every request the session makes,
		// including the ones that outlive the attempt (closing it).
		// Redirects stay within the server's origin, so its credentials
		// never reach another one.
		HTTPClient: &http.Client{Transport: tr, Timeout: timeout + mcpCloseWait, CheckRedirect: sameOriginRedirects},
		// Temporal retries the attempt; the transport must not retry on
		// its own behind the attempt's timeout.
		MaxRetries:           -1,
		DisableStandaloneSSE: true,
	}
	session, err := a.client.Connect(callCtx, transport, nil)
	if err != nil {
		e := a.classify(ctx, callCtx, tr, what+": connect", timeout, err)
		tr.fill(rec)
		return MCPCallOutput{}, e
	}
	res, err := session.CallTool(callCtx, &mcp.CallToolParams{Name: in.Tool, Arguments: args})
	var e *mcpError
	if err != nil {
		e = a.classify(ctx, callCtx, tr, what, timeout, err)
	}
	tr.fill(rec)
	closeSession(session)
	if e != nil {
		return MCPCallOutput{}, e
	}
	out := toolOutput(res)
	if n, over := outputSize(out); over {
		return MCPCallOutput{}, &mcpError{class: calls.ClassTooLarge, msg: fmt.Sprintf("%s: the tool's result is %d bytes once encoded, more than a call's output may hold in the workflow history (%d)",
			what, n, MaxOutputBytes)}
	}
	return out, nil
}

// mcpCloseWait bounds the wait for a session to close: a server may hold
// the close (DELETE) until a cancelled tool call ends, and the attempt's
// outcome is known by then.
const mcpCloseWait = time.Second

// closeSession closes a session, waiting at most mcpCloseWait; the close
// goes on in the background (bounded by the HTTP client's timeout).
func closeSession(s *mcp.ClientSession) {
	done := make(chan struct{})
	go func() {
		_ = s.Close()
		close(done)
	}()
	t := time.NewTimer(mcpCloseWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// toolArguments checks a step's arguments: a JSON object (or nothing).
func toolArguments(raw json.RawMessage) (any, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return map[string]any{}, nil
	}
	if !strings.HasPrefix(s, "{") || !json.Valid(raw) {
		return nil, errors.New("must be a JSON object")
	}
	return json.RawMessage(s), nil
}

// toolOutput turns a tool result into the step output.
func toolOutput(res *mcp.CallToolResult) MCPCallOutput {
	var parts []string
	for _, c := range res.Content {
		switch v := c.(type) {
		case *mcp.TextContent:
			parts = append(parts, v.Text)
		case *mcp.ImageContent:
			parts = append(parts, "[image "+v.MIMEType+"]")
		case *mcp.AudioContent:
			parts = append(parts, "[audio "+v.MIMEType+"]")
		case *mcp.ResourceLink:
			parts = append(parts, "[resource "+v.URI+"]")
		case *mcp.EmbeddedResource:
			if v.Resource != nil && v.Resource.Text != "" {
				parts = append(parts, v.Resource.Text)
			} else if v.Resource != nil {
				parts = append(parts, "[resource "+v.Resource.URI+"]")
			}
		}
	}
	return MCPCallOutput{Content: strings.Join(parts, "\n"), Structured: res.StructuredContent, IsError: res.IsError}
}

// JSON-RPC codes that say the request itself is wrong: retrying the same
// call cannot succeed.
var badRequestCodes = map[int64]bool{
	jsonrpc.CodeParseError:     true,
	jsonrpc.CodeInvalidRequest: true,
	jsonrpc.CodeMethodNotFound: true,
	jsonrpc.CodeInvalidParams:  true,
}

// classify maps a failed connect or tool call to an error class: the
// activity cancelled (no class), the attempt's deadline (timeout), the
// HTTP status the server answered, the JSON-RPC error it returned, else a
// connection problem.
func (a *MCPActivity) classify(actCtx, callCtx context.Context, tr *observingTransport, what string, timeout time.Duration, err error) *mcpError {
	status, retryAfter, tooLarge := tr.state()
	var we *jsonrpc.Error
	var na *notAllowedError
	switch {
	case errors.Is(actCtx.Err(), context.Canceled):
		return &mcpError{msg: what + ": cancelled"}
	case errors.As(err, &na):
		return &mcpError{class: calls.ClassNotAllowed, status: status, msg: fmt.Sprintf("%s: refused: %v", what, na.err)}
	case tooLarge:
		return &mcpError{class: calls.ClassTooLarge, status: status, msg: fmt.Sprintf("%s: answer larger than %d bytes", what, a.maxResp)}
	case callCtx.Err() != nil:
		return &mcpError{class: calls.ClassTimeout, retryable: true, status: status, msg: fmt.Sprintf("%s: no answer within %s", what, timeout)}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &mcpError{class: calls.ClassAuth, status: status, msg: fmt.Sprintf("%s: HTTP %d: credentials refused", what, status)}
	case status == http.StatusTooManyRequests:
		return &mcpError{class: calls.ClassRateLimit, retryable: true, status: status, retryAfter: retryAfter, msg: fmt.Sprintf("%s: HTTP 429: rate limited", what)}
	case status == http.StatusServiceUnavailable:
		return &mcpError{class: calls.ClassOverloaded, retryable: true, status: status, retryAfter: retryAfter, msg: fmt.Sprintf("%s: HTTP 503: unavailable", what)}
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return &mcpError{class: calls.ClassTimeout, retryable: true, status: status, msg: fmt.Sprintf("%s: HTTP %d", what, status)}
	case status >= 500:
		return &mcpError{class: calls.ClassStatus, retryable: true, status: status, msg: fmt.Sprintf("%s: HTTP %d", what, status)}
	case status >= 400:
		return &mcpError{class: calls.ClassBadRequest, status: status, msg: fmt.Sprintf("%s: HTTP %d: %s", what, status, calls.RedactAddresses(err.Error()))}
	case errors.As(err, &we) && badRequestCodes[we.Code]:
		return &mcpError{class: calls.ClassBadRequest, status: status, msg: fmt.Sprintf("%s: %s (JSON-RPC %d)", what, we.Message, we.Code)}
	case status == 0:
		// No answer at all: the SDK reports a failed send as a transport
		// rejection, whatever the network error was.
		// The message never names the server's address (see
		// calls.DescribeNetError).
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return &mcpError{class: calls.ClassTimeout, retryable: true, msg: fmt.Sprintf("%s: %s", what, calls.DescribeNetError(err))}
		}
		return &mcpError{class: calls.ClassConnection, retryable: true, msg: fmt.Sprintf("%s: %s", what, calls.DescribeNetError(err))}
	case errors.As(err, &we):
		return &mcpError{class: calls.ClassStatus, retryable: true, status: status, msg: fmt.Sprintf("%s: %s (JSON-RPC %d)", what, we.Message, we.Code)}
	}
	return &mcpError{class: calls.ClassConnection, retryable: true, status: status, msg: fmt.Sprintf("%s: %s", what, calls.RedactAddresses(err.Error()))}
}

// observingTransport adds the server's headers to every request of one
// call to the server's origin (and to no other) and notes what the classification and the record need: the last
// status (with Retry-After), bytes both ways, and whether the
// answer went past the size cap.
type observingTransport struct {
	base    http.RoundTripper
	headers map[string]string
	origin  string // the only origin headers are sent to
	max     int64

	mu         sync.Mutex
	status     int // of the last response
	retryAfter time.Duration
	reqBytes   int64
	respBytes  int64
	tooLarge   bool
}

func (t *observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 && origin(req.URL) == t.origin {
		req = req.Clone(req.Context())
		for k, v := range t.headers {
			req.Header.Set(k, v)
		}
	}
	resp, err := t.base.RoundTrip(req)
	t.mu.Lock()
	defer t.mu.Unlock()
	if req.ContentLength > 0 {
		t.reqBytes += req.ContentLength
	}
	if err != nil {
		return nil, err
	}
	t.status = resp.StatusCode
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			t.retryAfter = time.Duration(secs) * time.Second
		} else if at, err := http.ParseTime(ra); err == nil {
			t.retryAfter = max(time.Until(at), 0)
		}
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, t: t}
	return resp, nil
}

func (t *observingTransport) state() (status int, retryAfter time.Duration, tooLarge bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status, t.retryAfter, t.tooLarge
}

// fill copies status and sizes into the call record.
func (t *observingTransport) fill(rec *record.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec.StatusCode = int32(t.status)
	if t.reqBytes > 0 {
		rec.ReqBytes = t.reqBytes
	}
	rec.RespBytes = t.respBytes
}

// errAnswerTooLarge ends a response body past the cap.
var errAnswerTooLarge = errors.New("MCP server answer too large")

// cappedBody counts a response body against the call's cap.
type cappedBody struct {
	io.ReadCloser
	t *observingTransport
}

func (b *cappedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.t.mu.Lock()
	b.t.respBytes += int64(n)
	over := b.t.respBytes > b.t.max
	if over {
		b.t.tooLarge = true
	}
	b.t.mu.Unlock()
	if over {
		return n, errAnswerTooLarge
	}
	return n, err
}
