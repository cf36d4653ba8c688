// Package mcpserver serves Gateflow to agents over the Model Context
// Protocol (official Go SDK, streamable HTTP) at /mcp on the ingress.
//
// The caller is the ingress's: the same API keys, rate limits and call
// records as every route. The tools depend on the key's tenant and roles:
//
//	start_<definition>      start a published orchestration (submitter);
//	                        optional wait_seconds returns its result
//	api_<prompt API>        run a prompt API (submitter or model)
//	workflow_status         status of an orchestration (any role)
//	list_pending_approvals  approval steps waiting for the caller (approver)
//	decide_approval         approve or reject one (approver)
//	catalog_search          search the API catalogue (any role)
//	catalog_api             one API of the catalogue (any role)
//	catalog_subscribe       request a subscription to a shared API (admin)
//
// The server is stateless (every POST is answered on its own, no
// Mcp-Session-Id): any ingress replica can answer any request, and nothing
// is lost when one restarts. Tool lists are built per tenant and role set
// and cached briefly (Options.CacheTTL), so a published definition shows up
// within that time.
//
// It lives with the model gateway's HTTP front ends (chatapi, prompt)
// because it serves prompt APIs and shares their error mapping; it reaches
// orchestrations only through workflows/orchestrator.
package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/httperr"
	"github.com/gateflow/gateflow/ingress/promptapi"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/catalog"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// Defaults of Options.
const (
	DefaultMaxWait     = 60 * time.Second
	DefaultCacheTTL    = 5 * time.Second
	DefaultCallTimeout = 30 * time.Second
	// maxBody bounds one MCP request.
	maxBody = 4 << 20
)

// Names of the built-in tools and prefixes of the generated ones.
const (
	ToolWorkflowStatus  = "workflow_status"
	ToolPendingApproval = "list_pending_approvals"
	ToolDecideApproval  = "decide_approval"
	StartToolPrefix     = "start_"
	PromptToolPrefix    = "api_"
)

// Orchestrator is what the tools call; *orchestrator.Orchestrator
// implements it.
type Orchestrator interface {
	Start(ctx context.Context, c orchestrator.Caller, req orchestrator.StartRequest) (orchestrator.StartResult, error)
	Status(ctx context.Context, c orchestrator.Caller, id string) (orchestrator.Status, error)
	Watch(ctx context.Context, c orchestrator.Caller, id string) (<-chan orchestrator.Update, error)
	Decide(ctx context.Context, c orchestrator.Caller, id string, req orchestrator.DecideRequest) (workflows.DecisionResult, error)
	PendingApprovals(ctx context.Context, c orchestrator.Caller) (orchestrator.Approvals, error)
	ListDefinitions(ctx context.Context, c orchestrator.Caller) ([]orchestrator.DefinitionInfo, error)
	GetDefinition(ctx context.Context, c orchestrator.Caller, name, version string) (definition.Definition, error)
}

// Options tune the server; zero values take the defaults.
type Options struct {
	// MaxWait bounds a start tool's wait_seconds (default 60 s).
	MaxWait time.Duration
	// CacheTTL is how long a tenant's tool list is reused (default 5 s).
	CacheTTL time.Duration
	// CallTimeout bounds a tool's orchestrator calls (default 30 s).
	CallTimeout time.Duration
	// MaxJSONDepth bounds the nesting of a request (default
	// api.DefaultMaxDepth).
	MaxJSONDepth int
	// Log receives warnings; nil discards them.
	Log *slog.Logger
	// Catalog, when set, adds the catalogue's tools: catalog_search and
	// catalog_api (any role), catalog_subscribe (admin).
	Catalog *catalog.Service
}

// Server is the MCP endpoint.
type Server struct {
	orch    Orchestrator
	prompts *prompt.Runner
	opts    Options
	log     *slog.Logger
	http    http.Handler

	mu    sync.Mutex
	cache map[string]*cached
}

// cached is one tenant and role set's MCP server.
type cached struct {
	mu      sync.Mutex // held while building
	srv     *mcp.Server
	builtAt time.Time
}

