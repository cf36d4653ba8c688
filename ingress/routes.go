package ingress

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
)

// builtinGroup is a group of this package's own Echo handlers.
type builtinGroup struct {
	name, description string
	routes            []*routeSpec
	schemas           map[string]any
}

var (
	anyRole      []auth.Role
	submitters   = []auth.Role{auth.RoleSubmitter}
	approvers    = []auth.Role{auth.RoleApprover}
	admins       = []auth.Role{auth.RoleAdmin}
	idParam      = api.Param{Name: "id", In: "path", Required: true, Description: "Workflow id (as returned at submission).", Schema: str()}
	stepParam    = api.Param{Name: "step", In: "path", Required: true, Description: "Approval step id.", Schema: str()}
	nameParam    = api.Param{Name: "name", In: "path", Required: true, Description: "Definition name.", Schema: str()}
	versionParam = api.Param{Name: "version", In: "path", Required: true, Description: `Definition version ("latest" on GET).`, Schema: str()}
)

func route(method, path string, roles []auth.Role, h echo.HandlerFunc, doc api.Operation) *routeSpec {
	return &routeSpec{method: method, path: path, roles: roles, h: h, doc: doc, record: true}
}

// builtinGroups are the /v1 routes and the operational endpoints.
func (s *Server) builtinGroups() []builtinGroup {
	watch := route(http.MethodGet, "/v1/workflows/{id}/events", anyRole, s.watchWorkflow, api.Operation{
		ID: "watchWorkflow", Summary: "Stream status changes (Server-Sent Events) until the workflow closes",
		Description: "Events: `status` (data: the whole Status, id: its seq), `error` (data: an Error that did not end the stream), " +
			"`end` (the workflow closed), `shutdown` (data: `{\"reason\", \"message\"}`; reason `server_shutdown`: the server is stopping, " +
			"or `max_age`: the stream lasted " + s.cfg.MaxStreamAge.String() + ", its maximum; reconnect). " +
			"Comments `: keep-alive` every " + s.cfg.SSEHeartbeat.String() + ".",
		Params: []api.Param{idParam},
		Responses: map[int]api.Response{200: {Description: "An event stream.", ContentType: "text/event-stream", Schema: str()},
			404: errResp("No such workflow in your tenant.")},
	})
	watch.streaming = true

	workflowsGroup := builtinGroup{name: "workflows", description: "Submit, inspect, watch and cancel orchestrations.", routes: []*routeSpec{
		route(http.MethodPost, "/v1/workflows", submitters, s.startWorkflow, api.Operation{
			ID: "startWorkflow", Summary: "Start an orchestration",
			Description: "Starts a published definition (`definition` name, optional `version`, latest when omitted) or an inline " +
				"definition (`definition` object, where the tenant allows it). `input` is validated against the definition's " +
				"input schema. With an `Idempotency-Key` header the same key and body return the existing workflow (200), " +
				"never a second start; the same key with another body is 409.",
			Params:  []api.Param{{Name: "Idempotency-Key", In: "header", Description: "1-255 visible ASCII characters; makes the submission idempotent per tenant.", Schema: str()}},
			Request: &api.Content{Required: true, Schema: api.Ref("StartRequest")},
			Responses: map[int]api.Response{
				201: {Description: "Started.", Schema: api.Ref("StartResponse"), Headers: map[string]string{"Location": "The status URL."}},
				200: {Description: "Idempotent retry: the workflow started earlier with this key and body.", Schema: api.Ref("StartResponse"), Headers: map[string]string{"Idempotent-Replayed": "true"}},
				403: errResp("Missing role, or inline definitions not allowed for the tenant."),
				404: errResp("No such definition or version."),
				409: errResp("The Idempotency-Key was used with another body."),
				422: errResp("The input (or inline definition) is invalid; details locate each problem."),
			},
		}),
		route(http.MethodGet, "/v1/workflows", anyRole, s.listWorkflows, api.Operation{
			ID: "listWorkflows", Summary: "List orchestrations of your tenant (running first, then the most recently closed)",
			Params: []api.Param{
				{Name: "status", In: "query", Description: "Filter by state.", Schema: enumOf("running", "succeeded", "failed", "cancelled", "terminated", "timed-out")},
				{Name: "definition", In: "query", Description: "Filter by definition name.", Schema: str()},
				{Name: "started_after", In: "query", Description: "RFC 3339 time (inclusive).", Schema: dateTime()},
				{Name: "started_before", In: "query", Description: "RFC 3339 time (exclusive).", Schema: dateTime()},
				{Name: "limit", In: "query", Description: "Page size, 1-100 (default 20).", Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": 100}},
				{Name: "cursor", In: "query", Description: "next_cursor of the previous page.", Schema: str()},
			},
			Responses: map[int]api.Response{200: {Description: "One page.", Schema: api.Ref("WorkflowPage")}},
		}),
		route(http.MethodGet, "/v1/workflows/{id}", anyRole, s.getWorkflow, api.Operation{
			ID: "getWorkflow", Summary: "Status of an orchestration: steps, outputs, pending approvals, result or failure",
			Params: []api.Param{idParam},
			Responses: map[int]api.Response{200: {Description: "The status.", Schema: api.Ref("Status")},
				404: errResp("No such workflow in your tenant."), 503: errResp("The workflow did not answer its status query (no worker?).")},
		}),
		route(http.MethodGet, "/v1/workflows/{id}/input", anyRole, s.getWorkflowInput, api.Operation{
			ID: "getWorkflowInput", Summary: "What an orchestration was started with: input, definition as resolved at start, submitter, labels",
			Params: []api.Param{idParam},
			Responses: map[int]api.Response{200: {Description: "The start input.", Schema: api.Ref("RunInput")},
				404: errResp("No such workflow in your tenant.")},
		}),
		watch,
		route(http.MethodPost, "/v1/workflows/{id}/cancel", submitters, s.cancelWorkflow, api.Operation{
			ID: "cancelWorkflow", Summary: "Request cancellation; compensations of completed steps run",
			Params:      []api.Param{idParam},
			Description: "Only the workflow's submitter (the same user, or the same key when it has no user) or an admin of the tenant may cancel it.",
			Responses: map[int]api.Response{202: {Description: "Cancellation requested.", Schema: api.Ref("CancelResponse")},
				403: errResp("Missing role, or you are neither the workflow's submitter nor an admin (not_submitter)."),
				404: errResp("No such workflow in your tenant."), 409: errResp("The workflow has already closed.")},
		}),
	}}

	approvalsGroup := builtinGroup{name: "approvals", description: "Human decisions on approval steps.", routes: []*routeSpec{
		route(http.MethodGet, "/v1/approvals", approvers, s.listApprovals, api.Operation{
			ID: "listApprovals", Summary: "Approval steps waiting for you (by role or user) across running workflows of your tenant",
			Responses: map[int]api.Response{200: {Description: "Pending approvals, oldest first.", Schema: api.Ref("Approvals")}},
		}),
		route(http.MethodPost, "/v1/workflows/{id}/approvals/{step}", approvers, s.decide, api.Operation{
			ID: "decide", Summary: "Approve or reject a waiting approval step (synchronous)",
			Params:  []api.Param{idParam, stepParam},
			Request: &api.Content{Required: true, Schema: api.Ref("DecisionRequest")},
			Responses: map[int]api.Response{
				200: {Description: "The vote was accepted.", Schema: api.Ref("DecisionResult")},
				403: errResp("You are not an approver of this step."),
				404: errResp("No such workflow or step."),
				409: errResp("The step is not waiting, or you already voted."),
			},
		}),
	}}

	definitionsGroup := builtinGroup{name: "definitions", description: "Orchestration definitions.", routes: []*routeSpec{
		route(http.MethodGet, "/v1/definitions", anyRole, s.listDefinitions, api.Operation{
			ID: "listDefinitions", Summary: "Every definition version visible to your tenant",
			Responses: map[int]api.Response{200: {Description: "Definitions.", Schema: api.Ref("Definitions")}},
		}),
		route(http.MethodGet, "/v1/definitions/{name}/versions/{version}", anyRole, s.getDefinition, api.Operation{
			ID: "getDefinition", Summary: "One definition version",
			Params: []api.Param{nameParam, versionParam},
			Responses: map[int]api.Response{200: {Description: "The definition.", Schema: api.Ref("Definition")},
				404: errResp("No such definition or version.")},
		}),
		route(http.MethodPut, "/v1/definitions/{name}/versions/{version}", admins, s.putDefinition, api.Operation{
			ID: "publishDefinition", Summary: "Publish a new definition version (validated; published versions are immutable)",
			Params:  []api.Param{nameParam, versionParam},
			Request: &api.Content{Required: true, Schema: api.Ref("Definition")},
			Responses: map[int]api.Response{
				201: {Description: "Published.", Schema: api.Ref("DefinitionInfo")},
				200: {Description: "This version was already published with the same content (an idempotent retry).", Schema: api.Ref("DefinitionInfo")},
				409: errResp("This version is already published with another content."),
				415: errResp("Send application/json or application/yaml."),
				422: errResp("The definition is invalid; details locate each problem."),
			},
		}),
	}}

	openapi := route(http.MethodGet, "/v1/openapi.json", nil, s.openAPI, api.Operation{
		ID: "openapi", Summary: "This OpenAPI 3.1 document",
		Responses: map[int]api.Response{200: {Description: "The document.", Schema: map[string]any{"type": "object"}}},
	})
	openapi.public = true
	meGroup := builtinGroup{name: "me", description: "Who the API key is.", routes: []*routeSpec{
		route(http.MethodGet, "/v1/me", anyRole, s.me, api.Operation{
			ID: "me", Summary: "The tenant, key id, user and roles of your API key",
			Description: "Lets a client (the web console, a script) offer only what the key may do; every route still checks.",
			Responses:   map[int]api.Response{200: {Description: "The caller.", Schema: api.Ref("Me")}},
		}),
	}}

	ops := []*routeSpec{
		route(http.MethodGet, "/healthz", nil, s.healthz, api.Operation{
			ID: "healthz", Summary: "The process is alive",
			Responses: map[int]api.Response{200: {Description: "Alive.", Schema: api.Ref("Health")}},
		}),
		route(http.MethodGet, "/readyz", nil, s.readyz, api.Operation{
			ID: "readyz", Summary: "Temporal, Kafka and ClickHouse are reachable (each named)",
			Responses: map[int]api.Response{200: {Description: "Ready.", Schema: api.Ref("Ready")},
				503: {Description: "Not ready; the failed checks say why.", Schema: api.Ref("Ready")}},
		}),
	}
	if !s.cfg.NoMetricsRoute {
		ops = append(ops, route(http.MethodGet, "/metrics", nil, s.metricsHandler(), api.Operation{
			ID: "metrics", Summary: "Prometheus metrics",
			Responses: map[int]api.Response{200: {Description: "Metrics in the Prometheus text format.", ContentType: "text/plain", Schema: str()}},
		}))
	}
	for _, r := range ops {
		r.public, r.record = true, false
	}
	ops = append(ops, openapi)
	opsGroup := builtinGroup{name: "operations", description: "Probes, metrics and this document.", routes: ops, schemas: builtinSchemas()}

	return []builtinGroup{workflowsGroup, approvalsGroup, definitionsGroup, meGroup, opsGroup}
}

func errResp(desc string) api.Response {
	return api.Response{Description: desc, Schema: api.Ref("Error")}
}
