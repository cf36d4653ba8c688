package llm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
)

// Size caps on what the gateway reads from a provider.
const (
	maxResponseBody = 32 << 20
	maxErrorBody    = 64 << 10
)

// errAttemptTimeout is the cancel cause of an attempt whose own deadline
// passed (as opposed to the caller's context ending).
var errAttemptTimeout = errors.New("attempt deadline passed")

// Recorder takes call records; the analytics producer implements it.
// activities.Recorder has the same method, so one value serves both.
type Recorder interface {
	Emit(record.Record)
}

// BudgetChecker admits a call against the tenant's token budget. Reserve
// either refuses with a *BudgetError (or an *Error when the budget cannot
// be read) or holds tokens until the returned Settle is called with the
// tokens the call really used. Budgets implements it.
type BudgetChecker interface {
	Reserve(ctx context.Context, tenant string, tokens int64) (Settle, error)
}

// Settle ends a reservation with the tokens actually used (prompt +
// completion, across all attempts). It must be called exactly once.
type Settle func(usedTokens int64)

// Deps are what a Gateway uses; nil fields take the defaults below. In
// production pass one shared HTTP client (NewHTTPClient) and the analytics
// recorder.
type Deps struct {
	// HTTP sends every provider request; nil means NewHTTPClient().
	HTTP *http.Client
	// Clock defaults to SystemClock.
	Clock Clock
	// Budget nil means no budgets are enforced.
	Budget BudgetChecker
	// Recorder nil drops records.
	Recorder Recorder
	// Log nil discards logs. Logs never hold credentials or prompts.
	Log *slog.Logger
	// LookupEnv and ReadFile read credentials; nil means os.LookupEnv and
	// os.ReadFile.
	LookupEnv func(string) (string, bool)
	ReadFile  func(string) ([]byte, error)
	// AWSCredentials resolves the credentials of Bedrock providers; nil
	// means DefaultAWSCredentials (the SDK's default chain).
	AWSCredentials AWSCredentialsFunc
	// GoogleTokenSource gives the access tokens of Vertex AI providers;
	// nil means DefaultGoogleTokenSource (Application Default
	// Credentials).
	GoogleTokenSource GoogleTokenSourceFunc
	// Rand draws the balancing decisions; nil uses math/rand/v2's global
	// source. Tests pass a seeded one.
	Rand *rand.Rand
	// Access says which models a tenant may call; nil lets every tenant
	// call every model (tests, single-tenant embedding).
	Access ModelAccess
}

// ModelAccess answers whether a tenant may call a model, an alias or
// "provider/model" as requested. The system configuration implements it
// (each tenant's uses.models).
type ModelAccess interface {
	MayUseModel(tenant, model string) bool
}

// CallOptions say who a call is for (copied into call records and used for
// the budget) and how to run it.
type CallOptions struct {
	Tenant     string
	KeyID      string
	WorkflowID string
	RunID      string
	Definition string
	Version    string
	StepID     string
	// Attempt is the caller's attempt number (the Temporal activity
	// attempt); zero lets the gateway number its own attempts from 1.
	Attempt int32
	// RequestID is sent to providers that take a client request id (see
	// Provider.RequestIDHeader) and written to records as the label
	// "request_id"; empty means a fresh id per call.
	RequestID string
	Labels    map[string]string
	// Timeout of one attempt, overriding the model's; zero keeps it.
	Timeout time.Duration
	// NoRetry disables the gateway's retry rounds (the model activity sets
	// it: Temporal retries). Fallbacks across alias targets still happen.
	NoRetry bool
	// Granted says the caller reached the model through something that
	// grants it, so the tenant's model list is not consulted: a prompt API
	// visible to the tenant (its model is the operator's choice).
	Granted bool
	// Cache is what the caller asks of the response cache; CacheTTL, when
	// positive, overrides the entry's time to live (capped by
	// cache.max_ttl).
	Cache    CacheMode
	CacheTTL time.Duration
}

// Gateway routes unified chat and embedding requests to providers: it
// resolves a model or alias, balances the alias's targets, enforces
// budgets, checks context windows, falls back and retries, serves and
// fills the response cache, accounts tokens and cost, and emits one call
// record per attempt. It is safe for concurrent use.
type Gateway struct {
	routes atomic.Pointer[routes]
	deps   Deps
	http   *http.Client
	clock  Clock
	budget BudgetChecker
	rec    Recorder
	log    *slog.Logger
	cache  *responseCache
	rnd    randSource
	// states holds every target's deployment state by name, across
	// reloads.
	states sync.Map
	// reloadMu serializes reloads.
	reloadMu sync.Mutex
}

