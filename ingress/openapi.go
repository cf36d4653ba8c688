package ingress

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/workflows/definition"
)

// OpenAPI returns the OpenAPI 3.1 document of every mounted route. It is
// built from the same route table that registers the Echo routes, so the
// two cannot drift (a test checks it against e.Routes()).
func (s *Server) OpenAPI() map[string]any {
	s.mu.Lock()
	routes := append([]*routeSpec(nil), s.routes...)
	groups := append([]groupDoc(nil), s.groups...)
	docs := append([]groupDocs(nil), s.docs...)
	schemas := make(map[string]any, len(s.schemas))
	for k, v := range s.schemas {
		schemas[k] = v
	}
	s.mu.Unlock()

	paths := map[string]any{}
	for _, rs := range routes {
		if rs.page {
			continue // pages are not API operations
		}
		item, _ := paths[api.DocPath(rs.path)].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[api.DocPath(rs.path)] = item
		}
		op := operation(rs)
		if rs.streaming {
			s.documentStream(op)
		}
		item[strings.ToLower(rs.method)] = op
	}
	for _, d := range docs {
		for _, dr := range d.docs() {
			item, _ := paths[dr.Path].(map[string]any)
			if item == nil {
				item = map[string]any{}
				paths[dr.Path] = item
			}
			if _, mounted := item[strings.ToLower(dr.Method)]; !mounted {
				item[strings.ToLower(dr.Method)] = operation(&routeSpec{method: dr.Method, path: dr.Path, group: d.group, roles: dr.Roles, doc: dr.Doc})
			}
		}
	}
	tags := make([]any, 0, len(groups))
	for _, g := range groups {
		tags = append(tags, map[string]any{"name": g.name, "description": g.description})
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "Gateflow API",
			"version": "1",
			"description": "The front door of Gateflow: submit orchestrations, decide approvals, read status. " +
				"Authenticate with an API key: `Authorization: Bearer gf_<id>_<secret>`. Every error has the shape " +
				"`{\"error\": {\"code\", \"message\", \"details\": [{\"path\", \"message\"}]}}`.",
		},
		"servers":  []any{map[string]any{"url": "/"}},
		"tags":     tags,
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []any{}}},
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "gf_<id>_<secret>"},
			},
			"headers": map[string]any{
				"RateLimit-Limit":     header("Size of the tightest token bucket (key or tenant)."),
				"RateLimit-Remaining": header("Whole tokens left in it."),
				"RateLimit-Reset":     header("Seconds until it is full again."),
				"Retry-After":         header("Seconds to wait before retrying (429)."),
				"X-Request-Id":        header("The request id (yours when sane, else generated)."),
			},
		},
	}
}

// documentStream adds the bounds of long-lived responses (api.OpenStream)
// to a streaming route's operation.
func (s *Server) documentStream(op map[string]any) {
	bound := func(n int) string {
		if n <= 0 {
			return "no cap"
		}
		return strconv.Itoa(n)
	}
	dur := func(d time.Duration) string {
		if d <= 0 {
			return "no bound"
		}
		return d.String()
	}
	c := s.cfg
	desc, _ := op["description"].(string)
	op["description"] = strings.TrimSpace(desc + "\n\n" + fmt.Sprintf("Long-lived response (event streams, streamed chat completions, MCP requests): "+
		"at most %s open per API key and %s per tenant (429 `too_many_streams` beyond, with Retry-After); a stream ends after %s "+
		"with its protocol's shutdown end (SSE status: `event: shutdown`, reason `max_age`; chat: a `data: {\"error\"}` chunk with code "+
		"`stream_max_age`; MCP: the tool call is cancelled) and reconnecting is expected; a write blocked for %s (a client that stopped "+
		"reading) ends it.", bound(c.StreamsPerKey), bound(c.StreamsPerTenant), dur(c.MaxStreamAge), dur(c.StreamWriteTimeout)))
	const tooMany = "The key or tenant holds as many open streams as allowed (`too_many_streams`, Retry-After)."
	responses, _ := op["responses"].(map[string]any)
	if r, ok := responses["429"].(map[string]any); ok {
		d, _ := r["description"].(string)
		r["description"] = strings.TrimSpace(d + " " + tooMany)
	}
}

func header(desc string) map[string]any {
	return map[string]any{"description": desc, "schema": map[string]any{"type": "string"}}
}

