package ingress

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/definition/yamlread"
	"github.com/gateflow/gateflow/workflows/orchestrator"
)

// HeaderIdempotencyKey makes a submission idempotent per tenant.
const HeaderIdempotencyKey = "Idempotency-Key"

// caller returns the orchestrator's view of the authenticated principal.
func caller(c echo.Context) orchestrator.Caller {
	ctx := c.Request().Context()
	p, _ := api.Caller(ctx)
	return orchestrator.Caller{Tenant: p.Tenant, KeyID: p.KeyID, User: p.User, Roles: p.Roles, RequestID: api.RequestID(ctx)}
}

// workflowID reads the {id} parameter; a malformed id cannot exist.
func workflowID(c echo.Context) (string, error) {
	id := c.Param("id")
	if !orchestrator.ValidID(id) {
		return "", api.Errorf(http.StatusNotFound, "workflow_not_found", "workflow %q not found", id)
	}
	return id, nil
}

// StartBody is the body of POST /v1/workflows. Definition is either a
// definition name (string) or an inline definition (object).
type StartBody struct {
	Definition json.RawMessage   `json:"definition"`
	Version    string            `json:"version,omitempty"`
	Input      json.RawMessage   `json:"input,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// StartResponse answers POST /v1/workflows.
type StartResponse struct {
	ID         string `json:"id"`
	RunID      string `json:"run_id"`
	Definition string `json:"definition"`
	Version    string `json:"version"`
	StatusURL  string `json:"status_url"`
	EventsURL  string `json:"events_url"`
}

var labelKeyRe = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)

// Limits of submission labels.
const (
	maxLabels     = 16
	maxLabelValue = 256
)

// DecodeStart decodes and checks a submission body; everything it returns
// without error is well-formed (names, JSON object input, labels).
func DecodeStart(body []byte, maxDepth int) (orchestrator.StartRequest, error) {
	var b StartBody
	if err := api.DecodeJSON(body, &b, maxDepth, ""); err != nil {
		return orchestrator.StartRequest{}, err
	}
	req := orchestrator.StartRequest{Version: b.Version, Labels: b.Labels}
	var details []api.Detail
	bad := func(path, msg string) { details = append(details, api.Detail{Path: path, Message: msg}) }
	def := bytes.TrimSpace(b.Definition)
	switch {
	case len(def) == 0 || string(def) == "null":
		bad("definition", "is required: a definition name, or an inline definition object")
	case def[0] == '"':
		if err := json.Unmarshal(def, &req.Definition); err != nil || !orchestrator.ValidName(req.Definition) {
			bad("definition", "must be a definition name (letters, digits, '.', '_', '-')")
		}
		if b.Version != "" && !orchestrator.ValidVersion(b.Version) {
			bad("version", "must be a version (letters, digits, '.', '_', '-')")
		}
	case def[0] == '{':
		var inline definition.Definition
		if err := api.DecodeJSON(def, &inline, maxDepth, "definition"); err != nil {
			return orchestrator.StartRequest{}, err
		}
		req.Inline = &inline
		if b.Version != "" {
			bad("version", "must be omitted with an inline definition")
		}
	default:
		bad("definition", "must be a definition name or an inline definition object")
	}
	if in := bytes.TrimSpace(b.Input); len(in) > 0 && string(in) != "null" {
		if in[0] != '{' {
			bad("input", "must be a JSON object")
		} else {
			req.Input = in
		}
	}
	if len(b.Labels) > maxLabels {
		bad("labels", "must have at most "+strconv.Itoa(maxLabels)+" entries")
	}
	for k, v := range b.Labels {
		if !labelKeyRe.MatchString(k) {
			bad("labels."+k, "label names are lowercase letters, digits, '_', '.', '-' (at most 63)")
		}
		if len(v) > maxLabelValue {
			bad("labels."+k, "must be at most "+strconv.Itoa(maxLabelValue)+" bytes")
		}
	}
	if len(details) > 0 {
		return orchestrator.StartRequest{}, &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: details[0].Path + ": " + details[0].Message, Details: details}
	}
	return req, nil
}

// validIdempotencyKey accepts 1-255 visible ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > orchestrator.MaxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) startWorkflow(c echo.Context) error {
	r := c.Request()
	body, err := api.ReadBody(c.Response(), r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	req, err := DecodeStart(body, s.cfg.MaxJSONDepth)
	if err != nil {
		return err
	}
	if vals, ok := r.Header[HeaderIdempotencyKey]; ok {
		if len(vals) != 1 || !validIdempotencyKey(vals[0]) {
			return &api.Error{Status: http.StatusBadRequest, Code: "invalid_idempotency_key",
				Message: "Idempotency-Key must be one value of 1-255 visible ASCII characters",
				Details: []api.Detail{{Path: "header.Idempotency-Key", Message: "1-255 visible ASCII characters"}}}
		}
		req.IdempotencyKey = vals[0]
	}
	res, err := s.deps.Orchestrator.Start(r.Context(), caller(c), req)
	if err != nil {
		return err
	}
	api.SetWorkflow(r.Context(), res.ID, res.Definition, res.Version)
	status := http.StatusCreated
	if !res.Created {
		status = http.StatusOK
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	loc := "/v1/workflows/" + url.PathEscape(res.ID)
	c.Response().Header().Set("Location", loc)
	return c.JSON(status, StartResponse{
		ID: res.ID, RunID: res.RunID, Definition: res.Definition, Version: res.Version,
		StatusURL: loc, EventsURL: loc + "/events",
	})
}

func (s *Server) getWorkflow(c echo.Context) error {
	id, err := workflowID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	st, err := s.deps.Orchestrator.Status(ctx, caller(c), id)
	if err != nil {
		return err
	}
	api.SetWorkflow(ctx, id, st.Definition, st.Version)
	return c.JSON(http.StatusOK, st)
}

func (s *Server) getWorkflowInput(c echo.Context) error {
	id, err := workflowID(c)
	if err != nil {
		return err
	}
	if err := noQuery(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	in, err := s.deps.Orchestrator.Input(ctx, caller(c), id)
	if err != nil {
		return err
	}
	api.SetWorkflow(ctx, id, in.Definition.Name, in.Definition.Version)
	return c.JSON(http.StatusOK, in)
}

// MeResponse answers GET /v1/me: the caller as its API key makes it.
type MeResponse struct {
	Tenant string   `json:"tenant"`
	KeyID  string   `json:"key_id"`
	User   string   `json:"user,omitempty"`
	Roles  []string `json:"roles"`
}

// me tells a client (the web console, a script) who its key is, so it can
// offer only what the key may do; the routes still check every request.
func (s *Server) me(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	p, _ := api.Caller(c.Request().Context())
	roles := p.Roles
	if roles == nil {
		roles = []string{}
	}
	return c.JSON(http.StatusOK, MeResponse{Tenant: p.Tenant, KeyID: p.KeyID, User: p.User, Roles: roles})
}

// ListResponse answers GET /v1/workflows.
type ListResponse = orchestrator.Page

// listParams are the query parameters of GET /v1/workflows.
var listParams = map[string]bool{"status": true, "definition": true, "started_after": true, "started_before": true, "limit": true, "cursor": true}

// DecodeListQuery parses and checks the list filter; unknown or repeated
// parameters are refused.
func DecodeListQuery(q url.Values) (orchestrator.ListFilter, error) {
	var f orchestrator.ListFilter
	var details []api.Detail
	bad := func(path, msg string) { details = append(details, api.Detail{Path: path, Message: msg}) }
	for _, k := range sortedParamKeys(q) {
		if !listParams[k] {
			bad(k, "unknown query parameter")
			continue
		}
		if len(q[k]) != 1 {
			bad(k, "must be given once")
		}
	}
	f.State = workflows.RunState(q.Get("status"))
	f.Definition = q.Get("definition")
	f.Cursor = q.Get("cursor")
	parseTime := func(name string, dst *time.Time) {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				bad(name, "must be an RFC 3339 time, e.g. 2025-01-31T12:00:00Z")
				return
			}
			*dst = t
		}
	}
	parseTime("started_after", &f.StartedAfter)
	parseTime("started_before", &f.StartedBefore)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > orchestrator.MaxPageSize {
			bad("limit", "must be an integer between 1 and "+strconv.Itoa(orchestrator.MaxPageSize))
		} else {
			f.Limit = n
		}
	}
	if len(details) == 0 {
		if err := orchestrator.CheckListFilter(f); err != nil {
			return f, err
		}
		return f, nil
	}
	return f, &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "invalid query: " + details[0].Path + ": " + details[0].Message, Details: details}
}

func sortedParamKeys(q url.Values) []string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// noQuery refuses query parameters on routes that take none.
func noQuery(c echo.Context) error {
	q := c.QueryParams()
	if len(q) == 0 {
		return nil
	}
	var details []api.Detail
	for _, k := range sortedParamKeys(q) {
		details = append(details, api.Detail{Path: k, Message: "unknown query parameter"})
	}
	return &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "this route takes no query parameters", Details: details}
}

func (s *Server) listWorkflows(c echo.Context) error {
	f, err := DecodeListQuery(c.QueryParams())
	if err != nil {
		return err
	}
	page, err := s.deps.Orchestrator.List(c.Request().Context(), caller(c), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

// CancelResponse answers POST /v1/workflows/{id}/cancel.
type CancelResponse struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

func (s *Server) cancelWorkflow(c echo.Context) error {
	id, err := workflowID(c)
	if err != nil {
		return err
	}
	if err := noQuery(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	api.SetWorkflow(ctx, id, "", "")
	if err := s.deps.Orchestrator.Cancel(ctx, caller(c), id); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, CancelResponse{ID: id, State: "cancel_requested"})
}

func (s *Server) listApprovals(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	a, err := s.deps.Orchestrator.PendingApprovals(c.Request().Context(), caller(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

// DecisionBody is the body of POST /v1/workflows/{id}/approvals/{step}.
type DecisionBody struct {
	Decision string `json:"decision"`
	Comment  string `json:"comment,omitempty"`
}

// DecodeDecision decodes and checks a decision body for step.
func DecodeDecision(body []byte, step string, maxDepth int) (orchestrator.DecideRequest, error) {
	var b DecisionBody
	if err := api.DecodeJSON(body, &b, maxDepth, ""); err != nil {
		return orchestrator.DecideRequest{}, err
	}
	req := orchestrator.DecideRequest{StepID: step, Decision: b.Decision, Comment: b.Comment}
	if err := orchestrator.CheckDecideRequest(req); err != nil {
		return orchestrator.DecideRequest{}, err
	}
	return req, nil
}

func (s *Server) decide(c echo.Context) error {
	id, err := workflowID(c)
	if err != nil {
		return err
	}
	step := c.Param("step")
	if !orchestrator.ValidStepID(step) {
		return api.Errorf(http.StatusNotFound, "step_not_found", "workflow %s has no approval step %q", id, step)
	}
	r := c.Request()
	body, err := api.ReadBody(c.Response(), r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	req, err := DecodeDecision(body, step, s.cfg.MaxJSONDepth)
	if err != nil {
		return err
	}
	api.SetWorkflow(r.Context(), id, "", "")
	res, err := s.deps.Orchestrator.Decide(r.Context(), caller(c), id, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// DefinitionsResponse answers GET /v1/definitions.
type DefinitionsResponse struct {
	Items []orchestrator.DefinitionInfo `json:"items"`
}

func (s *Server) listDefinitions(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	list, err := s.deps.Orchestrator.ListDefinitions(c.Request().Context(), caller(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, DefinitionsResponse{Items: list})
}

func (s *Server) getDefinition(c echo.Context) error {
	name, version := c.Param("name"), c.Param("version")
	if !orchestrator.ValidName(name) || !orchestrator.ValidVersion(version) {
		return api.Errorf(http.StatusNotFound, "definition_not_found", "definition %s@%s not found", name, version)
	}
	def, err := s.deps.Orchestrator.GetDefinition(c.Request().Context(), caller(c), name, version)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, def)
}

// DecodeDefinition decodes a definition body, JSON or (by Content-Type)
// YAML, strictly. YAML goes through yamlread, the one bounded reader
// (aliases counted at every use, values, expanded size and depth bounded),
// before it is re-encoded as JSON: its errors are *yamlread.Error, answered
// 413 or 400 by api.FromError.
func DecodeDefinition(body []byte, contentType string, maxDepth int) (definition.Definition, error) {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	switch mt {
	case "", "application/json":
	case "application/yaml", "application/x-yaml", "text/yaml":
		// The body is already within the server's body limit; the reader
		// bounds what it may expand to relative to that.
		v, err := yamlread.ReadTree(body, yamlread.Limits{MaxBytes: max(len(body), yamlread.DefaultMaxBytes), MaxDepth: maxDepth})
		if err != nil {
			return definition.Definition{}, err
		}
		j, err := json.Marshal(v)
		if err != nil {
			return definition.Definition{}, api.Errorf(http.StatusBadRequest, "invalid_yaml", "YAML that cannot be JSON: %v", err)
		}
		body = j
	default:
		return definition.Definition{}, api.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json or application/yaml, not %s", mt)
	}
	var def definition.Definition
	if err := api.DecodeJSON(body, &def, maxDepth, ""); err != nil {
		return definition.Definition{}, err
	}
	return def, nil
}

func (s *Server) putDefinition(c echo.Context) error {
	name, version := c.Param("name"), c.Param("version")
	r := c.Request()
	body, err := api.ReadBody(c.Response(), r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	def, err := DecodeDefinition(body, r.Header.Get("Content-Type"), s.cfg.MaxJSONDepth)
	if err != nil {
		return err
	}
	info, err := s.deps.Orchestrator.PublishDefinition(r.Context(), caller(c), name, version, def)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/v1/definitions/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version))
	if info.Existing {
		return c.JSON(http.StatusOK, info) // the same content was already published
	}
	return c.JSON(http.StatusCreated, info)
}