// NewGateway builds a gateway over a validated configuration.
func NewGateway(cfg Config, deps Deps) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("models config: %w", err)
	}
	if deps.HTTP == nil {
		deps.HTTP = NewHTTPClient()
	}
	if deps.Clock == nil {
		deps.Clock = SystemClock{}
	}
	if deps.Recorder == nil {
		deps.Recorder = nopRecorder{}
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.AWSCredentials == nil {
		deps.AWSCredentials = DefaultAWSCredentials
	}
	if deps.GoogleTokenSource == nil {
		deps.GoogleTokenSource = DefaultGoogleTokenSource
	}
	g := &Gateway{
		deps:   deps,
		http:   deps.HTTP,
		clock:  deps.Clock,
		budget: deps.Budget,
		rec:    deps.Recorder,
		log:    deps.Log,
		rnd:    globalRand{},
	}
	if deps.Rand != nil {
		g.rnd = &lockedRand{r: deps.Rand}
	}
	rt, err := g.newRoutes(cfg)
	if err != nil {
		return nil, err
	}
	g.cache = newResponseCache(rt.cache.maxBytes)
	g.routes.Store(rt)
	return g, nil
}

// routes is one configuration's routing table; Reload swaps it whole.
type routes struct {
	cfg      Config
	targets  map[string]*target
	aliases  map[string]*pool
	names    []string
	infos    []ModelInfo
	retry    retryPolicy
	cooldown cooldownPolicy
	cache    cachePolicy
}

func (g *Gateway) newRoutes(cfg Config) (*routes, error) {
	cat, err := NewCatalogue(cfg.Catalogue)
	if err != nil {
		return nil, err
	}
	targets, aliases := compile(cfg, &g.deps, cat, g.stateFor)
	rt := &routes{cfg: cfg, targets: targets, aliases: aliases, names: cfg.Names(),
		retry: cfg.Retry.parse(), cooldown: cfg.Cooldown.parse(), cache: cfg.Cache.parse()}
	for _, name := range rt.names {
		if p, ok := aliases[name]; ok {
			info := ModelInfo{ID: name, Targets: p.names(), Strategy: p.strategy, Mode: p.targets[0].info.Mode}
			rt.infos = append(rt.infos, info)
			continue
		}
		rt.infos = append(rt.infos, targets[name].info)
	}
	return rt, nil
}

// stateFor returns the deployment state of a target name.
func (g *Gateway) stateFor(name string) *deployment {
	if d, ok := g.states.Load(name); ok {
		return d.(*deployment)
	}
	d, _ := g.states.LoadOrStore(name, &deployment{})
	return d.(*deployment)
}

// Reload replaces the configuration (after a registry reload). Calls in
// flight finish on the configuration they started with; an invalid
// configuration is refused and the current one stays. Deployment states
// (latency, cool-downs) carry over; the response cache is emptied when
// the model configuration changed.
func (g *Gateway) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("models config: %w", err)
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	rt, err := g.newRoutes(cfg)
	if err != nil {
		return fmt.Errorf("models config: %w", err)
	}
	old := g.routes.Swap(rt)
	if old != nil && !reflect.DeepEqual(old.cfg, cfg) {
		g.cache.purge()
	}
	g.cache.resize(rt.cache.maxBytes)
	return nil
}

type nopRecorder struct{}

func (nopRecorder) Emit(record.Record) {}

// globalRand draws from math/rand/v2's global source.
type globalRand struct{}

func (globalRand) intN(n int) int { return rand.IntN(n) }
func (globalRand) float() float64 { return rand.Float64() }

// lockedRand makes a *rand.Rand safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lockedRand) intN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) float() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

// Has reports whether model is an alias or a configured "provider/model".
func (g *Gateway) Has(model string) bool {
	_, err := g.routes.Load().resolve(model)
	return err == nil
}

// Models lists every alias and "provider/model", sorted.
func (g *Gateway) Models() []string { return append([]string(nil), g.routes.Load().names...) }

// ModelsFor lists the models (aliases and "provider/model") the tenant may
// call, sorted: every model when the gateway has no access check.
func (g *Gateway) ModelsFor(tenant string) []string {
	names := g.routes.Load().names
	out := make([]string, 0, len(names))
	for _, n := range names {
		if g.deps.Access == nil || g.deps.Access.MayUseModel(tenant, n) {
			out = append(out, n)
		}
	}
	return out
}

