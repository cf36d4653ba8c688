package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/activities/tracing"
	"github.com/gateflow/gateflow/analytics/record"
)

// Defaults of the HTTP activity.
const (
	DefaultHTTPTimeout = 30 * time.Second
	// DefaultMaxResponseBytes caps a response body: half of MaxOutputBytes,
	// so that a body that grows when encoded (escaped text) still fits.
	DefaultMaxResponseBytes = 1 << 20
	// maxRedirects bounds redirects; each hop is checked like the first URL.
	maxRedirects = 5
	// errorBodySnippet is how much of an unexpected response body goes into
	// the error message.
	errorBodySnippet = 256
)

// HTTPOptions tunes the HTTP activity; zero values take the defaults.
type HTTPOptions struct {
	// Transport sends the requests; nil means a pooled transport suited to
	// many concurrent calls to few hosts.
	Transport http.RoundTripper
	// MaxResponseBytes caps a response body; a larger one fails the call
	// with calls.ClassTooLarge (not retried).
	MaxResponseBytes int64
	// DefaultTimeout bounds one attempt when neither the step nor the
	// service sets a timeout.
	DefaultTimeout time.Duration
	// HeartbeatInterval is how often a call in flight heartbeats; zero means
	// half the activity's heartbeat timeout (at most 5 s). Heartbeats are
	// only sent when the workflow set a heartbeat timeout.
	HeartbeatInterval time.Duration
	// Callbacks issues the callback URLs of http steps with a callback
	// block; nil fails such steps (callbacks are not configured).
	Callbacks CallbackIssuer
	Logger    *slog.Logger
	// Tracing wraps the transports so that each request gets a client
	// span and a traceparent; nil passes the activity's trace on without
	// spans of its own.
	Tracing *tracing.Tracing
}

// HTTPActivity calls registered microservices (and allowed URLs) for http
// steps. Register its Call method under HTTPCallActivity.
type HTTPActivity struct {
	services Services
	rec      Recorder
	// serviceClient calls registered services; urlClient calls URLs.
	serviceClient *http.Client
	urlClient     *http.Client
	maxResp       int64
	timeout       time.Duration
	hbEvery       time.Duration
	callbacks     CallbackIssuer
	log           *slog.Logger
}

// NewHTTPActivity returns the HTTP activity resolving targets through
// services and emitting one call record per attempt to rec.
func NewHTTPActivity(services Services, rec Recorder, opts HTTPOptions) *HTTPActivity {
	if rec == nil {
		rec = NopRecorder{}
	}
	a := &HTTPActivity{services: services}
	serviceTransport, urlTransport := opts.Transport, opts.Transport
	if opts.Transport == nil {
		// Registered services may live on private addresses; only the
		// ranges no call has a reason to reach (cloud metadata above all)
		// are refused. The proxy of the environment applies to them.
		serviceTransport = newTransport(dialPolicy{internalOK: true}, http.ProxyFromEnvironment)
		// Calls to URLs get their own connection pool, whose dialer refuses
		// non-public addresses the tenant did not allow: a name on the
		// allow-list must not lead into the private network (DNS
		// rebinding), and a pooled connection opened for a registered
		// service must not be reused for a URL call. No proxy: it would
		// hide the address from the check.
		urlTransport = newTransport(dialPolicy{allow: a.allowAddr}, nil)
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	opts.MaxResponseBytes = min(opts.MaxResponseBytes, MaxOutputBytes)
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = DefaultHTTPTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a.rec = rec
	a.maxResp = opts.MaxResponseBytes
	a.timeout = opts.DefaultTimeout
	a.hbEvery = opts.HeartbeatInterval
	a.callbacks = opts.Callbacks
	a.log = opts.Logger
	a.serviceClient = &http.Client{Transport: opts.Tracing.Transport(serviceTransport), CheckRedirect: sameOriginRedirects}
	a.urlClient = &http.Client{Transport: opts.Tracing.Transport(urlTransport), CheckRedirect: a.checkURLRedirect}
	return a
}

// allowAddr lets a URL call reach a loopback or internal address only when
// the tenant may call that address itself (the dev tenant's loopback, an
// address listed in allowed_hosts).
func (a *HTTPActivity) allowAddr(ctx context.Context, ip netip.Addr, port string) error {
	rc, _ := ctx.Value(redirectKey{}).(redirectCheck)
	return a.services.AllowURL(rc.tenant, "http://"+net.JoinHostPort(ip.String(), port)+"/")
}

// redirectCheck carries what checkURLRedirect needs from the call.
type redirectCheck struct {
	tenant string
	// stepHeaders are the headers the step set; they may carry secrets
	// built from input, so they do not follow a redirect to another
	// origin.
	stepHeaders []string
}

type redirectKey struct{}

// checkURLRedirect refuses redirect loops and hops to hosts the tenant may
// not reach (a redirect must not bypass the allow-list; the dialer checks
// the address again), and drops the step's headers and the Referer (which
// holds the first URL's path and query) on a hop to another origin
// (net/http already drops Authorization and Cookie there).
func (a *HTTPActivity) checkURLRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	rc, _ := req.Context().Value(redirectKey{}).(redirectCheck)
	if err := a.services.AllowURL(rc.tenant, req.URL.String()); err != nil {
		return &notAllowedError{err: err}
	}
	if origin(req.URL) != origin(via[0].URL) {
		for _, h := range rc.stepHeaders {
			req.Header.Del(h)
		}
		req.Header.Del("Referer")
	}
	return nil
}