// New returns the MCP server; prompts may be nil (no prompt API tools).
func New(orch Orchestrator, prompts *prompt.Runner, opts Options) *Server {
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.MaxJSONDepth <= 0 {
		opts.MaxJSONDepth = api.DefaultMaxDepth
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{orch: orch, prompts: prompts, opts: opts, log: opts.Log, cache: map[string]*cached{}}
	sdk := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		srv, _ := r.Context().Value(serverKey{}).(*mcp.Server)
		return srv
	}, &mcp.StreamableHTTPOptions{
		Stateless:    true,
		JSONResponse: true,
		// Every request carries an API key the ingress checked: a page
		// that rebinds DNS to a local ingress has no key to send, so the
		// Host check (which would refuse requests through a local
		// reverse proxy) adds nothing.
		DisableLocalhostProtection:   true,
		PropagateRequestCancellation: true,
		MaxRequestBodyBytes:          maxBody,
		Logger:                       opts.Log,
	})
	// The SDK hands tool handlers the request's TokenInfo: it carries the
	// caller the ingress authenticated (the MCP servers are shared by the
	// keys of a tenant with the same roles).
	s.http = sdkauth.RequireBearerToken(verify, &sdkauth.RequireBearerTokenOptions{AllowMissingExpiration: true})(sdk)
	return s
}

// Routes returns the route group to mount on the ingress: POST /mcp (the
// stateless streamable HTTP transport answers GET and DELETE with 405,
// which the ingress does by itself).
func (s *Server) Routes() api.Group {
	return api.Group{
		Name:        "mcp",
		Description: "Model Context Protocol (streamable HTTP, stateless) for agents: orchestrations, prompt APIs and approvals as tools.",
		Routes: []api.Route{{
			Method: http.MethodPost, Path: "/mcp",
			// Tool calls may wait for an orchestration (wait_seconds) or a
			// model: no ingress request timeout; Options bound them.
			Streaming: true, MaxBodyBytes: maxBody,
			Handler: s,
			Doc: api.Operation{
				ID: "mcp", Summary: "MCP endpoint (JSON-RPC over streamable HTTP)",
				Description: "Connect an MCP client (streamable HTTP transport) with `Authorization: Bearer <API key>`. Tools depend on " +
					"the key: `start_<definition>` (submitter; optional `wait_seconds` up to the server's bound returns the result), " +
					"`api_<prompt API>` (submitter or model), `workflow_status`, `list_pending_approvals` and `decide_approval` " +
					"(approver). The server is stateless: no Mcp-Session-Id.",
				Request: &api.Content{Required: true, Schema: map[string]any{"type": "object", "description": "A JSON-RPC 2.0 message (or batch)."}},
				Responses: map[int]api.Response{
					200: {Description: "The JSON-RPC response.", Schema: map[string]any{"type": "object"}},
					202: {Description: "A notification or response was accepted."},
				},
			},
		}},
	}
}

type serverKey struct{}

// callerKey is the TokenInfo.Extra key of the caller.
const (
	callerKey    = "gateflow.caller"
	infoKey      = "gateflow.request"
	principalKey = "gateflow.principal"
)

// verify turns the principal the ingress authenticated into the SDK's
// TokenInfo (the token itself was checked by the ingress).
func verify(ctx context.Context, _ string, _ *http.Request) (*sdkauth.TokenInfo, error) {
	p, ok := api.Caller(ctx)
	if !ok {
		return nil, sdkauth.ErrInvalidToken
	}
	c := orchestrator.Caller{Tenant: p.Tenant, KeyID: p.KeyID, User: p.User, Roles: p.Roles, RequestID: api.RequestID(ctx)}
	return &sdkauth.TokenInfo{UserID: p.Tenant + "/" + p.KeyID, Extra: map[string]any{callerKey: c, infoKey: api.Info(ctx), principalKey: p}}, nil
}

