// Package console is Gateflow's web console, served by the ingress at
// /console from the same binary: an approvals inbox, workflow lists and
// live run timelines, definitions, analytics charts, the API catalogue and
// (for admins) API keys.
//
// It shows nothing the user's API key could not read: the browser's pages
// call the public REST API through /console/api/v1/..., which this package
// serves by handing the request to the ingress's own handler in process
// with the key of the user's session as the bearer token, so every route
// checks roles, tenant, rate limits and records the call exactly as for
// any other client. The key lives only in a sealed HttpOnly cookie; every
// change carries a CSRF token; pages load nothing from the internet (the
// front-end libraries are embedded, see vendor.sh).
package console

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/httperr"
)

// basePath is where the console lives.
const basePath = "/console"

// Options configure the console.
type Options struct {
	// API is the ingress's own handler (ingress.Server.Handler()): the
	// console's data comes from it, as the signed-in user. Required.
	API http.Handler
	// Secret seals session cookies; at least 32 bytes. Replicas behind one
	// load balancer need the same secret. Empty: a random secret per
	// process (sessions end when the process restarts).
	Secret []byte
	// SessionTTL is how long a sign-in lasts (default 12h).
	SessionTTL time.Duration
	// Secure says when the session cookie is Secure (default SecureAuto).
	Secure SecureMode
	// TemporalUI is the base URL of a Temporal Web UI; when set, run pages
	// link to the run there, for operators.
	TemporalUI string
	// TemporalNamespace is the namespace of the runs in that UI.
	TemporalNamespace string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives sign-in and sign-out events; nil discards them.
	Log *slog.Logger
}

// Console serves the console's pages, assets, session and API proxy.
type Console struct {
	api    http.Handler
	opts   Options
	seal   *sealer
	assets *assets
	log    *slog.Logger

	featuresOnce sync.Once
	features     Features
}

// New builds the console.
func New(opts Options) (*Console, error) {
	if opts.API == nil {
		return nil, errors.New("console: Options.API is required")
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	switch opts.Secure {
	case "":
		opts.Secure = SecureAuto
	case SecureAuto, SecureAlways, SecureNever:
	default:
		return nil, fmt.Errorf("console: secure mode %q: want auto, always or never", opts.Secure)
	}
	if opts.TemporalUI != "" {
		u, err := url.Parse(opts.TemporalUI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("console: Temporal UI URL %q: want http(s)://host[:port][/path]", opts.TemporalUI)
		}
		opts.TemporalUI = strings.TrimSuffix(opts.TemporalUI, "/")
		if opts.TemporalNamespace == "" {
			opts.TemporalNamespace = "default"
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	secret := opts.Secret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
	}
	seal, err := newSealer(secret, opts.Now)
	if err != nil {
		return nil, err
	}
	a, err := loadAssets()
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Console{api: opts.API, opts: opts, seal: seal, assets: a, log: log}, nil
}

// Routes returns the console's routes, to mount with ingress.Server.Mount:
// pages (served by the ingress's middleware: request ids, access log,
// metrics, body limits, timeouts) outside /v1 and the OpenAPI document.
func (c *Console) Routes() api.Group {
	page := func(method, path string, h http.HandlerFunc) api.Route {
		return api.Route{Method: method, Path: path, Public: true, Page: true, Handler: c.headers(h)}
	}
	routes := []api.Route{
		page(http.MethodGet, basePath, c.index),
		page(http.MethodGet, basePath+"/{page...}", c.index),
		page(http.MethodGet, basePath+"/assets/{file...}", c.asset),
		page(http.MethodGet, basePath+"/session", c.getSession),
		page(http.MethodPost, basePath+"/session", c.signIn),
		page(http.MethodDelete, basePath+"/session", c.signOut),
	}
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		routes = append(routes, page(m, basePath+"/api/{path...}", c.proxy))
	}
	// The event stream of a run lasts as long as the run: no write or
	// request timeout, and it ends when the server shuts down.
	events := page(http.MethodGet, basePath+"/api/v1/workflows/{id}/events", c.proxy)
	events.Streaming = true
	routes = append(routes, events)
	return api.Group{Name: "console", Description: "The web console (pages, not API operations).", Routes: routes}
}

// headers sets the security headers of every console answer.
func (c *Console) headers(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", c.assets.csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next(w, r)
	}
}

// index serves the shell page for every page path; the page's script
// shows the page the path names.
func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	if p := r.PathValue("page"); strings.HasPrefix(p, "api/") || p == "api" || strings.HasPrefix(p, "assets/") {
		writeError(w, r, http.StatusNotFound, "route_not_found", "no such console path")
		return
	}
	c.assets.index.serve(w, r, "no-cache")
}