type notAllowedError struct{ err error }

func (e *notAllowedError) Error() string { return e.err.Error() }
func (e *notAllowedError) Unwrap() error { return e.err }

// callError is a classified failure of one attempt.
type callError struct {
	class     string
	retryable bool
	status    int
	msg       string
	cause     error
	// detail is logged, never returned: e.g. the network error with its
	// addresses.
	detail string
}

func (e *callError) Error() string { return e.msg }

// Call performs one attempt of an http step: resolve the target, send the
// request within the attempt's deadline, read at most the response cap,
// check the status, and classify failures into the error classes of this
// package as Temporal application errors. One call record per attempt.
func (a *HTTPActivity) Call(ctx context.Context, in HTTPCallInput) (HTTPCallOutput, error) {
	start := time.Now()
	var attempt int32 = 1
	var hbTimeout time.Duration
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		attempt = info.Attempt
		hbTimeout = info.HeartbeatTimeout
	}
	target := in.Service
	rec := newCallRecord(ctx, calls.KindHTTP, in.StepRef, target, start)
	method := strings.ToUpper(in.Method)
	if method == "" {
		method = http.MethodGet
	}
	if rec.Labels == nil {
		rec.Labels = map[string]string{}
	}
	rec.Labels["method"] = method
	rec.ReqBytes = int64(len(in.Body))

	if in.Callback != nil {
		rec.Labels["callback"] = "pending"
		var cerr *callError
		if in, cerr = a.withCallback(ctx, in, target, attempt); cerr != nil {
			rec.Outcome, rec.LatencyMS = record.OutcomeError, latencyMS(start, time.Now())
			rec.SetError(cerr.class, cerr)
			a.rec.Emit(rec)
			return HTTPCallOutput{}, temporal.NewApplicationErrorWithOptions(cerr.msg, cerr.class, temporal.ApplicationErrorOptions{
				NonRetryable: !cerr.retryable, Details: []any{CallErrorDetails{Attempt: attempt}},
			})
		}
	}
	out, cerr := a.do(ctx, in, method, &rec, hbTimeout)
	end := time.Now()
	rec.LatencyMS = latencyMS(start, end)
	if cerr == nil {
		rec.Outcome = record.OutcomeOK
		a.rec.Emit(rec)
		if in.Callback != nil {
			// The service accepted the call; it completes the step
			// through the callback URL (activities/callback).
			return HTTPCallOutput{}, activity.ErrResultPending
		}
		out.Attempt = attempt
		return out, nil
	}
	switch {
	case cerr.class == "" && ctx.Err() != nil:
		rec.Outcome = record.OutcomeCancelled
	case cerr.class == calls.ClassTimeout:
		rec.Outcome = record.OutcomeTimeout
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
	a.log.Debug("http call failed", "step", in.StepID, "target", rec.Target, "attempt", attempt,
		"class", class, "status", cerr.status, "error", cerr.msg, "detail", cerr.detail)
	if cerr.class == "" {
		// The activity was cancelled: report the context error so that
		// Temporal records a cancellation, not a failure.
		return HTTPCallOutput{}, ctx.Err()
	}
	return HTTPCallOutput{}, temporal.NewApplicationErrorWithOptions(cerr.msg, cerr.class, temporal.ApplicationErrorOptions{
		NonRetryable: !cerr.retryable,
		Cause:        cerr.cause,
		Details:      []any{CallErrorDetails{Attempt: attempt, StatusCode: cerr.status}},
	})
}