// ModelInfos describes every alias and "provider/model", sorted by name:
// limits, prices and capabilities from the configuration and the
// catalogue.
func (g *Gateway) ModelInfos() []ModelInfo { return append([]ModelInfo(nil), g.routes.Load().infos...) }

// ModelInfosFor is ModelInfos restricted to the models the tenant may call
// (GET /v1/models).
func (g *Gateway) ModelInfosFor(tenant string) []ModelInfo {
	infos := g.routes.Load().infos
	out := make([]ModelInfo, 0, len(infos))
	for _, info := range infos {
		if g.deps.Access == nil || g.deps.Access.MayUseModel(tenant, info.ID) {
			out = append(out, info)
		}
	}
	return out
}

// Targets returns the "provider/model" targets a name routes to: its
// targets in configuration order, then its fallbacks.
func (g *Gateway) Targets(model string) ([]string, error) {
	p, err := g.routes.Load().resolve(model)
	if err != nil {
		return nil, err
	}
	return p.names(), nil
}

func (rt *routes) resolve(model string) (*pool, error) {
	if p, ok := rt.aliases[model]; ok {
		return p, nil
	}
	if t, ok := rt.targets[model]; ok {
		return single(t), nil
	}
	return nil, unknownModel(model)
}

// Chat runs a non-streaming chat completion. The response's Model is the
// "provider/model" that answered, its Usage carries the cost, and its
// Cache says whether the response cache answered.
func (g *Gateway) Chat(ctx context.Context, req *ChatRequest, opts CallOptions) (*ChatResponse, error) {
	c, err := g.begin(ctx, req, &opts, false)
	if err != nil {
		return nil, err
	}
	if hit := g.chatFromCache(c); hit != nil {
		return hit, nil
	}
	if err := g.reserve(ctx, c); err != nil {
		return nil, err
	}
	defer c.settleOnce()
	var resp *ChatResponse
	err = g.run(ctx, c, func(i int, t *target) error {
		r, err := g.attemptChat(ctx, c, t)
		resp = r
		return err
	})
	if err != nil {
		return nil, err
	}
	g.storeChat(c, resp, resp.Model)
	resp.Cache = &CacheInfo{Status: c.cacheStatus}
	return resp, nil
}

// ChatStream starts a streaming chat completion. Fallbacks and retries
// happen until the first chunk has arrived (a provider that fails before
// sending anything is replaced); after that, errors end the stream. The
// caller must Close the stream.
func (g *Gateway) ChatStream(ctx context.Context, req *ChatRequest, opts CallOptions) (*Stream, error) {
	c, err := g.begin(ctx, req, &opts, true)
	if err != nil {
		return nil, err
	}
	if s := g.streamFromCache(c); s != nil {
		return s, nil
	}
	if err := g.reserve(ctx, c); err != nil {
		return nil, err
	}
	var s *Stream
	err = g.run(ctx, c, func(i int, t *target) error {
		st, err := g.openStream(ctx, c, t)
		s = st
		return err
	})
	if err != nil {
		c.settleOnce()
		return nil, err
	}
	return s, nil
}

// call is the state of one Chat, ChatStream or Embed across its attempts.
type call struct {
	g         *Gateway
	req       *ChatRequest
	emb       *EmbeddingRequest
	opts      *CallOptions
	model     string
	pool      *pool
	targets   []*target
	retry     retryPolicy
	cooldown  cooldownPolicy
	size      promptSize
	stream    bool
	requestID string

	// Response cache: the key (when the call is eligible), whether a hit
	// may be served (not for refresh), the TTL of what is stored, and the
	// status reported.
	cacheKey    *cacheKey
	cacheRead   bool
	cacheTTL    time.Duration
	cacheStatus string
	cacheMax    int64

	settle   Settle
	settled  bool
	used     int64
	attempts int32

	excluded  []bool
	lastErr   []*Error // last error per target
	last      error
	retryable *Error
	summary   []string
	// cooling counts targets skipped because their provider asked to wait.
	cooling int
	// trace is the caller's span (the request's or the activity's), for
	// the trace id of every record of the call.
	trace trace.SpanContext
}