// asset serves an embedded file: /console/assets/<build>/<file>.
func (c *Console) asset(w http.ResponseWriter, r *http.Request) {
	build, name, _ := strings.Cut(r.PathValue("file"), "/")
	f := c.assets.files[name]
	if f == nil {
		writeError(w, r, http.StatusNotFound, "route_not_found", "no such console asset")
		return
	}
	cache := "public, max-age=31536000, immutable"
	if build != c.assets.build {
		cache = "no-cache" // a page of another build: serve this one's file, never cache it under that name
	}
	f.serve(w, r, cache)
}

// SessionInfo answers GET and POST /console/session: who is signed in, the
// CSRF token for changes, and what the console may link to.
type SessionInfo struct {
	Tenant     string    `json:"tenant"`
	KeyID      string    `json:"key_id"`
	User       string    `json:"user,omitempty"`
	Roles      []string  `json:"roles"`
	CSRFToken  string    `json:"csrf_token"`
	ExpiresAt  time.Time `json:"expires_at"`
	TemporalUI string    `json:"temporal_ui,omitempty"`
	Namespace  string    `json:"temporal_namespace,omitempty"`
	// Features are the optional parts of the API this server has, so that
	// pages for routes it lacks are not offered.
	Features Features `json:"features"`
}

// Features name optional API routes the console has pages for.
type Features struct {
	Analytics     bool `json:"analytics"`     // GET /v1/analytics/trend
	Catalog       bool `json:"catalog"`       // GET /v1/catalog (issue 11)
	Subscriptions bool `json:"subscriptions"` // GET /v1/subscriptions
	Keys          bool `json:"keys"`          // GET and POST /v1/keys
	// Dimensions are the analytics group-by values the API accepts.
	Dimensions []string `json:"dimensions,omitempty"`
}

// me is GET /v1/me's answer.
type me struct {
	Tenant string   `json:"tenant"`
	KeyID  string   `json:"key_id"`
	User   string   `json:"user"`
	Roles  []string `json:"roles"`
}

func (c *Console) getSession(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(w, r) {
		return
	}
	ss, err := c.seal.sessionOf(r, c.opts.Secure)
	if err != nil {
		writeError(w, r, http.StatusUnauthorized, "signed_out", "sign in with an API key")
		return
	}
	c.answerSession(w, r, ss, http.StatusOK)
}

// answerSession asks the API who the session's key is (so a disabled key
// or a changed role shows at once) and answers the session's info.
func (c *Console) answerSession(w http.ResponseWriter, r *http.Request, ss session, status int) {
	who, apiErr := c.whoami(r, ss.Key)
	if apiErr != nil {
		if apiErr.Status == http.StatusUnauthorized {
			http.SetCookie(w, sessionCookie("", isSecure(r, c.opts.Secure), time.Time{}))
			writeError(w, r, http.StatusUnauthorized, "signed_out", "the API key of this session is no longer valid; sign in again")
			return
		}
		httperr.Write(w, r, apiErr)
		return
	}
	info := SessionInfo{
		Tenant: who.Tenant, KeyID: who.KeyID, User: who.User, Roles: who.Roles,
		CSRFToken: c.seal.csrf(ss), ExpiresAt: time.Unix(ss.Exp, 0).UTC(),
	}
	if c.opts.TemporalUI != "" {
		info.TemporalUI, info.Namespace = c.opts.TemporalUI, c.opts.TemporalNamespace
	}
	info.Features = c.detect()
	w.Header().Set("Cache-Control", "no-store")
	api.WriteJSON(w, status, info)
}