// operation documents one route, adding the error answers of the
// middleware chain.
func operation(rs *routeSpec) map[string]any {
	d := rs.doc
	op := map[string]any{"tags": []any{rs.group}}
	if d.ID != "" {
		op["operationId"] = d.ID
	}
	if d.Summary != "" {
		op["summary"] = d.Summary
	}
	desc := d.Description
	if !rs.public {
		if len(rs.roles) > 0 {
			desc = strings.TrimSpace(desc + "\n\nRoles: " + roleList(rs.roles) + " (admin holds every role).")
		}
	} else {
		op["security"] = []any{}
	}
	if desc != "" {
		op["description"] = desc
	}
	var params []any
	for _, p := range d.Params {
		sch := p.Schema
		if sch == nil {
			sch = str()
		}
		m := map[string]any{"name": p.Name, "in": p.In, "schema": sch}
		if p.Required || p.In == "path" {
			m["required"] = true
		}
		if p.Description != "" {
			m["description"] = p.Description
		}
		params = append(params, m)
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if d.Request != nil {
		ct := d.Request.ContentType
		if ct == "" {
			ct = "application/json"
		}
		content := map[string]any{ct: map[string]any{"schema": d.Request.Schema}}
		if rs.path == "/v1/definitions/{name}/versions/{version}" {
			content["application/yaml"] = map[string]any{"schema": d.Request.Schema}
		}
		op["requestBody"] = map[string]any{"required": d.Request.Required, "content": content}
	}

	responses := map[string]any{}
	for code, r := range d.Responses {
		responses[strconv.Itoa(code)] = response(r, !rs.public)
	}
	addErr := func(code int, desc string) {
		if _, ok := responses[strconv.Itoa(code)]; !ok {
			responses[strconv.Itoa(code)] = response(errResp(desc), false)
		}
	}
	if !rs.public {
		addErr(http.StatusUnauthorized, "Missing or invalid API key.")
		addErr(http.StatusForbidden, "The key lacks the role this route needs.")
		addErr(http.StatusTooManyRequests, "Rate limit of the key or tenant exceeded; see Retry-After.")
	}
	if len(d.Params) > 0 || d.Request != nil {
		addErr(http.StatusBadRequest, "Malformed request; details locate each problem.")
	}
	if d.Request != nil {
		addErr(http.StatusRequestEntityTooLarge, "The body is larger than the limit.")
	}
	addErr(http.StatusInternalServerError, "Internal error.")
	op["responses"] = responses
	return op
}

func response(r api.Response, limited bool) map[string]any {
	m := map[string]any{"description": r.Description}
	if r.Schema != nil {
		ct := r.ContentType
		if ct == "" {
			ct = "application/json"
		}
		m["content"] = map[string]any{ct: map[string]any{"schema": r.Schema}}
	}
	headers := map[string]any{"X-Request-Id": map[string]any{"$ref": "#/components/headers/X-Request-Id"}}
	for name, desc := range r.Headers {
		headers[name] = header(desc)
	}
	if limited {
		for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
			headers[h] = map[string]any{"$ref": "#/components/headers/" + h}
		}
	}
	m["headers"] = headers
	return m
}

// JSON Schema helpers.

func str() map[string]any      { return map[string]any{"type": "string"} }
func integer() map[string]any  { return map[string]any{"type": "integer"} }
func boolean() map[string]any  { return map[string]any{"type": "boolean"} }
func dateTime() map[string]any { return map[string]any{"type": "string", "format": "date-time"} }
func anyJSON() map[string]any  { return map[string]any{} }
func arr(items any) map[string]any {
	return map[string]any{"type": "array", "items": items}
}

func enumOf(values ...string) map[string]any {
	e := make([]any, len(values))
	for i, v := range values {
		e[i] = v
	}
	return map[string]any{"type": "string", "enum": e}
}

// obj is a closed object schema; required names end with "!".
func obj(props map[string]any, required ...string) map[string]any {
	m := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		sort.Strings(required)
		r := make([]any, len(required))
		for i, n := range required {
			r[i] = n
		}
		m["required"] = r
	}
	return m
}

// open is an object schema that documents its known properties without
// closing it (answers may gain fields).
func open(props map[string]any, required ...string) map[string]any {
	m := obj(props, required...)
	delete(m, "additionalProperties")
	return m
}