func (g *Gateway) begin(ctx context.Context, req *ChatRequest, opts *CallOptions, stream bool) (*call, error) {
	if req == nil {
		return nil, badRequest("no request")
	}
	rt := g.routes.Load()
	p, err := rt.resolve(req.Model)
	if err != nil {
		return nil, err
	}
	if err := g.checkAccess(opts, req.Model); err != nil {
		return nil, err
	}
	if len(req.Messages) == 0 {
		return nil, badRequest("messages must not be empty")
	}
	c := g.newCall(ctx, rt, p, req.Model, opts, stream)
	c.req = req
	c.size = measurePrompt(req)
	g.prepareCache(c, rt.cache, deterministic(req), func() (cacheKey, error) { return chatCacheKey(opts.Tenant, req) })
	return c, nil
}

// newCall starts the state of a call routed to pool p.
func (g *Gateway) newCall(ctx context.Context, rt *routes, p *pool, model string, opts *CallOptions, stream bool) *call {
	targets := p.order(g.rnd, g.clock.Now(), stream)
	c := &call{
		g:           g,
		opts:        opts,
		model:       model,
		pool:        p,
		targets:     targets,
		retry:       rt.retry,
		cooldown:    rt.cooldown,
		stream:      stream,
		requestID:   opts.RequestID,
		excluded:    make([]bool, len(targets)),
		lastErr:     make([]*Error, len(targets)),
		cacheStatus: CacheBypass,
		trace:       trace.SpanContextFromContext(ctx),
	}
	if c.requestID == "" {
		c.requestID = record.NewID()
	}
	return c
}

// prepareCache decides whether the call may be served from and stored in
// the response cache, and computes its key.
func (g *Gateway) prepareCache(c *call, pol cachePolicy, det bool, key func() (cacheKey, error)) {
	mode := c.opts.Cache
	if !pol.enabled || mode == CacheOff {
		return
	}
	if mode != CacheOn && mode != CacheRefreshOnly && !c.pool.cache && !(pol.deterministic && det) {
		return
	}
	k, err := key()
	if err != nil {
		return
	}
	c.cacheKey = &k
	c.cacheRead = mode != CacheRefreshOnly
	c.cacheStatus = CacheMiss
	if !c.cacheRead {
		c.cacheStatus = CacheRefresh
	}
	c.cacheMax = pol.maxEntry
	c.cacheTTL = pol.ttl
	if c.pool.cacheTTL > 0 {
		c.cacheTTL = c.pool.cacheTTL
	}
	if t := c.opts.CacheTTL; t > 0 {
		c.cacheTTL = min(t, pol.maxTTL)
	}
}

// reserve admits the call against the tenant's budget.
func (g *Gateway) reserve(ctx context.Context, c *call) error {
	if g.budget == nil || c.opts.Tenant == "" {
		return nil
	}
	tokens := c.size.upper()
	if c.req != nil {
		completion := int64(requestedMaxTokens(c.req))
		if completion == 0 {
			completion = defaultCompletionReserve
		}
		tokens += completion
	}
	settle, err := g.budget.Reserve(ctx, c.opts.Tenant, tokens)
	if err != nil {
		// Refused before any attempt: one record for the call, its target
		// the requested name.
		r := c.newRecord(c.model, g.clock.Now())
		r.Outcome = record.OutcomeError
		if errors.Is(err, ErrBudgetExceeded) {
			r.Outcome = record.OutcomeRejected
		}
		r.SetError(ClassOf(err), err)
		g.rec.Emit(r)
		return err
	}
	c.settle = settle
	return nil
}

func (c *call) settleOnce() {
	if c.settled {
		return
	}
	c.settled = true
	if c.settle != nil {
		c.settle(c.used)
	}
}

// run tries the call's targets in order, round after round, until an
// attempt succeeds or the call must stop. A target whose provider asked to
// wait (Retry-After still running) is not called: it counts as rate
// limited for the remaining wait.
func (g *Gateway) run(ctx context.Context, c *call, attempt func(i int, t *target) error) error {
	for round := 0; ; round++ {
		for i, t := range c.targets {
			if c.excluded[i] {
				continue
			}
			if wait := t.state.retryAfter(g.clock.Now()); wait > 0 && !c.cooldown.disabled {
				c.skipCooling(i, t, wait)
				continue
			}
			err := attempt(i, t)
			if err == nil {
				return nil
			}
			if stop := c.failed(ctx, i, err); stop {
				return c.finalError(ctx)
			}
		}
		if err := g.waitRound(ctx, c, round); err != nil {
			return err
		}
	}
}

