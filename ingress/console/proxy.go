package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gateflow/gateflow/ingress/api"
)

// forwardedHeaders are the request headers a page may send on to the API;
// everything else (cookies above all) stays behind.
var forwardedHeaders = []string{"Accept", "Content-Type", "Idempotency-Key", "Last-Event-ID"}

// proxy serves /console/api/v1/... : the same request, as the session's
// key, handed to the ingress's own handler in process. The API request
// goes through the whole middleware chain again (authentication, roles,
// tenant, rate limits, access log, call record), so a page can do and see
// exactly what its key can, and every call counts like any client's.
func (c *Console) proxy(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(w, r) {
		return
	}
	ss, err := c.seal.sessionOf(r, c.opts.Secure)
	if err != nil {
		writeError(w, r, http.StatusUnauthorized, "signed_out", "sign in with an API key")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !c.seal.checkCSRF(ss, r.Header.Get(csrfHeader)) {
		writeError(w, r, http.StatusForbidden, "csrf_failed", "missing or wrong "+csrfHeader+"; reload the page")
		return
	}
	target := strings.TrimPrefix(r.URL.EscapedPath(), basePath+"/api")
	if !strings.HasPrefix(target, "/v1/") || strings.Contains(target, "/../") || strings.HasSuffix(target, "/..") {
		writeError(w, r, http.StatusNotFound, "route_not_found", "the console forwards /v1 API paths only")
		return
	}
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = "", target
	if p, err := url.PathUnescape(target); err == nil {
		out.URL.Path = p
		if p == target {
			out.URL.RawPath = ""
		}
	}
	out.RequestURI = out.URL.RequestURI()
	out.Header = http.Header{}
	for _, h := range forwardedHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			out.Header[h] = v
		}
	}
	out.Header.Set("Authorization", "Bearer "+ss.Key)
	out.Header.Set("X-Request-Id", api.RequestID(r.Context()))
	w.Header().Set("Cache-Control", "no-store")
	c.api.ServeHTTP(w, out)
}
