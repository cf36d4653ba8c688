// Package promptapi is the REST face of the prompt APIs
// (activities/llm/prompt): GET /v1/apis, GET and POST /v1/apis/{name},
// mounted on the ingress as an api.Group of plain net/http handlers. The
// catalogue and the runner stay in the model gateway core.
package promptapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gateflow/gateflow/activities/llm/prompt"
	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/chatapi"
	"github.com/gateflow/gateflow/ingress/httperr"
	"github.com/gateflow/gateflow/workflows/definition"
)

// HTTPError maps a Run error to the API error answered: 404 for an
// unknown API, 502 invalid_model_output for an answer that failed the
// output schema twice (details locate the problems), the model gateway's
// mapping (chatapi.Error) for model failures; invalid variables stay a
// *definition.ValidationError (422 with located details).
func HTTPError(err error, models func() []string) error {
	var oe *prompt.OutputError
	switch {
	case errors.Is(err, prompt.ErrNotFound):
		return api.Errorf(http.StatusNotFound, "api_not_found", "%s", err.Error())
	case errors.As(err, &oe):
		e := &api.Error{Status: http.StatusBadGateway, Code: "invalid_model_output", Message: oe.Error(), Details: []api.Detail{}}
		for _, p := range oe.Problems {
			e.Details = append(e.Details, api.Detail{Path: p.Path, Message: p.Message})
		}
		return e
	}
	var ve *definition.ValidationError
	if errors.As(err, &ve) {
		return err
	}
	return chatapi.Error(err, models)
}

// RoutesOptions tune the routes; zero values take the defaults.
type RoutesOptions struct {
	// MaxBodyBytes bounds the variables of a call (default 4 MiB).
	MaxBodyBytes int64
}

type routes struct {
	r    *prompt.Runner
	opts RoutesOptions
}

// Routes returns the prompt API route group to mount on the ingress:
//
//	GET  /v1/apis          the APIs visible to the caller's tenant, with their schemas
//	GET  /v1/apis/{name}   one API (?version=, latest when omitted)
//	POST /v1/apis/{name}   run it: the body is the variables object (?version=)
//
// Each API open to every tenant also appears in /v1/openapi.json as its own
// operation (POST /v1/apis/<name>) with its variables as the request
// schema and its output schema in the response: the document is built from
// the current catalog each time it is served, so a reload shows at once.
func Routes(r *prompt.Runner, opts RoutesOptions) api.Group {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = prompt.MaxVariablesBytes
	}
	h := &routes{r: r, opts: opts}
	nameParam := api.Param{Name: "name", In: "path", Required: true, Description: "Prompt API name.", Schema: map[string]any{"type": "string"}}
	versionParam := api.Param{Name: "version", In: "query", Description: "Version; the latest when omitted.", Schema: map[string]any{"type": "string"}}
	return api.Group{
		Name: "prompt-apis",
		Description: "Prompt templates published as APIs: a model, system/user templates, a variables schema and an " +
			"optional output schema (prompts/*.yaml in the config directory).",
		Routes: []api.Route{
			{
				Method: http.MethodGet, Path: "/v1/apis", Handler: http.HandlerFunc(h.list),
				Doc: api.Operation{ID: "listPromptAPIs", Summary: "Prompt APIs visible to your tenant, every version, with their schemas",
					Responses: map[int]api.Response{200: {Description: "The APIs.", Schema: api.Ref("PromptAPIs")}}},
			},
			{
				Method: http.MethodGet, Path: "/v1/apis/{name}", Handler: http.HandlerFunc(h.get),
				Doc: api.Operation{ID: "getPromptAPI", Summary: "One prompt API with its schemas",
					Params: []api.Param{nameParam, versionParam},
					Responses: map[int]api.Response{200: {Description: "The API.", Schema: api.Ref("PromptAPI")},
						404: {Description: "No such API (or version) for your tenant.", Schema: api.Ref("Error")}}},
			},
			{
				Method: http.MethodPost, Path: "/v1/apis/{name}", Roles: auth.ModelRoles,
				// Model calls outlive the ingress request timeout; the
				// API's (or the runner's) timeout bounds a run instead.
				Streaming: true, MaxBodyBytes: opts.MaxBodyBytes,
				Handler: http.HandlerFunc(h.run),
				Doc:     runOperation("runPromptAPI", "Run a prompt API", []api.Param{nameParam, versionParam}, map[string]any{"type": "object", "description": "The variables, checked against the API's variables schema."}, map[string]any{}),
			},
		},
		Schemas: map[string]any{
			"PromptAPI": map[string]any{
				"type": "object",
				"properties": map[string]any{
					"name": str(), "version": str(), "description": str(),
					"model":           map[string]any{"type": "string", "description": "Alias or provider/model."},
					"response_format": map[string]any{"type": "string", "enum": []any{"text", "json"}},
					"variables":       map[string]any{"type": "object", "description": "JSON Schema of the variables (the request body)."},
					"output":          map[string]any{"type": "object", "description": "JSON Schema of the output, when the API has one."},
					"path":            map[string]any{"type": "string", "description": "Where to POST the variables."},
				},
				"required": []any{"name", "version", "model", "variables", "path"},
			},
			"PromptAPIs": map[string]any{"type": "object", "properties": map[string]any{"items": map[string]any{"type": "array", "items": api.Ref("PromptAPI")}}, "required": []any{"items"}},
		},
		Docs: h.docs,
	}
}