// withCallback issues the attempt's callback URL and adds it to the
// request: header Gateflow-Callback-Url (and -Expires), and the body field
// the step names.
func (a *HTTPActivity) withCallback(ctx context.Context, in HTTPCallInput, target string, attempt int32) (HTTPCallInput, *callError) {
	if a.callbacks == nil {
		return in, &callError{class: calls.ClassInternal, msg: "this step asks for a callback, but callbacks are not configured on this worker (gateflow.yaml callbacks)"}
	}
	if !activity.IsActivity(ctx) {
		return in, &callError{class: calls.ClassInternal, msg: "a callback needs a Temporal activity"}
	}
	info := activity.GetInfo(ctx)
	if target == "" {
		target = in.URL
		if u, err := url.Parse(in.URL); err == nil {
			target = u.Host
		}
	}
	u, exp, err := a.callbacks.Issue(CallbackTicket{
		Tenant: in.Meta.Tenant, WorkflowID: info.WorkflowExecution.ID, StepID: in.StepID, Target: target,
		Attempt: attempt, TaskToken: info.TaskToken, TTL: in.Callback.TTL, Trigger: in.Meta.Labels[calls.LabelTrigger],
	})
	if err != nil {
		return in, &callError{class: calls.ClassInternal, retryable: true, msg: "issue the callback URL: " + err.Error()}
	}
	in.gateway = map[string]string{
		HeaderCallbackURL:     u,
		HeaderCallbackExpires: exp.UTC().Format(time.RFC3339),
	}
	if f := in.Callback.BodyField; f != "" {
		var body map[string]any
		if err := json.Unmarshal(in.Body, &body); err != nil || body == nil {
			return in, &callError{class: calls.ClassBadRequest, msg: "callback.body_field needs a JSON object body"}
		}
		body[f] = u
		b, err := json.Marshal(body)
		if err != nil {
			return in, &callError{class: calls.ClassBadRequest, msg: "encode the body with the callback URL: " + err.Error()}
		}
		in.Body = b
	}
	return in, nil
}