// ServeHTTP answers one MCP request with the tools of the caller's tenant
// and roles.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := api.Caller(r.Context())
	if !ok {
		httperr.Write(w, r, api.Errorf(http.StatusUnauthorized, "unauthenticated", "an API key is required"))
		return
	}
	// The body is read and checked here, like every JSON body of the
	// ingress (size, syntax, nesting depth), before the SDK decodes it:
	// its decoder has no depth bound.
	if r.Method == http.MethodPost {
		body, err := api.ReadBody(w, r, maxBody)
		if err == nil {
			err = checkJSON(body, s.opts.MaxJSONDepth)
		}
		if err != nil {
			httperr.Write(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	// An MCP request is long-lived (a tool may wait for an orchestration):
	// it takes a stream slot of the key and tenant, and gets the stream's
	// maximum age and write deadline (issue 10 item 7).
	st, err := api.OpenStream(w, r)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	defer st.Close()
	srv, err := s.serverFor(st.Context(), p, api.RequestID(r.Context()))
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	s.http.ServeHTTP(st.W, r.WithContext(context.WithValue(st.Context(), serverKey{}, srv)))
}

// checkJSON refuses a body that is not one JSON value within maxDepth, in
// the API's error shape (400 invalid_json).
func checkJSON(body []byte, maxDepth int) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &api.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "a JSON-RPC message is required",
			Details: []api.Detail{{Path: "", Message: "is empty"}}}
	}
	if err := api.CheckDepth(body, maxDepth); err != nil {
		return &api.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: err.Error(),
			Details: []api.Detail{{Path: "", Message: err.Error()}}}
	}
	if !json.Valid(body) {
		return &api.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body is not valid JSON",
			Details: []api.Detail{{Path: "", Message: "is not valid JSON"}}}
	}
	return nil
}

// roleSet is what decides a principal's tools.
type roleSet struct{ start, model, approve, admin bool }

func rolesOf(p auth.Principal) roleSet {
	return roleSet{start: p.Has(auth.RoleSubmitter), model: p.HasAny(auth.ModelRoles), approve: p.Has(auth.RoleApprover), admin: p.Has(auth.RoleAdmin)}
}

// serverFor returns the (cached) MCP server of the principal's tenant and
// role set, building it when missing or older than CacheTTL. One caller
// builds; the others wait for it.
func (s *Server) serverFor(ctx context.Context, p auth.Principal, requestID string) (*mcp.Server, error) {
	rs := rolesOf(p)
	key := fmt.Sprintf("%s|%t|%t|%t|%t", p.Tenant, rs.start, rs.model, rs.approve, rs.admin)
	s.mu.Lock()
	e := s.cache[key]
	if e == nil {
		e = &cached{}
		s.cache[key] = e
	}
	s.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil && time.Since(e.builtAt) < s.opts.CacheTTL {
		return e.srv, nil
	}
	c := orchestrator.Caller{Tenant: p.Tenant, KeyID: p.KeyID, User: p.User, Roles: p.Roles, RequestID: requestID}
	srv, err := s.build(ctx, c, rs)
	if err != nil {
		if e.srv != nil {
			// Keep serving the last tool list rather than fail every
			// request while Temporal is briefly away.
			s.log.Warn("MCP tool list not refreshed; serving the previous one", "tenant", p.Tenant, "err", err)
			return e.srv, nil
		}
		return nil, err
	}
	e.srv, e.builtAt = srv, time.Now()
	return srv, nil
}

// build makes the MCP server of a tenant and role set.
func (s *Server) build(ctx context.Context, c orchestrator.Caller, rs roleSet) (*mcp.Server, error) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "gateflow", Title: "Gateflow", Version: "1"}, &mcp.ServerOptions{
		Instructions: "Gateflow runs durable orchestrations and prompt APIs. Start an orchestration with its start_ tool " +
			"(wait_seconds returns the result when it finishes in time), then follow it with workflow_status.",
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}},
		Logger:       s.log,
	})
	srv.AddTool(statusTool(), s.workflowStatus)
	if rs.approve {
		srv.AddTool(pendingTool(), s.pendingApprovals)
		srv.AddTool(decideTool(), s.decideApproval)
	}
	if rs.start {
		if err := s.addStartTools(ctx, srv, c); err != nil {
			return nil, err
		}
	}
	if rs.model && s.prompts != nil {
		for _, a := range s.prompts.Catalog().Latest(c.Tenant) {
			srv.AddTool(promptTool(a), s.runPrompt(a.Name))
		}
	}
	if s.opts.Catalog != nil {
		s.addCatalogTools(srv, rs)
	}
	return srv, nil
}