func str() map[string]any { return map[string]any{"type": "string"} }

// runOperation documents a run: the request is the variables, the answer
// carries the output.
func runOperation(id, summary string, params []api.Param, variables, output any) api.Operation {
	return api.Operation{
		ID: id, Summary: summary,
		Description: "The body is the variables object. The answer's `output` is the model's answer: the decoded JSON, checked " +
			"against the output schema, for JSON APIs (an answer that fails it is asked for once more, then the call fails " +
			"with 502 invalid_model_output and the problems located in details), else the text. Invalid variables are 422 " +
			"with each problem located (`variables.city`).",
		Params:  params,
		Request: &api.Content{Required: true, Schema: variables},
		Responses: map[int]api.Response{
			200: {Description: "The answer.", Schema: map[string]any{
				"type": "object",
				"properties": map[string]any{
					"api": str(), "version": str(),
					"model":         map[string]any{"type": "string", "description": "The provider/model that answered."},
					"output":        output,
					"finish_reason": str(),
					"usage":         map[string]any{"type": "object", "description": "Tokens and cost_usd of every model call of the run."},
					"attempts":      map[string]any{"type": "integer", "description": "2 when the first answer failed the output schema."},
				},
				"required": []any{"api", "version", "model", "output", "usage"},
			}},
			404: {Description: "No such API (or version) for your tenant, or unknown model.", Schema: api.Ref("Error")},
			422: {Description: "The variables are invalid; details locate each problem.", Schema: api.Ref("Error")},
			429: {Description: "Token budget spent (budget_exceeded, Retry-After), provider or ingress rate limit.", Schema: api.Ref("Error")},
			502: {Description: "The model's answer failed the output schema twice (invalid_model_output), or the provider failed.", Schema: api.Ref("Error")},
			503: {Description: "The provider is overloaded, or the token budget cannot be checked.", Schema: api.Ref("Error")},
			504: {Description: "The provider did not answer in time.", Schema: api.Ref("Error")},
		},
	}
}