// skipCooling notes a target left out because its provider asked to wait.
func (c *call) skipCooling(i int, t *target, wait time.Duration) {
	e := &Error{Class: ClassRateLimit, Target: t.name, RetryAfter: wait, Err: ErrCoolingDown,
		Message: fmt.Sprintf("cooling down: the provider asked to wait %s", wait.Round(time.Millisecond))}
	c.cooling++
	c.last = e
	c.lastErr[i] = e
	c.retryable = e
	c.summary = append(c.summary, t.name+": cooling down")
}

// failed takes note of a failed attempt on target i and reports whether
// the call must stop now.
func (c *call) failed(ctx context.Context, i int, err error) (stop bool) {
	c.last = err
	if ctx.Err() != nil {
		return true
	}
	var e *Error
	if !errors.As(err, &e) {
		return true
	}
	c.lastErr[i] = e
	c.summary = append(c.summary, e.Target+": "+e.Class+statusSuffix(e.Status))
	if e.Retryable() {
		c.retryable = e
	} else {
		c.excluded[i] = true
	}
	c.g.log.Debug("model attempt failed", "model", c.model, "target", e.Target, "class", e.Class, "status", e.Status)
	return !fallbackClass(e.Class)
}

func statusSuffix(status int) string {
	if status == 0 {
		return ""
	}
	return " (" + strconv.Itoa(status) + ")"
}

// finalError is what the caller gets when no attempt succeeded: the
// caller's own context error, else the last retryable error (so that a
// retry of the whole call may succeed), else the last error; with a
// summary of every attempt when there were several. A call that made no
// attempt at all (every target cooling down) leaves one rejected record.
func (c *call) finalError(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("model %q: %w", c.model, err)
	}
	err := c.last
	if c.retryable != nil {
		err = c.retryable
	}
	if c.attempts == 0 && c.cooling > 0 {
		r := c.newRecord(c.model, c.g.clock.Now())
		c.rejectRecord(&r, c.g.clock.Now(), err)
	}
	if len(c.summary) > 1 {
		return fmt.Errorf("model %q: all %d attempts failed (%s): %w", c.model, len(c.summary), strings.Join(c.summary, "; "), err)
	}
	return err
}

// waitRound decides whether another round over the targets is allowed and
// waits before it: exponential backoff with jitter, at least the smallest
// Retry-After among the targets still in play, never more than
// MaxRetryAfter nor past the caller's deadline.
func (g *Gateway) waitRound(ctx context.Context, c *call, round int) error {
	if c.opts.NoRetry || round+1 >= c.retry.maxAttempts {
		return c.finalError(ctx)
	}
	minRA := time.Duration(-1)
	for i := range c.targets {
		if c.excluded[i] {
			continue
		}
		ra := time.Duration(0)
		if e := c.lastErr[i]; e != nil {
			ra = e.RetryAfter
		}
		if minRA < 0 || ra < minRA {
			minRA = ra
		}
	}
	if minRA < 0 {
		return c.finalError(ctx) // every target refused for good
	}
	if minRA > c.retry.maxRetryAfter {
		return c.finalError(ctx)
	}
	backoff := c.retry.initialBackoff << round
	if backoff > c.retry.maxBackoff || backoff <= 0 {
		backoff = c.retry.maxBackoff
	}
	wait := backoff/2 + rand.N(backoff/2+1)
	if minRA > wait {
		wait = minRA
	}
	if dl, ok := ctx.Deadline(); ok && g.clock.Now().Add(wait).After(dl) {
		return c.finalError(ctx)
	}
	if err := g.clock.Sleep(ctx, wait); err != nil {
		return c.finalError(ctx)
	}
	return nil
}

// observe updates a target's deployment state with an attempt's outcome.
func (c *call) observe(t *target, err error, latency time.Duration) {
	if err == nil {
		t.state.succeeded(latency, c.stream)
		return
	}
	var e *Error
	if errors.As(err, &e) {
		now := c.g.clock.Now()
		before := t.state.coolingUntil(now)
		t.state.failed(e, now, c.cooldown)
		if until := t.state.coolingUntil(now); until.After(before) {
			c.g.log.Warn("model deployment cooling down", "target", t.name, "class", e.Class, "status", e.Status,
				"for", until.Sub(now).Round(time.Millisecond).String())
		}
	}
}

// timeout is the deadline of one attempt on t.
func (c *call) timeout(t *target) time.Duration {
	if c.opts.Timeout > 0 {
		return c.opts.Timeout
	}
	return t.timeout
}

