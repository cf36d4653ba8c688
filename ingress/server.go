// Package ingress is Gateflow's REST API server (Echo v4): the versioned
// /v1 routes that submit, inspect, watch, cancel and decide orchestrations
// and manage definitions, and the gateway duties in front of them (API
// keys, roles, tenant isolation, rate limits, body and JSON limits, one
// error shape, request ids, access logs, metrics, call records, OpenAPI).
//
// Echo stays inside this package: handlers parse, call one function of the
// orchestrator, and map the result. Other packages add endpoints as
// api.Group values of plain net/http handlers through Server.Mount.
package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gateflow/gateflow/activities/tracing"
	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/httperr"
	"github.com/gateflow/gateflow/ingress/ratelimit"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// Orchestrator is what the handlers call; *orchestrator.Orchestrator
// implements it (tests use a fake).
type Orchestrator interface {
	Start(ctx context.Context, c orchestrator.Caller, req orchestrator.StartRequest) (orchestrator.StartResult, error)
	Status(ctx context.Context, c orchestrator.Caller, id string) (orchestrator.Status, error)
	List(ctx context.Context, c orchestrator.Caller, f orchestrator.ListFilter) (orchestrator.Page, error)
	Watch(ctx context.Context, c orchestrator.Caller, id string) (<-chan orchestrator.Update, error)
	Cancel(ctx context.Context, c orchestrator.Caller, id string) error
	Input(ctx context.Context, c orchestrator.Caller, id string) (orchestrator.RunInput, error)
	Decide(ctx context.Context, c orchestrator.Caller, id string, req orchestrator.DecideRequest) (workflows.DecisionResult, error)
	PendingApprovals(ctx context.Context, c orchestrator.Caller) (orchestrator.Approvals, error)
	ListDefinitions(ctx context.Context, c orchestrator.Caller) ([]orchestrator.DefinitionInfo, error)
	GetDefinition(ctx context.Context, c orchestrator.Caller, name, version string) (definition.Definition, error)
	PublishDefinition(ctx context.Context, c orchestrator.Caller, name, version string, def definition.Definition) (orchestrator.DefinitionInfo, error)
}

// Authenticator checks bearer tokens; *auth.Store implements it.
type Authenticator interface {
	Authenticate(token string) (auth.Principal, error)
}

// Recorder receives one call record per ingress request; the analytics
// producer implements it. Emit must not block for long.
type Recorder interface {
	Emit(record.Record)
}

// ReadyCheck is one dependency /readyz checks (e.g. "temporal", "kafka",
// "clickhouse").
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
	// Optional marks a dependency the API can serve without for a while
	// (Kafka: records spool on disk; ClickHouse: only analytics and budgets
	// need it). Its failure makes /readyz "degraded", not 503, so an outage
	// does not take every replica out of its load balancer.
	Optional bool
}

// Deps are the collaborators of the server.
type Deps struct {
	// Orchestrator and Keys are required.
	Orchestrator Orchestrator
	Keys         Authenticator
	// TenantLimits returns a tenant's own rate limit (from the registry's
	// tenant settings); ok=false uses Config.TenantLimit.
	TenantLimits func(tenant string) (limit ratelimit.Limit, ok bool)
	// KeyLimits returns the per-key rate limit of a tenant's keys; ok=false
	// uses Config.KeyLimit. A key's own rps/burst in the keys file wins.
	KeyLimits func(tenant string) (limit ratelimit.Limit, ok bool)
	// Recorder receives call records; nil records nothing.
	Recorder Recorder
	// Metrics is the registry the server registers its metrics in and
	// serves at /metrics; nil creates a private one.
	Metrics *prometheus.Registry
	// Ready are the checks of /readyz.
	Ready []ReadyCheck
	// Log receives access logs and errors; nil discards them.
	Log *slog.Logger
	// Tracing starts each request's server span (continuing the caller's
	// traceparent); nil still passes a caller's traceparent on but makes
	// no new traces.
	Tracing *tracing.Tracing
}