// docs documents each API open to every tenant as its own operation, from
// the current catalog (tenant-restricted APIs stay out of the public
// document).
func (h *routes) docs() []api.DocRoute {
	apis := h.r.Catalog().Latest("")
	out := make([]api.DocRoute, 0, len(apis))
	for _, a := range apis {
		var output any = map[string]any{"type": "string", "description": "The model's text answer."}
		switch {
		case len(a.Output) > 0:
			output = a.Output
		case a.JSON():
			output = map[string]any{"description": "The model's JSON answer."}
		}
		op := runOperation("runPromptAPI_"+a.Name, "Prompt API "+a.Name+" (version "+a.Version+")", []api.Param{
			{Name: "version", In: "query", Description: "Version; " + a.Version + " (the latest) when omitted.", Schema: map[string]any{"type": "string"}},
		}, a.Variables, output)
		if a.Description != "" {
			op.Description = a.Description + "\n\n" + op.Description
		}
		out = append(out, api.DocRoute{Method: http.MethodPost, Path: "/v1/apis/" + a.Name, Roles: auth.ModelRoles, Doc: op})
	}
	return out
}

// apiInfo is how an API is listed.
type apiInfo struct {
	Name           string          `json:"name"`
	Version        string          `json:"version"`
	Description    string          `json:"description,omitempty"`
	Model          string          `json:"model"`
	ResponseFormat string          `json:"response_format"`
	Variables      json.RawMessage `json:"variables"`
	Output         json.RawMessage `json:"output,omitempty"`
	Path           string          `json:"path"`
}

func info(a *prompt.API) apiInfo {
	return apiInfo{Name: a.Name, Version: a.Version, Description: a.Description, Model: a.Model,
		ResponseFormat: a.ResponseFormat, Variables: a.Variables, Output: a.Output,
		Path: "/v1/apis/" + a.Name + "?version=" + a.Version}
}

func caller(r *http.Request) auth.Principal {
	p, _ := api.Caller(r.Context())
	return p
}

// query reads the only query parameter the routes take.
func query(r *http.Request, allowed ...string) (map[string]string, error) {
	q := r.URL.Query()
	out := map[string]string{}
	var details []api.Detail
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		switch {
		case !ok:
			details = append(details, api.Detail{Path: k, Message: "unknown query parameter"})
		case len(vs) != 1:
			details = append(details, api.Detail{Path: k, Message: "must be given once"})
		case k == "version" && !definition.VersionPattern.MatchString(vs[0]):
			details = append(details, api.Detail{Path: k, Message: "must match " + definition.VersionPattern.String()})
		default:
			out[k] = vs[0]
		}
	}
	if len(details) > 0 {
		return nil, &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: details[0].Path + ": " + details[0].Message, Details: details}
	}
	return out, nil
}

func (h *routes) list(w http.ResponseWriter, r *http.Request) {
	if _, err := query(r); err != nil {
		httperr.Write(w, r, err)
		return
	}
	apis := h.r.Catalog().List(caller(r).Tenant)
	items := make([]apiInfo, 0, len(apis))
	for _, a := range apis {
		items = append(items, info(a))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (h *routes) get(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, "version")
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	a, err := h.r.Resolve(caller(r).Tenant, r.PathValue("name"), q["version"])
	if err != nil {
		httperr.Write(w, r, HTTPError(err, nil))
		return
	}
	api.WriteJSON(w, http.StatusOK, info(a))
}

func (h *routes) run(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, "version")
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	body, err := api.ReadBody(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	if err := api.CheckDepth(body, api.DefaultMaxDepth); err != nil {
		httperr.Write(w, r, &api.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: err.Error(), Details: []api.Detail{{Path: "variables", Message: err.Error()}}})
		return
	}
	if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		var v any
		err := api.DecodeJSON(body, &v, 0, "variables") // locates the syntax error
		httperr.Write(w, r, err)
		return
	}
	p := caller(r)
	res, err := h.r.Run(r.Context(), prompt.Call{
		Tenant: p.Tenant, KeyID: p.KeyID, RequestID: api.RequestID(r.Context()),
		Name: r.PathValue("name"), Version: q["version"], Variables: body,
	})
	if err != nil {
		httperr.Write(w, r, HTTPError(err, nil))
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}
