package ingress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// HeaderRequestID carries the request id both ways.
const HeaderRequestID = "X-Request-Id"

// validRequestID accepts client request ids that are safe to log, store
// and pass on: 1-128 characters of [A-Za-z0-9._:-].
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// countingBody counts the request bytes a handler reads.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// observe is the outermost middleware: request id, panic recovery, error
// answer, metrics, access log and the call record, for every request
// (matched routes, 404s and 405s alike).
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		rid := r.Header.Get(HeaderRequestID)
		if !validRequestID(rid) {
			rid = record.NewID()
		}
		c.Response().Header().Set(HeaderRequestID, rid)

		rs := s.byKey[r.Method+" "+c.Path()]
		route, method := "unmatched", r.Method
		if rs != nil {
			route = rs.path
		} else if !knownMethods[method] {
			method = "OTHER" // bounded label values for garbage methods
		}
		info := &api.RequestInfo{RequestID: rid, Route: route, Streams: s.gate}
		body := &countingBody{ReadCloser: r.Body}
		// The request's server span: the caller's traceparent continued,
		// or a new trace; Temporal's interceptor and the outbound
		// transports carry it on (docs/TRACING.md).
		ctx, span := s.deps.Tracing.StartServer(r, method+" "+route)
		r = r.WithContext(api.WithInfo(ctx, info))
		r.Body = body
		c.SetRequest(r)

		s.metrics.inFlight.Inc()
		err := s.safely(next, c)
		if err != nil {
			c.Error(err) // answers through handleError
		}
		s.metrics.inFlight.Dec()

		status := c.Response().Status
		if info.Err != nil && errors.Is(info.Err, context.Canceled) && r.Context().Err() != nil {
			status = api.StatusClientClosed
		}
		elapsed := time.Since(start)
		reqBytes := body.n
		if reqBytes == 0 && r.ContentLength > 0 {
			reqBytes = r.ContentLength
		}
		s.metrics.observe(r.Context(), method, route, status, elapsed)
		s.accessLog(r, info, rs, status, elapsed, reqBytes, c.Response().Size)
		if (rs == nil || rs.record) && !info.Recorded {
			s.emitRecord(r, info, method+" "+route, status, start, elapsed, reqBytes, c.Response().Size)
		}
		endSpan(span, status)
		return nil
	}
}

// endSpan ends the request's server span with its status (a no-op when
// the span is not recorded).
func endSpan(span trace.Span, status int) {
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	span.End()
}

// safely runs next, turning a panic into a 500 (logged with its stack).
func (s *Server) safely(next echo.HandlerFunc, c echo.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic in handler", "request_id", api.RequestID(c.Request().Context()),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = api.Errorf(http.StatusInternalServerError, "internal", "internal error")
		}
	}()
	return next(c)
}

func (s *Server) accessLog(r *http.Request, info *api.RequestInfo, rs *routeSpec, status int, elapsed time.Duration, in, out int64) {
	level := slog.LevelInfo
	switch {
	case rs != nil && !rs.record && !rs.page:
		level = slog.LevelDebug // probes (an unready 503 included) and metrics scrapes
	case status >= 500:
		level = slog.LevelError
	}
	ctx := r.Context()
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", info.RequestID),
		slog.String("method", r.Method),
		slog.String("route", info.Route),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
		slog.Int64("bytes_in", in),
		slog.Int64("bytes_out", out),
		slog.String("remote", r.RemoteAddr),
	}
	if p := info.Principal; p != nil {
		attrs = append(attrs, slog.String("tenant", p.Tenant), slog.String("key_id", p.KeyID))
	}
	if info.WorkflowID != "" {
		attrs = append(attrs, slog.String("workflow_id", info.WorkflowID))
	}
	if info.API != "" {
		attrs = append(attrs, slog.String("api", info.API), slog.String("api_version", info.APIVersion))
		if info.Consumer != "" {
			attrs = append(attrs, slog.String("consumer", info.Consumer), slog.String("consumer_app", info.ConsumerApp))
		}
	}
	if info.Upstream != "" {
		attrs = append(attrs, slog.String("upstream", info.Upstream))
	}
	if info.Err != nil && status >= 400 {
		attrs = append(attrs, slog.String("error", info.Err.Error()))
	}
	s.log.LogAttrs(ctx, level, "request", attrs...)
}