// Config are the server's settings.
type Config struct {
	// Addr is the listen address of Run, e.g. "127.0.0.1:8080".
	Addr string
	// HTTP server timeouts. WriteTimeout does not apply to streaming
	// routes (SSE); RequestTimeout bounds the context of other requests.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	RequestTimeout    time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests on shutdown.
	ShutdownTimeout time.Duration
	// MaxBodyBytes is the request body limit (413 beyond).
	MaxBodyBytes int64
	// MaxJSONDepth is the deepest accepted JSON nesting.
	MaxJSONDepth int
	// KeyLimit and TenantLimit are the default token buckets per API key
	// and per tenant, and what a limit from Deps that is not set falls
	// back to; zero takes DefaultConfig's (only Unlimited lifts them).
	KeyLimit    ratelimit.Limit
	TenantLimit ratelimit.Limit
	// SSEHeartbeat is the interval of keep-alive comments on event streams.
	SSEHeartbeat time.Duration
	// StreamsPerKey and StreamsPerTenant cap the long-lived responses
	// (SSE status streams, streamed chat completions, MCP requests) open at
	// once per API key and per tenant (429 beyond); negative: no cap.
	StreamsPerKey    int
	StreamsPerTenant int
	// MaxStreamAge ends a long-lived response that lasted this long, with
	// its protocol's shutdown event (clients reconnect); negative: no
	// bound.
	MaxStreamAge time.Duration
	// StreamWriteTimeout bounds each write of an event: a client that
	// stops reading is cut off; negative: none.
	StreamWriteTimeout time.Duration
	// NoMetricsRoute leaves /metrics off the API listener: the process
	// serves MetricsHandler on an admin listener instead.
	NoMetricsRoute bool
}

// DefaultConfig returns the settings used when a field is zero.
func DefaultConfig() Config {
	return Config{
		Addr:              "127.0.0.1:8080",
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		RequestTimeout:    30 * time.Second,
		ShutdownTimeout:   10 * time.Second,
		MaxBodyBytes:      1 << 20,
		MaxJSONDepth:      api.DefaultMaxDepth,
		KeyLimit:          ratelimit.Limit{RPS: 50, Burst: 100},
		TenantLimit:       ratelimit.Limit{RPS: 200, Burst: 400},
		SSEHeartbeat:      15 * time.Second,
		// A key rarely needs more than a few watches and agent sessions
		// at once; the tenant cap bounds what all its keys can pin.
		StreamsPerKey:      16,
		StreamsPerTenant:   128,
		MaxStreamAge:       30 * time.Minute,
		StreamWriteTimeout: 30 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	set(&c.ReadHeaderTimeout, d.ReadHeaderTimeout)
	set(&c.ReadTimeout, d.ReadTimeout)
	set(&c.WriteTimeout, d.WriteTimeout)
	set(&c.IdleTimeout, d.IdleTimeout)
	set(&c.RequestTimeout, d.RequestTimeout)
	set(&c.ShutdownTimeout, d.ShutdownTimeout)
	set(&c.SSEHeartbeat, d.SSEHeartbeat)
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxJSONDepth <= 0 {
		c.MaxJSONDepth = d.MaxJSONDepth
	}
	if c.StreamsPerKey == 0 {
		c.StreamsPerKey = d.StreamsPerKey
	}
	if c.StreamsPerTenant == 0 {
		c.StreamsPerTenant = d.StreamsPerTenant
	}
	if c.MaxStreamAge == 0 {
		c.MaxStreamAge = d.MaxStreamAge
	}
	if c.StreamWriteTimeout == 0 {
		c.StreamWriteTimeout = d.StreamWriteTimeout
	}
	c.KeyLimit = c.KeyLimit.Or(d.KeyLimit)
	c.TenantLimit = c.TenantLimit.Or(d.TenantLimit)
	return c
}

// Server is the ingress HTTP server.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	e       *echo.Echo
	limiter *ratelimit.Limiter
	metrics *metrics
	// gate admits long-lived responses (api.OpenStream).
	gate *streamGate
	// readyLast is the last error of each readiness check, logged on change.
	readyMu   sync.Mutex
	readyLast map[string]string

	mu      sync.Mutex
	routes  []*routeSpec
	byKey   map[string]*routeSpec // "GET /v1/x/:id" (Echo form)
	schemas map[string]any
	groups  []groupDoc
	docs    []groupDocs // run-time documentation of mounted groups
	serving bool

	// streams is cancelled when shutdown begins so that SSE streams end and
	// let Shutdown finish.
	streams     context.Context
	stopStreams context.CancelFunc
}