// addStartTools adds one start tool per definition visible to the tenant
// (its latest version's input schema).
func (s *Server) addStartTools(ctx context.Context, srv *mcp.Server, c orchestrator.Caller) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	infos, err := s.orch.ListDefinitions(ctx, c)
	if err != nil {
		return fmt.Errorf("list definitions for the MCP tools: %w", err)
	}
	latest := map[string]string{}
	for _, d := range infos {
		if v, ok := latest[d.Name]; !ok || definition.CompareVersions(d.Version, v) > 0 {
			latest[d.Name] = d.Version
		}
	}
	names := make([]string, 0, len(latest))
	for n := range latest {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		def, err := s.orch.GetDefinition(ctx, c, name, latest[name])
		if err != nil {
			return fmt.Errorf("definition %s@%s for the MCP tools: %w", name, latest[name], err)
		}
		srv.AddTool(s.startTool(&def), s.startOrchestration(def.Name))
	}
	return nil
}

// toolName makes an MCP tool name (letters, digits, _ - .; at most 128).
func toolName(prefix, name string) string {
	return prefix + name
}

func (s *Server) startTool(def *definition.Definition) *mcp.Tool {
	input := json.RawMessage(`{"description":"The orchestration input (this definition declares no schema)."}`)
	required := []any{}
	if len(def.InputSchema) > 0 {
		input = def.InputSchema
		required = append(required, "input")
	}
	desc := fmt.Sprintf("Start the orchestration %s (version %s).", def.Name, def.Version)
	if def.Description != "" {
		desc += " " + def.Description
	}
	desc += fmt.Sprintf(" Returns its id; with wait_seconds (at most %d) it waits for the result and returns the final status when it finishes in time.",
		int(s.opts.MaxWait/time.Second))
	return &mcp.Tool{
		Name:        toolName(StartToolPrefix, def.Name),
		Title:       "Start " + def.Name,
		Description: desc,
		InputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"input":           input,
				"wait_seconds":    map[string]any{"type": "integer", "minimum": 0, "maximum": int(s.opts.MaxWait / time.Second), "description": "Wait up to this long for the result."},
				"idempotency_key": map[string]any{"type": "string", "minLength": 1, "maxLength": orchestrator.MaxIdempotencyKey, "description": "The same key and input start at most one orchestration."},
			},
			"required":             required,
			"additionalProperties": false,
		},
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptr(true)},
	}
}

func statusTool() *mcp.Tool {
	return &mcp.Tool{
		Name: ToolWorkflowStatus, Title: "Orchestration status",
		Description: "The state of an orchestration of your tenant: steps, outputs, pending approvals, result or failure.",
		InputSchema: map[string]any{
			"type":                 "object",
			"properties":           map[string]any{"id": map[string]any{"type": "string", "description": "The orchestration id (as returned by a start tool)."}},
			"required":             []any{"id"},
			"additionalProperties": false,
		},
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}
}

func pendingTool() *mcp.Tool {
	return &mcp.Tool{
		Name: ToolPendingApproval, Title: "Pending approvals",
		Description: "Approval steps, across the running orchestrations of your tenant, that you may decide.",
		InputSchema: map[string]any{"type": "object", "properties": map[string]any{}, "additionalProperties": false},
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}
}

func decideTool() *mcp.Tool {
	return &mcp.Tool{
		Name: ToolDecideApproval, Title: "Decide an approval",
		Description: "Approve or reject an approval step waiting for you (see list_pending_approvals).",
		InputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"workflow_id": map[string]any{"type": "string"},
				"step_id":     map[string]any{"type": "string"},
				"decision":    map[string]any{"type": "string", "enum": []any{workflows.Approve, workflows.Reject}},
				"comment":     map[string]any{"type": "string", "maxLength": orchestrator.MaxComment},
			},
			"required":             []any{"workflow_id", "step_id", "decision"},
			"additionalProperties": false,
		},
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false)},
	}
}

func promptTool(a *prompt.API) *mcp.Tool {
	desc := fmt.Sprintf("Prompt API %s (version %s, model %s).", a.Name, a.Version, a.Model)
	if a.Description != "" {
		desc += " " + a.Description
	}
	t := &mcp.Tool{
		Name: toolName(PromptToolPrefix, a.Name), Title: "Prompt API " + a.Name,
		Description: desc,
		InputSchema: a.Variables,
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: ptr(true)},
	}
	return t
}

func ptr[T any](v T) *T { return &v }

