package mcpserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/workflows/catalog"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Names of the catalogue's tools.
const (
	ToolCatalogSearch    = "catalog_search"
	ToolCatalogAPI       = "catalog_api"
	ToolCatalogSubscribe = "catalog_subscribe"
)

// addCatalogTools adds the catalogue's tools: anyone may search and read;
// requesting a subscription needs the admin role, as on the REST API.
func (s *Server) addCatalogTools(srv *mcp.Server, rs roleSet) {
	str := map[string]any{"type": "string"}
	enum := func(vs ...string) map[string]any {
		out := make([]any, len(vs))
		for i, v := range vs {
			out[i] = v
		}
		return map[string]any{"type": "string", "enum": out}
	}
	srv.AddTool(&mcp.Tool{
		Name: ToolCatalogSearch, Title: "Search the API catalogue",
		Description: "APIs you may call or subscribe to: your tenant's and the shared ones of other tenants, with their versions, " +
			"states and your subscription. Call one with POST /v1/catalog/{api}/call once you hold an active grant.",
		InputSchema: map[string]any{"type": "object", "additionalProperties": false, "properties": map[string]any{
			"text": str, "tags": map[string]any{"type": "array", "items": str}, "kind": enum(wire.APIKinds...), "owner": str, "state": enum(wire.States...)}},
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, s.catalogSearch)
	srv.AddTool(&mcp.Tool{
		Name: ToolCatalogAPI, Title: "One API of the catalogue",
		Description: "An API's versions and states, docs, plans, OpenAPI documents, history and your subscriptions to it.",
		InputSchema: map[string]any{"type": "object", "additionalProperties": false, "required": []any{"api"}, "properties": map[string]any{"api": str}},
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, s.catalogAPI)
	if rs.admin {
		srv.AddTool(&mcp.Tool{
			Name: ToolCatalogSubscribe, Title: "Request a subscription",
			Description: "Request a subscription to a shared API under one of its plans, for your tenant or one of its apps. " +
				"Unless the API grants at once, the owner's approvers decide it; its state is in the answer.",
			InputSchema: map[string]any{"type": "object", "additionalProperties": false, "required": []any{"api", "plan"}, "properties": map[string]any{
				"api": str, "plan": str, "app": str, "reason": str}},
			Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false)},
		}, s.catalogSubscribe)
	}
}

// catalogCaller returns the catalogue's view of the tool's caller.
func catalogCaller(req *mcp.CallToolRequest) (catalog.Caller, bool) {
	if req.Extra == nil || req.Extra.TokenInfo == nil {
		return catalog.Caller{}, false
	}
	p, ok := req.Extra.TokenInfo.Extra[principalKey].(auth.Principal)
	rid := ""
	if c, ok := req.Extra.TokenInfo.Extra[callerKey].(orchestrator.Caller); ok {
		rid = c.RequestID
	}
	return catalog.Caller{Tenant: p.Tenant, App: p.App, KeyID: p.KeyID, User: p.User, Roles: p.Roles, RequestID: rid}, ok
}

func (s *Server) catalogSearch(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	c, ok := catalogCaller(req)
	if !ok {
		return nil, errNoCaller
	}
	var in struct {
		Text  string   `json:"text"`
		Tags  []string `json:"tags"`
		Kind  string   `json:"kind"`
		Owner string   `json:"owner"`
		State string   `json:"state"`
	}
	if err := args(req, &in); err != nil {
		return toolError(err), nil
	}
	list, err := s.opts.Catalog.Search(c, catalog.Filter{Text: in.Text, Tags: in.Tags, Kind: in.Kind, Owner: in.Owner, State: in.State})
	if err != nil {
		return toolError(err), nil
	}
	return result(list, false), nil
}

func (s *Server) catalogAPI(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	c, ok := catalogCaller(req)
	if !ok {
		return nil, errNoCaller
	}
	var in struct {
		API string `json:"api"`
	}
	if err := args(req, &in); err != nil {
		return toolError(err), nil
	}
	d, err := s.opts.Catalog.Get(c, in.API)
	if err != nil {
		return toolError(err), nil
	}
	return result(d, false), nil
}

func (s *Server) catalogSubscribe(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	c, ok := catalogCaller(req)
	if !ok {
		return nil, errNoCaller
	}
	if !hasRoleIn(c.Roles, auth.RoleAdmin) {
		return toolError(roleError(auth.RoleAdmin)), nil
	}
	var in struct {
		API    string `json:"api"`
		Plan   string `json:"plan"`
		App    string `json:"app"`
		Reason string `json:"reason"`
	}
	if err := args(req, &in); err != nil {
		return toolError(err), nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	sub, err := s.opts.Catalog.Subscribe(ctx, c, in.API, wire.SubscribeRequest{Plan: in.Plan, App: in.App, Reason: in.Reason})
	if err != nil {
		return toolError(err), nil
	}
	return result(sub, false), nil
}

func hasRoleIn(roles []string, r auth.Role) bool {
	return auth.Principal{Roles: roles}.Has(r)
}