// routeSpec is one mounted route.
type routeSpec struct {
	method    string
	path      string // {name} form
	echoPath  string // :name form
	group     string
	roles     []auth.Role
	public    bool
	streaming bool
	record    bool // produce a call record (not for probes, metrics and pages)
	page      bool // a console page: not in the OpenAPI document, logged like API requests
	maxBody   int64
	doc       api.Operation
	h         echo.HandlerFunc
	// errorBody encodes the route's error answers (api.Route.ErrorBody);
	// nil is the one error shape.
	errorBody func(*api.Error) any
}

type groupDoc struct{ name, description string }

// groupDocs is a mounted group's api.Group.Docs.
type groupDocs struct {
	group string
	docs  func() []api.DocRoute
}

// New builds the server with the /v1 routes, the probes, /metrics and the
// OpenAPI document. Other route groups are added with Mount before Run.
func New(deps Deps, cfg Config) (*Server, error) {
	if deps.Orchestrator == nil {
		return nil, errors.New("ingress: Deps.Orchestrator is required")
	}
	if deps.Keys == nil {
		return nil, errors.New("ingress: Deps.Keys is required")
	}
	cfg = cfg.withDefaults()
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
		deps.Metrics = reg
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, deps: deps, log: log, limiter: ratelimit.New(), metrics: m,
		byKey: map[string]*routeSpec{}, schemas: map[string]any{}, readyLast: map[string]string{},
	}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.gate = newStreamGate(api.StreamLimits{
		PerKey: max(0, cfg.StreamsPerKey), PerTenant: max(0, cfg.StreamsPerTenant),
		MaxAge: max(0, cfg.MaxStreamAge), WriteTimeout: max(0, cfg.StreamWriteTimeout),
	}, m)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// Echo's JSON responses are written by handlers through c.JSON; keep
	// its default serializer (encoding/json).
	e.Use(s.observe)
	s.e = e

	for _, g := range s.builtinGroups() {
		if err := s.mount(g.name, g.description, g.routes, g.schemas); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Mount adds a route group (analytics, chat completions, prompt APIs, MCP,
// ...) behind the same middleware chain and into the OpenAPI document. It
// must be called before Run/Serve.
func (s *Server) Mount(g api.Group) error {
	specs := make([]*routeSpec, 0, len(g.Routes))
	for _, rt := range g.Routes {
		if err := rt.Check(); err != nil {
			return fmt.Errorf("mount %s: %w", g.Name, err)
		}
		specs = append(specs, &routeSpec{
			method: rt.Method, path: rt.Path, roles: rt.Roles, public: rt.Public,
			streaming: rt.Streaming, record: !rt.Page, page: rt.Page, maxBody: rt.MaxBodyBytes, doc: rt.Doc,
			h: wrapHandler(rt.Handler, api.PathParams(rt.Path), rt.Path), errorBody: rt.ErrorBody,
		})
	}
	if err := s.mount(g.Name, g.Description, specs, g.Schemas); err != nil {
		return err
	}
	if g.Docs != nil {
		s.mu.Lock()
		s.docs = append(s.docs, groupDocs{group: g.Name, docs: g.Docs})
		s.mu.Unlock()
	}
	return nil
}

func (s *Server) mount(group, description string, specs []*routeSpec, schemas map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving {
		return fmt.Errorf("mount %s: the server is already serving", group)
	}
	for _, rs := range specs {
		rs.echoPath = echoPath(rs.path)
		key := rs.method + " " + rs.echoPath
		if _, dup := s.byKey[key]; dup {
			return fmt.Errorf("mount %s: route %s %s is already mounted", group, rs.method, rs.path)
		}
	}
	for name := range schemas {
		if _, dup := s.schemas[name]; dup {
			return fmt.Errorf("mount %s: schema %s is already defined", group, name)
		}
	}
	for name, sc := range schemas {
		s.schemas[name] = sc
	}
	documented := false
	for _, rs := range specs {
		documented = documented || !rs.page
	}
	if documented || len(specs) == 0 {
		s.groups = append(s.groups, groupDoc{group, description})
	}
	for _, rs := range specs {
		rs.group = group
		s.byKey[rs.method+" "+rs.echoPath] = rs
		s.routes = append(s.routes, rs)
		s.e.Add(rs.method, rs.echoPath, rs.h, s.guard(rs))
	}
	return nil
}

// wrapHandler adapts a net/http handler of a route group; path parameters
// are made available through r.PathValue (a trailing {name...} from Echo's
// "*").
func wrapHandler(h http.Handler, params []string, path string) echo.HandlerFunc {
	rest, hasRest := api.CatchAll(path)
	return func(c echo.Context) error {
		r := c.Request()
		for _, p := range params {
			if hasRest && p == rest {
				r.SetPathValue(p, c.Param("*"))
				continue
			}
			r.SetPathValue(p, c.Param(p))
		}
		h.ServeHTTP(c.Response(), r)
		return nil
	}
}

// echoPath turns "/v1/workflows/{id}" into Echo's "/v1/workflows/:id" and
// a trailing "{path...}" into Echo's "*".
func echoPath(p string) string {
	if name, ok := api.CatchAll(p); ok {
		p = strings.TrimSuffix(p, "{"+name+"...}") + "*"
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			b.WriteString(p)
			return b.String()
		}
		j := strings.IndexByte(p[i:], '}')
		if j < 0 {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:i])
		b.WriteByte(':')
		b.WriteString(p[i+1 : i+j])
		p = p[i+j+1:]
	}
}