func builtinSchemas() map[string]any {
	roles := make([]string, len(auth.BuiltinRoles))
	for i, r := range auth.BuiltinRoles {
		roles[i] = string(r)
	}
	runStates := enumOf("running", "succeeded", "failed", "cancelled", "terminated", "timed-out", "compensated")
	stepKinds := enumOf(definition.Kinds...)
	return map[string]any{
		"Error": obj(map[string]any{
			"error": obj(map[string]any{
				"code":    str(),
				"message": str(),
				"details": arr(obj(map[string]any{"path": str(), "message": str()}, "path", "message")),
			}, "code", "message", "details"),
		}, "error"),
		"StartRequest": obj(map[string]any{
			"definition": map[string]any{"oneOf": []any{
				map[string]any{"type": "string", "description": "Name of a published definition."},
				api.Ref("Definition"),
			}},
			"version": map[string]any{"type": "string", "description": "Version of a published definition; latest when omitted."},
			"input":   map[string]any{"type": "object", "description": "Validated against the definition's input schema."},
			"labels":  map[string]any{"type": "object", "additionalProperties": str(), "maxProperties": maxLabels, "description": "Copied into every call record of the run."},
		}, "definition"),
		"StartResponse": open(map[string]any{
			"id": str(), "run_id": str(), "definition": str(), "version": str(), "status_url": str(), "events_url": str(),
		}, "id", "run_id", "definition", "version", "status_url", "events_url"),
		"Me": open(map[string]any{
			"tenant": str(), "key_id": str(), "user": str(),
			"roles": arr(map[string]any{"type": "string", "description": "Roles of the key: " + strings.Join(roles, ", ") + " or custom ones (admin holds every role)."}),
		}, "tenant", "key_id", "roles"),
		"RunInput": open(map[string]any{
			"id": str(), "run_id": str(),
			"input":        map[string]any{"type": "object", "description": "The input the run was submitted with."},
			"definition":   api.Ref("Definition"),
			"submitted_by": map[string]any{"type": "string", "description": "User of the submitting key, else its id."},
			"labels":       map[string]any{"type": "object", "additionalProperties": str()},
		}, "id", "run_id", "definition"),
		"CancelResponse": open(map[string]any{"id": str(), "state": enumOf("cancel_requested")}, "id", "state"),
		"Identity":       open(map[string]any{"key_id": str(), "user": str(), "roles": arr(str())}),
		"Approvers": open(map[string]any{
			"roles": arr(map[string]any{"type": "string", "description": "Key roles, e.g. " + strings.Join(roles, ", ") + " or custom ones."}),
			"users": arr(str()),
		}),
		"Vote": open(map[string]any{"by": api.Ref("Identity"), "decision": enumOf("approve", "reject"), "comment": str(), "at": dateTime()}),
		"PendingApproval": open(map[string]any{
			"step_id": str(), "approvers": api.Ref("Approvers"), "quorum": integer(), "votes": arr(api.Ref("Vote")),
			"since": dateTime(), "deadline": dateTime(), "escalated": boolean(),
		}),
		"StepStatus": open(map[string]any{
			"id": str(), "kind": stepKinds, "state": enumOf("pending", "running", "waiting-approval", "succeeded", "failed", "skipped", "compensated"),
			"attempts": integer(), "started_at": dateTime(), "finished_at": dateTime(), "output": anyJSON(), "output_truncated": boolean(), "error": str(),
		}),
		"Status": open(map[string]any{
			"id": str(), "run_id": str(), "definition": str(), "version": str(), "tenant": str(), "state": runStates,
			"started_at": dateTime(), "closed_at": dateTime(), "steps": arr(api.Ref("StepStatus")),
			"pending_approvals": arr(api.Ref("PendingApproval")), "output": anyJSON(), "error": str(),
			"seq": map[string]any{"type": "integer", "description": "Increases with every change."},
		}, "id", "state", "steps"),
		"WorkflowSummary": open(map[string]any{
			"id": str(), "run_id": str(), "definition": str(), "version": str(), "state": runStates, "started_at": dateTime(), "closed_at": dateTime(),
		}),
		"WorkflowPage": open(map[string]any{"items": arr(api.Ref("WorkflowSummary")), "next_cursor": str()}, "items"),
		"Approval": map[string]any{"allOf": []any{
			api.Ref("PendingApproval"),
			open(map[string]any{"workflow_id": str(), "definition": str(), "version": str()}),
		}},
		"Approvals": open(map[string]any{
			"items": arr(api.Ref("Approval")), "truncated": boolean(), "scanned": integer(),
		}, "items"),
		"DecisionRequest": obj(map[string]any{
			"decision": enumOf("approve", "reject"),
			"comment":  map[string]any{"type": "string", "maxLength": 4096},
		}, "decision"),
		"DecisionResult": open(map[string]any{
			"step_id": str(), "accepted": boolean(), "resolved": boolean(), "outcome": enumOf("approved", "rejected"), "votes": integer(), "quorum": integer(),
		}),
		"DefinitionInfo": open(map[string]any{
			"name": str(), "version": str(), "description": str(), "source": enumOf("file", "api"), "published_at": dateTime(),
		}, "name", "version"),
		"Definitions": open(map[string]any{"items": arr(api.Ref("DefinitionInfo"))}, "items"),
		"Definition": map[string]any{
			"type":        "object",
			"description": "An orchestration definition; see docs/definition.schema.json for every step field.",
			"properties": map[string]any{
				"name": str(), "version": str(), "description": str(),
				"input_schema": map[string]any{"type": "object", "description": "JSON Schema (2020-12) of the input."},
				"vars":         map[string]any{"type": "object"},
				"steps":        arr(open(map[string]any{"id": str(), "kind": stepKinds}, "id", "kind")),
				"output":       anyJSON(),
				"timeout":      map[string]any{"type": "string", "description": "Go duration, e.g. 24h."},
			},
			"required": []any{"steps"},
		},
		"Health": open(map[string]any{"status": enumOf("ok")}, "status"),
		"Ready": open(map[string]any{
			"status": enumOf("ready", "unready"),
			"checks": map[string]any{"type": "object", "additionalProperties": open(map[string]any{
				"ok": boolean(), "error": str(), "latency_ms": map[string]any{"type": "number"},
			})},
		}, "status", "checks"),
	}
}