// request returns the caller and request info of a tool call.
func request(req *mcp.CallToolRequest) (orchestrator.Caller, *api.RequestInfo, bool) {
	if req.Extra == nil || req.Extra.TokenInfo == nil {
		return orchestrator.Caller{}, nil, false
	}
	c, ok := req.Extra.TokenInfo.Extra[callerKey].(orchestrator.Caller)
	info, _ := req.Extra.TokenInfo.Extra[infoKey].(*api.RequestInfo)
	return c, info, ok
}

// args decodes a tool's arguments strictly (unknown fields and wrong types
// are located problems).
func args(req *mcp.CallToolRequest, dst any) error {
	raw := req.Params.Arguments
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	return api.DecodeJSON(raw, dst, 0, "")
}

// result answers v as the tool's structured result (and its JSON text).
func result(v any, isError bool) *mcp.CallToolResult {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":"could not encode the result"}`)
		isError = true
	}
	return &mcp.CallToolResult{
		Content:           []mcp.Content{&mcp.TextContent{Text: string(b)}},
		StructuredContent: json.RawMessage(b),
		IsError:           isError,
	}
}

// toolError answers an error in the API's error shape as a tool error, so
// that the agent sees (and can correct) it; a server-side failure names no
// address and gives the request id (httperr.ForClient).
func toolError(err error) *mcp.CallToolResult {
	return result(api.Body{Error: httperr.FromError(err)}, true)
}

// toolErrorFor is toolError for a caller's request.
func toolErrorFor(c orchestrator.Caller, err error) *mcp.CallToolResult {
	return result(api.Body{Error: httperr.ForClient(httperr.FromError(err), c.RequestID)}, true)
}

var errNoCaller = errors.New("no authenticated caller")

func (s *Server) workflowStatus(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	c, info, ok := request(req)
	if !ok {
		return nil, errNoCaller
	}
	var in struct {
		ID string `json:"id"`
	}
	if err := args(req, &in); err != nil {
		return toolError(err), nil
	}
	setWorkflow(info, in.ID, "", "")
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	st, err := s.orch.Status(ctx, c, in.ID)
	if err != nil {
		return toolErrorFor(c, err), nil
	}
	return result(st, false), nil
}