// MetricsHandler serves the server's metrics registry in the Prometheus
// text format, for an admin listener (Config.NoMetricsRoute).
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.deps.Metrics, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Handler returns the server's http.Handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.e }

// Run listens on Config.Addr and serves until ctx is cancelled, then shuts
// down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("ingress: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled. Shutdown first ends event
// streams (each gets a final "shutdown" event), then waits up to
// ShutdownTimeout for in-flight requests to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("ingress: already serving")
	}
	s.serving = true
	s.mu.Unlock()

	hs := &http.Server{
		Handler:           s.e,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(s.stopStreams)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("ingress listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		s.stopStreams()
		return fmt.Errorf("ingress: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.stopStreams()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		_ = hs.Close()
		return fmt.Errorf("ingress: shutdown: %w", err)
	}
	s.log.Info("ingress stopped")
	return nil
}

// handleError is Echo's error handler: every failure, including Echo's own
// 404/405 and recovered panics, is answered in the one error shape.
func (s *Server) handleError(err error, c echo.Context) {
	info := api.Info(c.Request().Context())
	if info != nil && info.Err == nil {
		info.Err = err
	}
	if c.Response().Committed {
		return
	}
	rid := ""
	if info != nil {
		rid = info.RequestID
	}
	e := httperr.ForClient(echoError(err), rid)
	for k, v := range e.Header {
		c.Response().Header()[k] = v
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(e.Status)
		return
	}
	var b []byte
	if rs := s.byKey[c.Request().Method+" "+c.Path()]; rs != nil && rs.errorBody != nil {
		b, _ = json.Marshal(rs.errorBody(e))
	} else {
		b, _ = json.Marshal(api.Body{Error: e})
	}
	_ = c.JSONBlob(e.Status, append(b, '\n'))
}

// echoError maps Echo's own errors, then everything else through the one
// mapping in api.FromError.
func echoError(err error) *api.Error {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		var ae *api.Error
		if errors.As(he.Internal, &ae) {
			return httperr.FromError(ae)
		}
		e := &api.Error{Status: he.Code, Message: http.StatusText(he.Code), Details: []api.Detail{}}
		switch he.Code {
		case http.StatusNotFound:
			e.Code, e.Message = "route_not_found", "no such route"
		case http.StatusMethodNotAllowed:
			e.Code, e.Message = "method_not_allowed", "this route does not accept this method"
		case http.StatusRequestEntityTooLarge:
			e.Code = "payload_too_large"
		case http.StatusUnsupportedMediaType:
			e.Code = "unsupported_media_type"
		default:
			e.Code = strings.ReplaceAll(strings.ToLower(http.StatusText(he.Code)), " ", "_")
			if msg, ok := he.Message.(string); ok && msg != "" {
				e.Message = msg
			}
		}
		if e.Code == "" {
			e.Code = "http_error"
		}
		return e
	}
	return httperr.FromError(err)
}
