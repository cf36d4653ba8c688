package api

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/gateflow/gateflow/ingress/auth"
)

// Group is a set of endpoints another package adds to the ingress, e.g.
//
//	srv.Mount(analytics.Routes(queries))   // GET /v1/analytics/...
//	srv.Mount(llm.Routes(gateway))         // POST /v1/chat/completions
//
// The ingress puts its middleware chain in front of every route (request
// id, access log, metrics, call record, recovery, authentication, role
// check, rate limit, body limit, request timeout) and documents every route
// in /v1/openapi.json.
type Group struct {
	// Name is the OpenAPI tag of the group's routes.
	Name        string
	Description string
	Routes      []Route
	// Schemas are added to the document's components.schemas, so that
	// operations can refer to "#/components/schemas/<name>".
	Schemas map[string]any
	// Docs, when set, is called each time the OpenAPI document is built
	// and documents concrete requests the group's routes serve that change
	// at run time (e.g. one operation per prompt API, which a config
	// reload may add or remove). Nothing is mounted for them; a mounted
	// route with the same method and path wins.
	Docs func() []DocRoute
}

// DocRoute documents one concrete request served by a Group's routes, e.g.
// POST /v1/apis/summarize, served by POST /v1/apis/{name}.
type DocRoute struct {
	Method string
	Path   string
	// Roles are listed in the description like a route's.
	Roles []auth.Role
	Doc   Operation
}

// Route is one endpoint of a Group.
type Route struct {
	// Method is an HTTP method (GET, POST, PUT, DELETE, ...).
	Method string
	// Path uses {name} for parameters ("/v1/apis/{name}"); handlers read
	// them with r.PathValue("name"). A last segment {name...} matches the
	// rest of the path, slashes included ("/gw/{api}/{path...}",
	// "/console/assets/{file...}"); the OpenAPI document shows it as {name}.
	Path string
	// Roles lists the roles of which the caller needs one (admin holds
	// all); empty means any authenticated caller.
	Roles []auth.Role
	// Public routes need no API key (and are not rate limited).
	Public bool
	// Streaming routes (SSE, streamed model output, MCP) have no write
	// timeout and no request timeout; they must end when the request
	// context is done (the server cancels it on shutdown).
	Streaming bool
	// MaxBodyBytes overrides the server's body limit when > 0.
	MaxBodyBytes int64
	Handler      http.Handler
	Doc          Operation
	// ErrorBody, when set, encodes the route's error answers, the
	// ingress's own included (authentication, roles, rate limits, body
	// limit), instead of the one error shape: the OpenAI-compatible routes
	// answer errors the way OpenAI's SDKs read them. Statuses and headers
	// are unchanged; handlers use it for their own errors too.
	ErrorBody func(*Error) any
	// Page marks a route that is not an API operation: the web console's
	// pages, assets and session. It goes through the same middleware (request
	// id, access log, metrics, recovery, body limit, timeout) but is left out
	// of the OpenAPI document and makes no call record (the API requests a
	// page makes are recorded themselves). Page routes are usually Public and
	// live outside /v1.
	Page bool
}

// Operation documents a route in OpenAPI 3.1. Schemas are JSON Schema
// values (map[string]any), or Ref("Name") for a component.
type Operation struct {
	ID          string
	Summary     string
	Description string
	Params      []Param
	Request     *Content
	// Responses by status code; the error responses of the middleware
	// (401, 403, 429, ...) are added by the ingress.
	Responses map[int]Response
}

// Param is a path or query parameter.
type Param struct {
	Name        string
	In          string // "path" or "query"
	Required    bool
	Description string
	Schema      any
}

// Content is a request body.
type Content struct {
	Required    bool
	ContentType string // application/json when empty
	Schema      any
}

// Response is one documented answer.
type Response struct {
	Description string
	ContentType string // application/json when empty and Schema is set
	Schema      any
	Headers     map[string]string // name -> description
}

// Ref returns a JSON Schema reference to a component schema.
func Ref(name string) map[string]any {
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

var paramRe = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// PathParams returns the parameter names of a {name} path (a trailing
// {name...} gives "name").
func PathParams(path string) []string {
	var names []string
	for _, m := range paramRe.FindAllStringSubmatch(path, -1) {
		names = append(names, m[1])
	}
	return names
}

// CatchAll returns the name of the path's trailing {name...} parameter, if
// it has one.
func CatchAll(path string) (string, bool) {
	ms := paramRe.FindAllStringSubmatchIndex(path, -1)
	if len(ms) == 0 {
		return "", false
	}
	m := ms[len(ms)-1]
	if m[4] < 0 || m[1] != len(path) {
		return "", false
	}
	return path[m[2]:m[3]], true
}

// DocPath is the path as the OpenAPI document shows it: {name...} becomes
// {name}.
func DocPath(path string) string { return strings.ReplaceAll(path, "...}", "}") }

// Check reports what is wrong with a route before it is mounted.
func (r Route) Check() error {
	switch {
	case r.Method == "" || strings.ToUpper(r.Method) != r.Method:
		return fmt.Errorf("route %s: method must be upper case", r.Path)
	case !strings.HasPrefix(r.Path, "/"):
		return fmt.Errorf("route %s %s: path must start with /", r.Method, r.Path)
	case r.Handler == nil:
		return fmt.Errorf("route %s %s: no handler", r.Method, r.Path)
	case strings.ContainsAny(r.Path, ":*"):
		return fmt.Errorf("route %s %s: use {name} for parameters", r.Method, r.Path)
	}
	if strings.Contains(r.Path, "...") {
		name, ok := CatchAll(r.Path)
		if !ok || strings.Count(r.Path, "...") > 1 || !strings.HasSuffix(r.Path, "/{"+name+"...}") {
			return fmt.Errorf("route %s %s: {name...} must be the whole last segment", r.Method, r.Path)
		}
	}
	return nil
}