func (s *Server) pendingApprovals(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	c, _, ok := request(req)
	if !ok {
		return nil, errNoCaller
	}
	if err := needRole(c, auth.RoleApprover); err != nil {
		return toolError(err), nil
	}
	var in struct{}
	if err := args(req, &in); err != nil {
		return toolError(err), nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	a, err := s.orch.PendingApprovals(ctx, c)
	if err != nil {
		return toolErrorFor(c, err), nil
	}
	return result(a, false), nil
}

func (s *Server) decideApproval(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	c, info, ok := request(req)
	if !ok {
		return nil, errNoCaller
	}
	if err := needRole(c, auth.RoleApprover); err != nil {
		return toolError(err), nil
	}
	var in struct {
		WorkflowID string `json:"workflow_id"`
		StepID     string `json:"step_id"`
		Decision   string `json:"decision"`
		Comment    string `json:"comment"`
	}
	if err := args(req, &in); err != nil {
		return toolError(err), nil
	}
	setWorkflow(info, in.WorkflowID, "", "")
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	res, err := s.orch.Decide(ctx, c, in.WorkflowID, orchestrator.DecideRequest{StepID: in.StepID, Decision: in.Decision, Comment: in.Comment})
	if err != nil {
		return toolErrorFor(c, err), nil
	}
	return result(res, false), nil
}

// startResult is what a start tool answers.
type startResult struct {
	ID         string `json:"id"`
	RunID      string `json:"run_id"`
	Definition string `json:"definition"`
	Version    string `json:"version"`
	// Created is false when an idempotency key found the orchestration
	// started earlier.
	Created bool `json:"created"`
	// State is "running" unless the wait saw the orchestration close.
	State workflows.RunState `json:"state"`
	// Status is the last status seen while waiting (wait_seconds > 0).
	Status *orchestrator.Status `json:"status,omitempty"`
	// Output and Error are the result once closed.
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
}

func (s *Server) startOrchestration(name string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		c, info, ok := request(req)
		if !ok {
			return nil, errNoCaller
		}
		if err := needRole(c, auth.RoleSubmitter); err != nil {
			return toolError(err), nil
		}
		var in struct {
			Input          json.RawMessage `json:"input"`
			WaitSeconds    *float64        `json:"wait_seconds"`
			IdempotencyKey string          `json:"idempotency_key"`
		}
		if err := args(req, &in); err != nil {
			return toolError(err), nil
		}
		var wait time.Duration
		if in.WaitSeconds != nil {
			w := *in.WaitSeconds
			if w < 0 || w > s.opts.MaxWait.Seconds() {
				return toolError(&api.Error{Status: http.StatusBadRequest, Code: "invalid_request",
					Message: fmt.Sprintf("wait_seconds: must be between 0 and %d", int(s.opts.MaxWait.Seconds())),
					Details: []api.Detail{{Path: "wait_seconds", Message: fmt.Sprintf("must be between 0 and %d", int(s.opts.MaxWait.Seconds()))}}}), nil
			}
			wait = time.Duration(w * float64(time.Second))
		}
		sctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
		res, err := s.orch.Start(sctx, c, orchestrator.StartRequest{
			Definition: name, Input: in.Input, IdempotencyKey: in.IdempotencyKey,
			Labels: map[string]string{"via": "mcp"},
		})
		cancel()
		if err != nil {
			return toolErrorFor(c, err), nil
		}
		setWorkflow(info, res.ID, res.Definition, res.Version)
		out := startResult{ID: res.ID, RunID: res.RunID, Definition: res.Definition, Version: res.Version, Created: res.Created, State: workflows.RunRunning}
		if wait <= 0 {
			return result(out, false), nil
		}
		st, err := s.await(ctx, c, res.ID, wait)
		if err != nil {
			// Started, but the wait failed: say so without hiding the id.
			out.Error = "started, but waiting for the result failed: " + httperr.ForClient(httperr.FromError(err), c.RequestID).Message
			return result(out, false), nil
		}
		out.Status = st
		if st != nil {
			out.State = st.State
			out.Output = st.Output
			if st.State != workflows.RunRunning {
				out.Error = st.Error
			}
		}
		failed := out.State != workflows.RunRunning && out.State != workflows.RunSucceeded
		return result(out, failed), nil
	}
}

// await follows an orchestration until it closes or wait passes, and
// returns the last status seen.
func (s *Server) await(ctx context.Context, c orchestrator.Caller, id string, wait time.Duration) (*orchestrator.Status, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	updates, err := s.orch.Watch(wctx, c, id)
	if err != nil {
		if wctx.Err() != nil && ctx.Err() == nil {
			return nil, nil
		}
		return nil, err
	}
	var last *orchestrator.Status
	for u := range updates {
		if u.Err != nil {
			continue // transient; Watch keeps trying
		}
		st := u.Status
		last = &st
		if st.State != workflows.RunRunning {
			cancel()
		}
	}
	return last, nil
}

func (s *Server) runPrompt(name string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		c, _, ok := request(req)
		if !ok {
			return nil, errNoCaller
		}
		if !slices.ContainsFunc(auth.ModelRoles, func(r auth.Role) bool { return hasRole(c, r) }) {
			return toolError(roleError(auth.ModelRoles...)), nil
		}
		raw := req.Params.Arguments
		res, err := s.prompts.Run(ctx, prompt.Call{
			Tenant: c.Tenant, KeyID: c.KeyID, RequestID: c.RequestID, Name: name, Variables: raw,
			Labels: map[string]string{"via": "mcp"},
		})
		if err != nil {
			return toolErrorFor(c, promptapi.HTTPError(err, nil)), nil
		}
		return result(res, false), nil
	}
}

func setWorkflow(info *api.RequestInfo, id, def, version string) {
	if info != nil && orchestrator.ValidID(id) {
		info.WorkflowID, info.Definition, info.Version = id, def, version
	}
}

func hasRole(c orchestrator.Caller, r auth.Role) bool {
	return auth.Principal{Roles: c.Roles}.Has(r)
}

func needRole(c orchestrator.Caller, r auth.Role) error {
	if hasRole(c, r) {
		return nil
	}
	return roleError(r)
}

func roleError(roles ...auth.Role) error {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return api.Errorf(http.StatusForbidden, "forbidden", "this tool needs one of the roles: %s", strings.Join(names, ", "))
}