// do sends the request and reads the response; rec gets target, status and
// sizes as they become known.
func (a *HTTPActivity) do(ctx context.Context, in HTTPCallInput, method string, rec *record.Record, hbTimeout time.Duration) (HTTPCallOutput, *callError) {
	tenant := in.Meta.Tenant
	var (
		rawURL  string
		headers map[string]string
		timeout = in.Timeout
		maxResp = a.maxResp
		client  = a.urlClient
	)
	if err := checkPath(in.Path); err != nil {
		return HTTPCallOutput{}, &callError{class: calls.ClassBadRequest, msg: err.Error()}
	}
	if in.Service != "" {
		ep, err := a.services.Resolve(tenant, in.Service)
		if err != nil {
			return HTTPCallOutput{}, &callError{class: calls.ClassBadRequest, msg: fmt.Sprintf("service %q: %v", in.Service, err)}
		}
		rawURL = joinURL(ep.BaseURL, in.Path)
		headers = ep.Headers
		if timeout <= 0 {
			timeout = ep.Timeout
		}
		if ep.MaxResponseBytes > 0 {
			maxResp = min(ep.MaxResponseBytes, MaxOutputBytes)
		}
		client = a.serviceClient
	} else {
		rawURL = joinURL(in.URL, in.Path)
	}
	if timeout <= 0 {
		timeout = a.timeout
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return HTTPCallOutput{}, &callError{class: calls.ClassBadRequest, msg: fmt.Sprintf("invalid url %q: want an absolute http(s) URL", redactURL(rawURL))}
	}
	if in.Service == "" {
		rec.Target = u.Host
		if err := a.services.AllowURL(tenant, rawURL); err != nil {
			return HTTPCallOutput{}, &callError{class: calls.ClassNotAllowed, msg: fmt.Sprintf("url host %s: %v", u.Host, err)}
		}
	}
	if len(in.Query) > 0 {
		q := u.Query()
		for k, v := range in.Query {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	// Messages name a service and the step's path, never the service's
	// base URL (operator configuration, internal addresses).
	shown := u.EscapedPath()
	if in.Service != "" {
		shown = in.Path
	}
	what := fmt.Sprintf("%s %s%s", method, rec.Target, shown)

	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	callCtx = context.WithValue(callCtx, redirectKey{}, redirectCheck{tenant: tenant, stepHeaders: sortedKeys(in.Headers)})
	var body io.Reader
	if len(in.Body) > 0 {
		body = bytes.NewReader(in.Body)
	}
	req, err := http.NewRequestWithContext(callCtx, method, u.String(), body)
	if err != nil {
		return HTTPCallOutput{}, &callError{class: calls.ClassBadRequest, msg: fmt.Sprintf("%s: build request: %v", what, err)}
	}
	// Service headers first (secret references resolved now, never
	// logged), then the step's own headers, taken literally.
	for _, k := range sortedKeys(headers) {
		v, err := ResolveSecrets(headers[k])
		if err != nil {
			return HTTPCallOutput{}, &callError{class: calls.ClassInternal, msg: fmt.Sprintf("service %q header %s: %v", in.Service, k, err)}
		}
		req.Header.Set(k, v)
	}
	// A step's headers add to the service's, never replace them: a
	// definition must not swap the service's credentials for its own or
	// claim another identity.
	for k, v := range in.Headers {
		if calls.IsReservedHeader(k) {
			return HTTPCallOutput{}, &callError{class: calls.ClassBadRequest, msg: fmt.Sprintf("%s: header %s is set by the gateway; a step may not set it", what, k)}
		}
		if hasHeader(headers, k) {
			return HTTPCallOutput{}, &callError{class: calls.ClassBadRequest, msg: fmt.Sprintf("%s: header %s is configured for service %q; a step may not replace it", what, k, in.Service)}
		}
		req.Header.Set(k, v)
	}
	for _, k := range sortedKeys(in.gateway) {
		req.Header.Set(k, in.gateway[k])
	}
	if in.Service != "" {
		// Who the call is for, which services can trust: no step can set
		// these (above, and refused at validation).
		req.Header.Set(calls.HeaderTenant, tenant)
		if u := in.Meta.SubmittedBy; u != "" && u != in.Meta.KeyID {
			req.Header.Set(calls.HeaderUser, u)
		}
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json, */*;q=0.5")
	}

	stopHB := heartbeatWhileCalling(ctx, a.hbEvery, hbTimeout)
	resp, err := client.Do(req)
	if err != nil {
		stopHB()
		return HTTPCallOutput{}, classifyTransport(ctx, callCtx, what, timeout, err)
	}
	data, tooLarge, err := readCapped(resp.Body, maxResp)
	_ = resp.Body.Close()
	stopHB()
	rec.StatusCode = int32(resp.StatusCode)
	rec.RespBytes = int64(len(data))
	if tooLarge {
		return HTTPCallOutput{}, &callError{class: calls.ClassTooLarge, status: resp.StatusCode,
			msg: fmt.Sprintf("%s: response larger than %d bytes", what, maxResp)}
	}
	if err != nil {
		return HTTPCallOutput{}, classifyTransport(ctx, callCtx, what+": read response", timeout, err)
	}
	if !statusOK(resp.StatusCode, in.SuccessStatuses) {
		return HTTPCallOutput{}, classifyStatus(what, resp.StatusCode, data, in.NonRetryableStatuses)
	}
	out := HTTPCallOutput{
		Status:  resp.StatusCode,
		Headers: flattenHeaders(resp.Header),
		Body:    decodeBody(data),
	}
	if n, over := outputSize(out); over {
		return HTTPCallOutput{}, &callError{class: calls.ClassTooLarge, status: resp.StatusCode,
			msg: fmt.Sprintf("%s: response of %d bytes is %d bytes once encoded, more than a call's output may hold in the workflow history (%d)",
				what, len(data), n, MaxOutputBytes)}
	}
	return out, nil
}

// classifyTransport maps an error of the round trip to an error class:
// the activity being cancelled (no class), a deadline (timeout), a refused
// redirect (not_allowed), else a connection problem (retried).
func classifyTransport(actCtx, callCtx context.Context, what string, timeout time.Duration, err error) *callError {
	var na *notAllowedError
	switch {
	case errors.As(err, &na):
		return &callError{class: calls.ClassNotAllowed, msg: fmt.Sprintf("%s: refused: %v", what, na.err)}
	case errors.Is(actCtx.Err(), context.Canceled):
		return &callError{msg: fmt.Sprintf("%s: cancelled", what)}
	case errors.Is(callCtx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return &callError{class: calls.ClassTimeout, retryable: true, msg: fmt.Sprintf("%s: no response within %s", what, timeout)}
	default:
		// The message names the step's target, never the address it
		// resolved to (the log has the whole error).
		return &callError{class: calls.ClassConnection, retryable: true, msg: fmt.Sprintf("%s: %s", what, calls.DescribeNetError(err)),
			detail: unwrapURLError(err).Error()}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// full URL (possibly with query secrets).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// classifyStatus maps an unexpected status to an error class. Statuses the
// step lists as non-retryable stop at once; so do 401/403 (auth). 429 and
// 503/529 are retried as rate_limit/overloaded, everything else as status.
func classifyStatus(what string, status int, body []byte, nonRetryable []int) *callError {
	e := &callError{status: status, retryable: true,
		msg: fmt.Sprintf("%s: status %d", what, status)}
	if s := snippet(body); s != "" {
		e.msg += ": " + s
	}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		e.class, e.retryable = calls.ClassAuth, false
	case http.StatusTooManyRequests:
		e.class = calls.ClassRateLimit
	case http.StatusServiceUnavailable, 529:
		e.class = calls.ClassOverloaded
	default:
		e.class = calls.ClassStatus
	}
	if slices.Contains(nonRetryable, status) {
		e.retryable = false
	}
	return e
}

func statusOK(status int, success []int) bool {
	if len(success) == 0 {
		return status >= 200 && status < 300
	}
	return slices.Contains(success, status)
}

// readCapped reads at most limit bytes; tooLarge reports a longer body.
func readCapped(r io.Reader, limit int64) (data []byte, tooLarge bool, err error) {
	data, err = io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(data)) > limit {
		return data[:limit], true, nil
	}
	return data, false, err
}

// decodeBody returns the JSON value of data, or data as a string when it
// is not JSON, or nil when empty.
func decodeBody(data []byte) any {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err == nil {
		return v
	}
	return string(data)
}

func flattenHeaders(h http.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) > 0 {
			out[strings.ToLower(k)] = v[0]
		}
	}
	return out
}

func snippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > errorBodySnippet {
		s = record.Truncate(s, errorBodySnippet) + "…"
	}
	return s
}

// joinURL appends path to base with exactly one slash between them.
func joinURL(base, path string) string {
	if path == "" {
		return base
	}
	if base == "" {
		return path
	}
	return strings.TrimRight(base, "/") + "/" + strings.TrimLeft(path, "/")
}

// redactURL drops the query and user info of a URL for messages.
func redactURL(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if i := strings.Index(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			raw = raw[:j+3] + raw[i+1:]
		}
	}
	return raw
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// hasHeader reports whether h names header k, in any case.
func hasHeader(h map[string]string, k string) bool {
	for name := range h {
		if strings.EqualFold(name, k) {
			return true
		}
	}
	return false
}