// detect reads the API's OpenAPI document in process, once (routes are
// mounted before the server serves), for the optional routes.
func (c *Console) detect() Features {
	c.featuresOnce.Do(func() {
		// Not the request's context: a client that goes away must not
		// leave the features unread for the life of the process.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/v1/openapi.json", nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		c.api.ServeHTTP(rec, req)
		var doc struct {
			Paths map[string]map[string]struct {
				Parameters []struct {
					Name   string `json:"name"`
					Schema struct {
						Enum []string `json:"enum"`
					} `json:"schema"`
				} `json:"parameters"`
			} `json:"paths"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &doc) != nil {
			c.log.Warn("console: the OpenAPI document could not be read; optional pages are off", "status", rec.Code)
			return
		}
		has := func(path, method string) bool { _, ok := doc.Paths[path][method]; return ok }
		c.features = Features{
			Analytics:     has("/v1/analytics/trend", "get"),
			Catalog:       has("/v1/catalog", "get") && has("/v1/catalog/{api}", "get"),
			Subscriptions: has("/v1/subscriptions", "get"),
			Keys:          has("/v1/keys", "get") && has("/v1/keys", "post"),
		}
		for _, p := range doc.Paths["/v1/analytics/trend"]["get"].Parameters {
			if p.Name == "group_by" {
				c.features.Dimensions = p.Schema.Enum
			}
		}
	})
	return c.features
}

// whoami calls GET /v1/me in process with key.
func (c *Console) whoami(r *http.Request, key string) (me, *api.Error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "/v1/me", nil)
	if err != nil {
		return me{}, api.Errorf(http.StatusInternalServerError, "internal", "internal error")
	}
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Request-Id", requestID(r))
	rec := httptest.NewRecorder()
	c.api.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		var body api.Body
		if json.Unmarshal(rec.Body.Bytes(), &body) == nil && body.Error != nil {
			body.Error.Status = rec.Code
			return me{}, body.Error
		}
		return me{}, api.Errorf(rec.Code, "internal", "GET /v1/me answered %d", rec.Code)
	}
	var who me
	if err := json.Unmarshal(rec.Body.Bytes(), &who); err != nil {
		return me{}, api.Errorf(http.StatusInternalServerError, "internal", "internal error")
	}
	if who.Roles == nil {
		who.Roles = []string{}
	}
	return who, nil
}

// requestID is the request id the ingress gave this request (set on the
// response by its middleware), so that the API requests a page causes log
// under the same id.
func requestID(r *http.Request) string { return api.RequestID(r.Context()) }

// signInBody is the body of POST /console/session.
type signInBody struct {
	Key string `json:"key"`
}

// maxSignInBody bounds the sign-in body (a key is under 100 bytes).
const maxSignInBody = 4 << 10

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(w, r) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSignInBody+1))
	if err != nil || len(body) > maxSignInBody {
		writeError(w, r, http.StatusRequestEntityTooLarge, "payload_too_large", "the sign-in body is too large")
		return
	}
	var b signInBody
	if err := api.DecodeJSON(body, &b, 4, ""); err != nil {
		httperr.Write(w, r, err)
		return
	}
	b.Key = strings.TrimSpace(b.Key)
	if b.Key == "" {
		writeDetails(w, r, http.StatusBadRequest, "invalid_request", "key: an API key is required", "key", "an API key is required")
		return
	}
	who, apiErr := c.whoami(r, b.Key)
	if apiErr != nil {
		if apiErr.Status == http.StatusUnauthorized {
			c.log.Info("console sign-in refused", "request_id", api.RequestID(r.Context()), "remote", r.RemoteAddr)
			writeDetails(w, r, http.StatusUnauthorized, "invalid_api_key", "this API key is not valid", "key", "not a valid API key")
			return
		}
		httperr.Write(w, r, apiErr)
		return
	}
	ss := c.seal.newSession(b.Key, c.opts.SessionTTL)
	value, err := c.seal.seal(ss)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	http.SetCookie(w, sessionCookie(value, isSecure(r, c.opts.Secure), time.Unix(ss.Exp, 0)))
	c.log.Info("console sign-in", "request_id", api.RequestID(r.Context()), "tenant", who.Tenant, "key_id", who.KeyID)
	c.answerSession(w, r, ss, http.StatusCreated)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(w, r) {
		return
	}
	secure := isSecure(r, c.opts.Secure)
	ss, err := c.seal.sessionOf(r, c.opts.Secure)
	if err == nil {
		if !c.seal.checkCSRF(ss, r.Header.Get(csrfHeader)) {
			writeError(w, r, http.StatusForbidden, "csrf_failed", "missing or wrong "+csrfHeader+"; reload the page")
			return
		}
		c.seal.revoke(ss)
	}
	http.SetCookie(w, sessionCookie("", secure, time.Time{}))
	w.WriteHeader(http.StatusNoContent)
}

// csrfHeader carries the CSRF token on every change.
const csrfHeader = "X-CSRF-Token"

// sameOrigin refuses requests another site's page makes: browsers say so
// in Sec-Fetch-Site, and name the page's origin in Origin on changes.
func (c *Console) sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		writeError(w, r, http.StatusForbidden, "cross_site", "the console's session is not usable from another site")
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && r.Method != http.MethodGet && r.Method != http.MethodHead {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			writeError(w, r, http.StatusForbidden, "cross_site", "the console's session is not usable from another site")
			return false
		}
	}
	return true
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	httperr.Write(w, r, api.Errorf(status, code, "%s", msg))
}

func writeDetails(w http.ResponseWriter, r *http.Request, status int, code, msg, path, detail string) {
	httperr.Write(w, r, &api.Error{Status: status, Code: code, Message: msg, Details: []api.Detail{{Path: path, Message: detail}}})
}