// checkContext refuses a target whose context window cannot hold even the
// lower bound of the prompt plus the requested completion.
func (c *call) checkContext(t *target) *Error {
	limit := int64(t.model.ContextTokens)
	if limit <= 0 {
		return nil
	}
	lower := c.size.lower()
	want := int64(0)
	if c.req != nil {
		want = int64(requestedMaxTokens(c.req))
	}
	if lower+want <= limit {
		return nil
	}
	return &Error{Class: ClassContext, Target: t.name, Message: fmt.Sprintf(
		"prompt of at least %d tokens (estimated) plus %d completion tokens exceeds the context window of %d tokens", lower, want, limit)}
}

// newRecord starts the call record of an attempt on target.
func (c *call) newRecord(target string, start time.Time) record.Record {
	o := c.opts
	r := record.New(calls.KindModel, start)
	if c.trace.IsValid() {
		r.TraceID, r.SpanID = c.trace.TraceID().String(), c.trace.SpanID().String()
	}
	r.Tenant = o.Tenant
	r.KeyID = o.KeyID
	r.Target = target
	r.WorkflowID = o.WorkflowID
	r.RunID = o.RunID
	r.Definition = o.Definition
	r.Version = o.Version
	r.StepID = o.StepID
	r.Attempt = o.Attempt
	if r.Attempt == 0 {
		r.Attempt = c.attempts
	}
	labels := make(map[string]string, len(o.Labels)+3)
	for k, v := range o.Labels {
		labels[k] = v
	}
	labels["request_id"] = c.requestID
	if target != c.model {
		labels["model"] = c.model
	}
	if c.stream {
		labels["stream"] = "true"
	}
	if c.emb != nil {
		labels["op"] = "embeddings"
	}
	r.Labels = labels
	if c.cacheKey != nil {
		r.Cache = c.cacheStatus
	}
	return r
}

// finishRecord fills the outcome of an attempt and emits it.
func (c *call) finishRecord(r *record.Record, start time.Time, err error) {
	r.LatencyMS = float64(c.g.clock.Now().Sub(start).Microseconds()) / 1000
	switch {
	case err == nil:
		r.Outcome = record.OutcomeOK
	case errors.Is(err, context.Canceled):
		r.Outcome = record.OutcomeCancelled
	default:
		class := ClassOf(err)
		r.Outcome = record.OutcomeError
		switch class {
		case ClassTimeout:
			r.Outcome = record.OutcomeTimeout
		case ClassBudget:
			r.Outcome = record.OutcomeRejected
		}
		r.SetError(class, err)
	}
	c.g.rec.Emit(*r)
}

// rejectRecord emits the record of an attempt refused before sending.
func (c *call) rejectRecord(r *record.Record, start time.Time, err error) {
	r.LatencyMS = float64(c.g.clock.Now().Sub(start).Microseconds()) / 1000
	r.Outcome = record.OutcomeRejected
	r.SetError(ClassOf(err), err)
	c.g.rec.Emit(*r)
}

// prepared is an attempt's request, ready to send.
type prepared struct {
	req    *http.Request
	secret string
	bytes  int64
}

// newProviderRequest builds and authorizes one provider request. The
// returned error is an *Error with Target set.
func (g *Gateway) newProviderRequest(ctx context.Context, c *call, t *target, url string, body []byte, stream bool) (*prepared, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Class: ClassBadRequest, Target: t.name, Message: "build request: " + err.Error()}
	}
	h := hreq.Header
	for k, v := range t.prov.headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "gateflow")
	if t.prov.reqIDHeader != "" {
		h.Set(t.prov.reqIDHeader, c.requestID)
	}
	t.prov.adapter.setHeaders(h, t)
	if stream {
		h.Set("Accept", t.prov.adapter.streamAccept())
	}
	secret, err := t.prov.auth.authorize(ctx, hreq, body)
	if err != nil {
		return nil, &Error{Class: ClassAuth, Target: t.name, Message: "credential: " + err.Error()}
	}
	return &prepared{req: hreq, secret: secret, bytes: int64(len(body))}, nil
}

// prepare builds the HTTP request of a chat attempt on t.
func (g *Gateway) prepare(ctx context.Context, c *call, t *target) (*prepared, error) {
	body, err := t.prov.adapter.encodeRequest(t, c.req, c.stream)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Class: ClassBadRequest, Message: err.Error()}
		}
		e.Target = t.name
		return nil, e
	}
	return g.newProviderRequest(ctx, c, t, t.prov.adapter.endpoint(t, c.stream), body, c.stream)
}