// emitRecord sends the call record of the request.
func (s *Server) emitRecord(r *http.Request, info *api.RequestInfo, target string, status int, start time.Time, elapsed time.Duration, in, out int64) {
	if s.deps.Recorder == nil {
		return
	}
	rec := record.New(calls.KindIngress, start)
	rec.SetTrace(r.Context())
	rec.Target = target
	rec.StatusCode = int32(status)
	rec.LatencyMS = float64(elapsed.Microseconds()) / 1000
	rec.ReqBytes, rec.RespBytes = in, out
	rec.Definition, rec.Version = info.Definition, info.Version
	rec.Labels = map[string]string{"request_id": info.RequestID}
	rec.API, rec.APIVersion, rec.Consumer, rec.ConsumerApp = info.API, info.APIVersion, info.Consumer, info.ConsumerApp
	if info.APIState != "" && info.APIState != "published" {
		rec.Labels[record.LabelAPIState] = info.APIState
	}
	if p := info.Principal; p != nil {
		rec.Tenant, rec.KeyID = p.Tenant, p.KeyID
		if info.WorkflowID != "" {
			rec.WorkflowID = orchestrator.WorkflowID(p.Tenant, info.WorkflowID)
		}
	}
	switch {
	case status == api.StatusClientClosed:
		rec.Outcome = record.OutcomeCancelled
	case status == http.StatusGatewayTimeout || status == http.StatusRequestTimeout:
		rec.Outcome = record.OutcomeTimeout
	case status >= 500:
		rec.Outcome = record.OutcomeError
	case status >= 400:
		rec.Outcome = record.OutcomeRejected
	default:
		rec.Outcome = record.OutcomeOK
	}
	if status >= 400 && info.Err != nil {
		e := echoError(info.Err)
		rec.ErrorClass = e.Code
		rec.ErrorMsg = record.Truncate(e.Message, record.MaxErrorMessage)
	}
	s.deps.Recorder.Emit(rec)
}

// guard is the per-route middleware: authentication, role, rate limit,
// body limit and the request deadline (or, for streams, no write deadline
// and a context that ends on shutdown).
func (s *Server) guard(rs *routeSpec) echo.MiddlewareFunc {
	maxBody := rs.maxBody
	if maxBody <= 0 {
		maxBody = s.cfg.MaxBodyBytes
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			info := api.Info(r.Context())
			if !rs.public {
				p, err := s.authenticate(r)
				if err != nil {
					return err
				}
				info.Principal = &p
				if !p.HasAny(rs.roles) {
					return api.Errorf(http.StatusForbidden, "forbidden", "this endpoint needs one of the roles: %s", roleList(rs.roles))
				}
				if err := s.rateLimit(c, p); err != nil {
					return err
				}
			}
			if r.ContentLength > maxBody {
				return &http.MaxBytesError{Limit: maxBody}
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, maxBody)

			var (
				ctx    context.Context
				cancel context.CancelFunc
			)
			if rs.streaming {
				// Streams outlive WriteTimeout; they end with the client
				// or when shutdown begins.
				if err := http.NewResponseController(c.Response()).SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return err
				}
				ctx, cancel = context.WithCancel(r.Context())
				stop := context.AfterFunc(s.streams, cancel)
				defer stop()
			} else {
				ctx, cancel = context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
			}
			defer cancel()
			if info.Principal != nil {
				ctx = auth.WithPrincipal(ctx, *info.Principal)
			}
			c.SetRequest(r.WithContext(ctx))
			return next(c)
		}
	}
}

func roleList(roles []auth.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// authenticate reads the bearer token.
func (s *Server) authenticate(r *http.Request) (auth.Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	unauthorized := func(code, msg string) error {
		e := api.Errorf(http.StatusUnauthorized, code, "%s", msg)
		e.Header = http.Header{"Www-Authenticate": {`Bearer realm="gateflow"`}}
		return e
	}
	if h == "" {
		return auth.Principal{}, unauthorized("unauthenticated", "an API key is required: Authorization: Bearer <key>")
	}
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return auth.Principal{}, unauthorized("unauthenticated", "the Authorization header must be: Bearer <key>")
	}
	p, err := s.deps.Keys.Authenticate(token)
	if err != nil {
		return auth.Principal{}, unauthorized("invalid_api_key", "the API key is not valid")
	}
	return p, nil
}

// rateLimit applies the key's and the tenant's token buckets and sets the
// RateLimit-* headers.
func (s *Server) rateLimit(c echo.Context, p auth.Principal) error {
	// A limit that is not set (zero) never means unlimited: it falls back
	// to the server's defaults (issue 10).
	keyLimit := s.cfg.KeyLimit
	if s.deps.KeyLimits != nil {
		if l, ok := s.deps.KeyLimits(p.Tenant); ok {
			keyLimit = l.Or(keyLimit)
		}
	}
	if p.RPS > 0 {
		keyLimit = ratelimit.Limit{RPS: p.RPS, Burst: p.Burst}
	}
	tenantLimit := s.cfg.TenantLimit
	if s.deps.TenantLimits != nil {
		if l, ok := s.deps.TenantLimits(p.Tenant); ok {
			tenantLimit = l.Or(tenantLimit)
		}
	}
	d := s.limiter.Allow(p.KeyID, keyLimit, p.Tenant, tenantLimit)
	if !d.Limited {
		return nil
	}
	h := c.Response().Header()
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(int((d.Reset+time.Second-1)/time.Second)))
	if d.Allowed {
		return nil
	}
	s.metrics.rateLimited.WithLabelValues(string(d.Scope)).Inc()
	retry := ratelimit.Seconds(d.RetryAfter)
	e := api.Errorf(http.StatusTooManyRequests, "rate_limited", "too many requests for this %s; retry in %d s", d.Scope, retry)
	e.Header = http.Header{"Retry-After": {strconv.Itoa(retry)}}
	return e
}
