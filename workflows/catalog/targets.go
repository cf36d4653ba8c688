package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/registry"
	"github.com/gateflow/gateflow/workflows/wire"
)

// TargetChecker checks that an owner may publish what a version runs, and
// completes the version spec (the generated OpenAPI document).
type TargetChecker interface {
	// Check returns the problems of spec.Target for an API of kind named
	// api owned by owner (paths relative to the spec), or an error when the
	// check itself failed; it fills spec.OpenAPI for generated kinds.
	Check(ctx context.Context, owner, api, kind string, spec *wire.APIVersionSpec) ([]definition.Problem, error)
}

// DefinitionGetter resolves a definition visible to a tenant (the
// registry's Store, or the orchestrator's Definitions).
type DefinitionGetter interface {
	Get(ctx context.Context, tenant, name, version string) (definition.Definition, error)
}

// Targets is the TargetChecker of the system configuration: a tenant
// publishes a service API only for a service it owns, an orchestration API
// for a definition it may run (config-dir ones its uses list, and its own
// published ones), a prompt API for a prompt API visible to it, a model
// API for a model it may use. What it may not use is "not found", as
// everywhere.
type Targets struct {
	Config      *sysconfig.Registry
	Definitions DefinitionGetter
	// Prompts returns the current prompt APIs; nil: none.
	Prompts func() *prompt.Catalog
}

// Check implements TargetChecker.
func (t Targets) Check(ctx context.Context, owner, api, kind string, spec *wire.APIVersionSpec) ([]definition.Problem, error) {
	var p problems
	generated := kind != wire.APIKindService
	if generated && len(bytes.TrimSpace(spec.OpenAPI)) > 0 {
		p.add("openapi", "is generated for %s APIs; leave it out", kind)
		return p, nil
	}
	snap := t.Config.Current()
	tg := spec.Target
	switch kind {
	case wire.APIKindService:
		if svc, ok := snap.Service(tg.Service); !ok || svc.Owner != owner {
			p.add("target.service", "tenant %s owns no service %q (a service API publishes a service its tenant owns)", owner, tg.Service)
		}
	case wire.APIKindOrchestration:
		d, err := t.Definitions.Get(ctx, owner, tg.Definition, tg.DefinitionVersion)
		if err != nil {
			if errors.Is(err, registry.ErrNotFound) || errors.Is(err, orchestrator.ErrNotFound) {
				p.add("target.definition", "no definition %s@%s for tenant %s", tg.Definition, tg.DefinitionVersion, owner)
				return p, nil
			}
			return nil, fmt.Errorf("resolve definition %s@%s: %w", tg.Definition, tg.DefinitionVersion, err)
		}
		spec.OpenAPI = orchestrationOpenAPI(api, spec.Version, &d)
	case wire.APIKindPrompt:
		var pa *prompt.API
		if t.Prompts != nil {
			pa, _ = t.Prompts().Get(owner, tg.Prompt, tg.PromptVersion)
		}
		if pa == nil {
			p.add("target.prompt", "no prompt API %s@%s visible to tenant %s", tg.Prompt, tg.PromptVersion, owner)
			return p, nil
		}
		spec.OpenAPI = promptOpenAPI(api, spec.Version, pa)
	case wire.APIKindModel:
		if !snap.MayUseModel(owner, tg.Model) {
			p.add("target.model", "tenant %s may use no model %q", owner, tg.Model)
			return p, nil
		}
		spec.OpenAPI = modelOpenAPI(api, spec.Version, tg.Model)
	}
	return p, nil
}

// The generated OpenAPI documents describe the one operation a consumer
// calls: POST /v1/catalog/{api}/call.

func callDoc(api, version, summary string, request, response any, status string) json.RawMessage {
	errResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
			"type": "object", "properties": map[string]any{"error": map[string]any{"type": "object", "properties": map[string]any{
				"code": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"},
				"details": map[string]any{"type": "array", "items": map[string]any{"type": "object"}}}}}}}}}
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": api, "version": version},
		"paths": map[string]any{
			"/v1/catalog/" + url.PathEscape(api) + "/call": map[string]any{"post": map[string]any{
				"operationId": "call",
				"summary":     summary,
				"parameters": []any{map[string]any{"name": "version", "in": "query", "required": false,
					"description": "The version to call (" + version + "); the newest published one when omitted.", "schema": map[string]any{"type": "string"}}},
				"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": request}}},
				"responses": map[string]any{
					status: map[string]any{"description": "Served.", "content": map[string]any{"application/json": map[string]any{"schema": response}}},
					"403":  errResp("No active subscription (subscription_required): request one."),
					"404":  errResp("No such API or version for you."),
					"410":  errResp("The version is retired; details name the successor."),
					"429":  errResp("Over the plan's rate limit (rate_limited) or quota (quota_exceeded, with when it resets)."),
				},
				"security": []any{map[string]any{"bearer": []any{}}},
			}},
		},
		"components": map[string]any{"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
	}
	b, _ := json.Marshal(doc)
	return b
}

func schemaOr(raw json.RawMessage, def map[string]any) any {
	if len(bytes.TrimSpace(raw)) == 0 {
		return def
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return def
	}
	return v
}

func orchestrationOpenAPI(api, version string, d *definition.Definition) json.RawMessage {
	call := map[string]any{"type": "object", "description": "The run started in the owner's tenant; poll status_url.",
		"properties": map[string]any{"api": str(), "version": str(), "id": str(), "run_id": str(), "definition": str(), "status_url": str()}}
	summary := "Start " + d.Ref()
	if d.Description != "" {
		summary += ": " + d.Description
	}
	return callDoc(api, version, summary, schemaOr(d.InputSchema, map[string]any{"type": "object"}), call, "202")
}

func promptOpenAPI(api, version string, p *prompt.API) json.RawMessage {
	out := map[string]any{"type": "object", "properties": map[string]any{
		"api": str(), "version": str(), "model": str(),
		"output":        schemaOr(p.Output, map[string]any{"type": "string"}),
		"finish_reason": str(), "usage": map[string]any{"type": "object"}, "attempts": map[string]any{"type": "integer"}}}
	summary := "Run the prompt API " + p.Ref()
	if p.Description != "" {
		summary += ": " + p.Description
	}
	return callDoc(api, version, summary, schemaOr(p.Variables, map[string]any{"type": "object"}), out, "200")
}

func modelOpenAPI(api, version, model string) json.RawMessage {
	req := map[string]any{"type": "object", "required": []any{"messages"}, "description": "An OpenAI-shaped chat completion request; model is set to " + model + " and stream is not supported.",
		"properties": map[string]any{"messages": map[string]any{"type": "array", "items": map[string]any{"type": "object"}},
			"max_tokens": map[string]any{"type": "integer"}, "temperature": map[string]any{"type": "number"}}}
	resp := map[string]any{"type": "object", "description": "An OpenAI-shaped chat completion."}
	return callDoc(api, version, "Chat completion with the model "+model, req, resp, "200")
}

func str() map[string]any { return map[string]any{"type": "string"} }