// send performs the request and turns every failure into an *Error.
func (g *Gateway) send(ctx, actx context.Context, p *prepared, t *target, r *record.Record) (*http.Response, error) {
	resp, err := g.http.Do(p.req)
	if err != nil {
		return nil, g.transportError(ctx, actx, t, err)
	}
	r.StatusCode = int32(resp.StatusCode)
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	body, _ := readCapped(resp.Body, maxErrorBody)
	resp.Body.Close()
	r.RespBytes += int64(len(body))
	e := t.prov.adapter.decodeError(resp.StatusCode, resp.Header, body)
	e.Target = t.name
	e.Message = redact(record.Truncate(e.Message, record.MaxErrorMessage), p.secret)
	if ra := parseRetryAfter(resp.Header, g.clock.Now()); ra > e.RetryAfter {
		e.RetryAfter = ra
	}
	return nil, e
}

// transportError classifies a failure to send or read.
func (g *Gateway) transportError(ctx, actx context.Context, t *target, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", t.name, ctx.Err())
	}
	if context.Cause(actx) == errAttemptTimeout || errors.Is(err, errAttemptTimeout) {
		return &Error{Class: ClassTimeout, Target: t.name, Message: "no answer within the attempt timeout", Err: ErrTimeout}
	}
	var e *Error
	if errors.As(err, &e) {
		e.Target = t.name
		return e
	}
	// The message says what happened, not where: the provider's URL and
	// address stay in Err, for logs (issue 10 item 9).
	return &Error{Class: ClassConnection, Target: t.name, Message: calls.DescribeNetError(err), Err: err}
}

// attemptChat makes one non-streaming attempt on t.
func (g *Gateway) attemptChat(ctx context.Context, c *call, t *target) (*ChatResponse, error) {
	c.attempts++
	start := g.clock.Now()
	r := c.newRecord(t.name, start)
	if e := c.checkContext(t); e != nil {
		c.rejectRecord(&r, start, e)
		return nil, e
	}
	t.state.inflight.Add(1)
	resp, err := g.doChat(ctx, c, t, &r)
	t.state.inflight.Add(-1)
	c.observe(t, err, g.clock.Now().Sub(start))
	if err != nil {
		c.finishRecord(&r, start, err)
		return nil, err
	}
	r.TokensIn = resp.Usage.PromptTokens
	r.TokensOut = resp.Usage.CompletionTokens
	r.CostUSD = resp.Usage.CostUSD
	c.used += resp.Usage.PromptTokens + resp.Usage.CompletionTokens
	c.finishRecord(&r, start, nil)
	return resp, nil
}

func (g *Gateway) doChat(ctx context.Context, c *call, t *target, r *record.Record) (*ChatResponse, error) {
	actx, cancel := context.WithTimeoutCause(ctx, c.timeout(t), errAttemptTimeout)
	defer cancel()
	p, err := g.prepare(actx, c, t)
	if err != nil {
		return nil, err
	}
	r.ReqBytes = p.bytes
	resp, err := g.send(ctx, actx, p, t, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := readCapped(resp.Body, maxResponseBody)
	r.RespBytes = int64(len(body))
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return nil, &Error{Class: ClassTooLarge, Target: t.name, Status: resp.StatusCode, Message: err.Error()}
		}
		return nil, g.transportError(ctx, actx, t, err)
	}
	out, err := t.prov.adapter.decodeResponse(t, body)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Class: ClassServer, Message: err.Error()}
		}
		e.Target = t.name
		e.Status = resp.StatusCode
		e.Message = redact(e.Message, p.secret)
		return nil, e
	}
	g.finishResponse(c, t, out, r)
	return out, nil
}

