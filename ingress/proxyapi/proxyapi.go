// Package proxyapi mounts the gateway data plane (ingress/proxy) as the
// ingress route group "gateway": ANY /gw/{api}/{path...}, behind the
// ingress's middleware chain (request id, access log, metrics,
// authentication, key and tenant rate limits) and in /v1/openapi.json.
package proxyapi

import (
	"net/http"
	"strings"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/httperr"
	"github.com/gateflow/gateflow/ingress/proxy"
)

// Path is the gateway route.
const Path = "/gw/{api}/{path...}"

// Prefix is what precedes the API name in Path.
const Prefix = "/gw/"

// Methods are the methods the gateway forwards.
var Methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// maxRouteBody lets the ingress pass every body to the gateway, which
// applies each API's own limit (413 beyond).
const maxRouteBody = 1 << 40

// WriteError answers err in the one error shape and returns the status;
// it is proxy.Options.WriteError.
func WriteError(w http.ResponseWriter, r *http.Request, err error) int {
	status := httperr.FromError(err).Status
	httperr.Write(w, r, err)
	return status
}

// Routes returns the gateway route group. Every authenticated key may call
// it; p's Access decides which APIs the key's tenant sees.
func Routes(p *proxy.Proxy) api.Group {
	var routes []api.Route
	for _, m := range Methods {
		routes = append(routes, api.Route{
			Method:       m,
			Path:         Path,
			Streaming:    true, // bodies, SSE and WebSocket may outlive the write timeout; the gateway times calls itself
			MaxBodyBytes: maxRouteBody,
			Handler:      p,
			Doc: api.Operation{
				ID:      "gateway" + strings.ToUpper(m[:1]) + strings.ToLower(m[1:]),
				Summary: "Forward a " + m + " call to an instance of the API's service",
				Description: "The path after /gw/{api} (and the query) go to the upstream as sent. The answer is the upstream's, " +
					"untouched (4xx and 5xx included), with `Cache-Status` when the API caches. `?version=` or the " +
					"`Gateflow-Api-Version` header picks a version. The client's `Authorization` never reaches the upstream; " +
					"the gateway adds the service's credentials and `Gateflow-Tenant`, `Gateflow-Consumer`, `Gateflow-Api`, " +
					"`Forwarded` and `X-Forwarded-*`. See docs/PROXY.md.",
				Params: []api.Param{
					{Name: "api", In: "path", Required: true, Description: "API name (without a catalogue: a service of gateflow.yaml owned by your tenant)."},
					{Name: "path", In: "path", Required: true, Description: "The rest of the path, slashes included, forwarded as is."},
					{Name: "version", In: "query", Description: "API version (default: the latest published); not forwarded."},
				},
				Responses: map[int]api.Response{
					200: {Description: "The upstream's answer (any status it sends is passed through).", ContentType: "*/*", Schema: map[string]any{}},
					404: {Description: "No such API (or version) for your tenant.", Schema: api.Ref("Error")},
					413: {Description: "The body is larger than the API's limit.", Schema: api.Ref("Error")},
					502: {Description: "No instance could be reached (after retries).", Schema: api.Ref("Error")},
					503: {Description: "Every instance is unhealthy or ejected.", Schema: api.Ref("Error")},
					504: {Description: "The upstream did not answer in time.", Schema: api.Ref("Error")},
				},
			},
		})
	}
	return api.Group{
		Name:        "gateway",
		Description: "The gateway data plane: plain HTTP calls forwarded to services, balanced, health-checked, cached and recorded.",
		Routes:      routes,
	}
}