// finishResponse normalizes a unified response: names, ids, usage (an
// estimate when the provider gave none) and cost.
func (g *Gateway) finishResponse(c *call, t *target, out *ChatResponse, r *record.Record) {
	out.Model = t.name
	out.Object = ObjectChatCompletion
	if out.Created == 0 {
		out.Created = g.clock.Now().Unix()
	}
	if out.ID == "" {
		out.ID = "chatcmpl-" + r.ID
	}
	for i := range out.Choices {
		if out.Choices[i].Message.Role == "" {
			out.Choices[i].Message.Role = "assistant"
		}
	}
	if out.Usage.PromptTokens == 0 && out.Usage.CompletionTokens == 0 {
		var completion int64
		for _, ch := range out.Choices {
			completion += int64(len(contentText(ch.Message.Content)))
			for _, tc := range ch.Message.ToolCalls {
				completion += int64(len(tc.Function.Name) + len(tc.Function.Arguments))
			}
		}
		out.Usage = Usage{PromptTokens: c.size.upper(), CompletionTokens: (completion + upperBytesPerToken - 1) / upperBytesPerToken}
		r.Labels["usage"] = "estimated"
	}
	if out.Usage.TotalTokens == 0 {
		out.Usage.TotalTokens = out.Usage.PromptTokens + out.Usage.CompletionTokens
	}
	out.Usage.CostUSD = cost(t.model, out.Usage)
}

// chatFromCache answers a call from the response cache, nil on a miss.
func (g *Gateway) chatFromCache(c *call) *ChatResponse {
	e := g.cacheLookup(c)
	if e == nil || e.chat == nil {
		return nil
	}
	out := cloneChat(e.chat)
	out.Cache = &CacheInfo{Status: CacheHit, Age: g.clock.Now().Sub(e.stored)}
	g.hitRecord(c, e)
	return out
}

// cacheLookup finds the call's entry, when the call may be served from
// the cache.
func (g *Gateway) cacheLookup(c *call) *cacheEntry {
	if c.cacheKey == nil || !c.cacheRead {
		return nil
	}
	return g.cache.get(*c.cacheKey, c.opts.Tenant, g.clock.Now())
}

// hitRecord emits the record of a cache hit: no tokens, no cost, the cost
// the stored answer had as cost_saved_usd.
func (g *Gateway) hitRecord(c *call, e *cacheEntry) {
	now := g.clock.Now()
	c.cacheStatus = CacheHit
	c.attempts++
	r := c.newRecord(e.target, now)
	r.Cache = CacheHit
	r.CostSavedUSD = e.cost
	r.Outcome = record.OutcomeOK
	r.StatusCode = http.StatusOK
	c.g.rec.Emit(r)
}

// storeChat keeps a successful answer in the cache, when the call is
// eligible and the answer small enough.
func (g *Gateway) storeChat(c *call, resp *ChatResponse, target string) {
	if c.cacheKey == nil || resp == nil {
		return
	}
	size := entryOverhead + chatSize(resp)
	if size > c.cacheMax {
		return
	}
	now := g.clock.Now()
	stored := cloneChat(resp)
	g.cache.put(&cacheEntry{key: *c.cacheKey, tenant: c.opts.Tenant, chat: stored, target: target,
		cost: resp.Usage.CostUSD, stored: now, expires: now.Add(c.cacheTTL), size: size})
}

// chatSize approximates the memory of a response by its text.
func chatSize(r *ChatResponse) int64 {
	n := int64(len(r.ID) + len(r.Model) + 64)
	for _, ch := range r.Choices {
		n += int64(len(ch.Message.Content)+len(ch.FinishReason)) + 64
		for _, tc := range ch.Message.ToolCalls {
			n += int64(len(tc.ID)+len(tc.Function.Name)+len(tc.Function.Arguments)) + 64
		}
	}
	return n
}

var errBodyTooLarge = errors.New("provider answer above the size cap")

// bufPool recycles response read buffers.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readCapped reads at most limit bytes of r; more is errBodyTooLarge. The
// returned slice is a fresh copy.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			bufPool.Put(buf)
		}
	}()
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	out := bytes.Clone(buf.Bytes())
	if err != nil {
		return out, err
	}
	if n > limit {
		return out[:limit], fmt.Errorf("%w (%d bytes)", errBodyTooLarge, limit)
	}
	return out, nil
}

// checkAccess refuses a model the tenant may not use, with the same error
// as a model that does not exist (checked before the response cache, so a
// withdrawn grant also stops cached answers).
func (g *Gateway) checkAccess(opts *CallOptions, model string) error {
	if g.deps.Access != nil && opts.Tenant != "" && !opts.Granted && !g.deps.Access.MayUseModel(opts.Tenant, model) {
		return unknownModel(model)
	}
	return nil
}

// unknownModel is the error for a model that is not configured, or that the
// tenant may not use: both read the same.
func unknownModel(model string) error {
	return &Error{Class: ClassBadRequest, Message: fmt.Sprintf("unknown model %q (not an alias nor a configured provider/model)", model), Err: ErrUnknownModel}
}
