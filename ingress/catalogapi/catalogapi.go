// Package catalogapi is the REST face of the API catalogue
// (workflows/catalog, docs/CATALOG.md): browse and search the catalogue,
// publish, version and move APIs through their lifecycle, subscribe and
// manage subscriptions, and call orchestration, prompt and model APIs. It
// also gives the proxy (service APIs) its per-request decision, Access.
// Handlers parse, call one function of catalog.Service, and map the
// result.
package catalogapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/chatapi"
	"github.com/gateflow/gateflow/ingress/httperr"
	"github.com/gateflow/gateflow/ingress/promptapi"
	"github.com/gateflow/gateflow/workflows/catalog"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Options tune Routes.
type Options struct {
	// Runners run orchestration, prompt and model APIs called through
	// POST /v1/catalog/{api}/call.
	Runners catalog.Runners
	// MaxBodyBytes bounds a request body (default 1 MiB; a catalogue entry
	// holds at most catalog.MaxDocs of docs and catalog.MaxOpenAPI per
	// version).
	MaxBodyBytes int64
}

type handlers struct {
	svc  *catalog.Service
	opts Options
}

var (
	admins     = []auth.Role{auth.RoleAdmin}
	callers    = []auth.Role{auth.RoleSubmitter, auth.RoleModel}
	apiParam   = api.Param{Name: "api", In: "path", Required: true, Description: "API name.", Schema: map[string]any{"type": "string"}}
	verParam   = api.Param{Name: "version", In: "path", Required: true, Description: "API version.", Schema: map[string]any{"type": "string"}}
	subParam   = api.Param{Name: "id", In: "path", Required: true, Description: "Subscription id.", Schema: map[string]any{"type": "string"}}
	verQuery   = api.Param{Name: "version", In: "query", Description: "Version; the newest published one when omitted.", Schema: map[string]any{"type": "string"}}
	errorShape = api.Ref("Error")
)

func errResp(desc string) api.Response { return api.Response{Description: desc, Schema: errorShape} }

// Routes returns the catalogue's route group, to mount with
// ingress.Server.Mount.
func Routes(svc *catalog.Service, opts Options) api.Group {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	h := &handlers{svc: svc, opts: opts}
	lifecycle := "Lifecycle per version: draft (owner only) → published → deprecated (every answer carries Deprecation, Sunset and " +
		"Link headers) → retired (410 Gone naming the successor); a draft may be retired at once, a deprecation taken back, nothing leaves retired."
	return api.Group{
		Name: "catalog",
		Description: "The API catalogue: tenants publish APIs (a service, an orchestration, a prompt API, a model alias) for other " +
			"tenants, who find them, subscribe under a plan and, once the owner's approvers agree, call them. " + lifecycle,
		Schemas: schemas(),
		Routes: []api.Route{
			{Method: http.MethodGet, Path: "/v1/catalog", Handler: http.HandlerFunc(h.search), Doc: api.Operation{
				ID: "searchCatalog", Summary: "APIs you may see: yours, and the shared ones of other tenants",
				Params: []api.Param{
					{Name: "q", In: "query", Description: "Text searched in names, titles, descriptions and tags.", Schema: map[string]any{"type": "string"}},
					{Name: "tag", In: "query", Description: "Tag the API must have; repeat for several.", Schema: map[string]any{"type": "string"}},
					{Name: "kind", In: "query", Description: "service, orchestration, prompt or model.", Schema: enum(wire.APIKinds...)},
					{Name: "owner", In: "query", Description: "Owner tenant.", Schema: map[string]any{"type": "string"}},
					{Name: "state", In: "query", Description: "APIs with a version in this state.", Schema: enum(wire.States...)},
				},
				Responses: map[int]api.Response{200: {Description: "Matching APIs, by name, with your live subscription.", Schema: api.Ref("APIList")},
					422: errResp("A bad filter value; details name the parameter.")},
			}},
			{Method: http.MethodPost, Path: "/v1/catalog", Roles: admins, MaxBodyBytes: opts.MaxBodyBytes, Handler: http.HandlerFunc(h.create), Doc: api.Operation{
				ID: "createAPI", Summary: "Publish a new API in your catalogue, with its first version (a draft)",
				Description: "The version's target must be something your tenant may publish: a service it owns, a definition it may run, a prompt API visible to it, a model it may use. " +
					"Service APIs supply their OpenAPI document; the others' is generated from their schemas.",
				Request: &api.Content{Required: true, Schema: api.Ref("CreateAPIRequest")},
				Responses: map[int]api.Response{201: {Description: "Created.", Schema: api.Ref("API")},
					409: errResp("The name is taken (names are unique across tenants)."), 422: errResp("Invalid; details locate each problem.")},
			}},
			{Method: http.MethodGet, Path: "/v1/catalog/{api}", Handler: http.HandlerFunc(h.get), Doc: api.Operation{
				ID: "getAPI", Summary: "One API: versions and states, docs, OpenAPI documents, history, plans, your subscriptions",
				Params:    []api.Param{apiParam},
				Responses: map[int]api.Response{200: {Description: "The API.", Schema: api.Ref("APIDetail")}, 404: errResp("No such API for you.")},
			}},
			{Method: http.MethodPatch, Path: "/v1/catalog/{api}", Roles: admins, MaxBodyBytes: opts.MaxBodyBytes, Handler: http.HandlerFunc(h.update), Doc: api.Operation{
				ID: "updateAPI", Summary: "Change your API's title, description, tags, docs, visibility, plans or approvers",
				Params: []api.Param{apiParam}, Request: &api.Content{Required: true, Schema: api.Ref("UpdateAPIRequest")},
				Responses: map[int]api.Response{200: {Description: "The API.", Schema: api.Ref("API")}, 403: errResp("Not your API."),
					404: errResp("No such API."), 409: errResp("A plan held by a live subscription cannot be removed."), 422: errResp("Invalid.")},
			}},
			{Method: http.MethodPost, Path: "/v1/catalog/{api}/versions", Roles: admins, MaxBodyBytes: opts.MaxBodyBytes, Handler: http.HandlerFunc(h.addVersion), Doc: api.Operation{
				ID: "addAPIVersion", Summary: "Add a version (a draft) to your API",
				Params: []api.Param{apiParam}, Request: &api.Content{Required: true, Schema: api.Ref("APIVersionSpec")},
				Responses: map[int]api.Response{201: {Description: "The API.", Schema: api.Ref("API")}, 403: errResp("Not your API."),
					404: errResp("No such API."), 409: errResp("The version exists."), 422: errResp("Invalid.")},
			}},
			{Method: http.MethodPost, Path: "/v1/catalog/{api}/versions/{version}/lifecycle", Roles: admins, Handler: http.HandlerFunc(h.transition), Doc: api.Operation{
				ID: "moveAPIVersion", Summary: "Move a version of your API through its lifecycle (recorded with who, when and why)", Description: lifecycle,
				Params: []api.Param{apiParam, verParam}, Request: &api.Content{Required: true, Schema: api.Ref("TransitionRequest")},
				Responses: map[int]api.Response{200: {Description: "The API.", Schema: api.Ref("API")}, 403: errResp("Not your API."),
					404: errResp("No such API or version."), 409: errResp("Not allowed from the current state (named in the message and details)."),
					422: errResp("Invalid successor or sunset.")},
			}},
			{Method: http.MethodPost, Path: "/v1/catalog/{api}/call", Roles: callers, Streaming: true, MaxBodyBytes: 4 << 20, Handler: http.HandlerFunc(h.call), Doc: api.Operation{
				ID: "callAPI", Summary: "Call an orchestration, prompt or model API (yours, or one you hold an active grant for)",
				Description: "The call runs as the owner (its definition, prompt API or model, on its budgets) and is recorded with the API, its version and you as the consumer. " +
					"Orchestration APIs answer 202 with the run's id; follow it at status_url. Prompt APIs take the variables, model APIs a chat completion request (not streamed). " +
					"A deprecated version's answers carry Deprecation, Sunset and Link headers. Service APIs are called through the proxy.",
				Params: []api.Param{apiParam, verQuery},
				// An empty body is no input (checkJSON): an orchestration or
				// prompt API without input runs on it.
				Request: &api.Content{Schema: map[string]any{"type": "object", "description": "The input, variables or chat request: see the version's OpenAPI document. Empty: no input."}},
				Responses: map[int]api.Response{
					200: {Description: "The prompt API's or model's answer.", Schema: map[string]any{"type": "object"}, Headers: lifecycleHeaders},
					202: {Description: "The orchestration started.", Schema: api.Ref("CatalogCall"), Headers: lifecycleHeaders},
					403: errResp("No active subscription (subscription_required): how to request one is in the message; or an orchestration API called by a key without the submitter role (forbidden)."),
					404: errResp("No such API or version for you."), 410: errResp("The version is retired (api_retired); details name the successor."),
					422: errResp("Invalid input."), 429: errResp("Over the plan's rate limit (rate_limited) or quota (quota_exceeded, with when it resets)."),
				},
			}},
			{Method: http.MethodGet, Path: "/v1/catalog/{api}/calls/{id}", Handler: http.HandlerFunc(h.callStatus), Doc: api.Operation{
				ID: "getAPICall", Summary: "Status of an orchestration you started through an API",
				Params:    []api.Param{apiParam, {Name: "id", In: "path", Required: true, Description: "The call's id.", Schema: map[string]any{"type": "string"}}},
				Responses: map[int]api.Response{200: {Description: "The run's status.", Schema: api.Ref("Status")}, 404: errResp("No such call of yours.")},
			}},
			{Method: http.MethodPost, Path: "/v1/catalog/{api}/subscriptions", Roles: admins, Handler: http.HandlerFunc(h.subscribe), Doc: api.Operation{
				ID: "subscribe", Summary: "Request a subscription to a shared API under one of its plans, for your tenant or one of its apps",
				Description: "Unless the API grants at once (approval: none), the owner's approvers decide it through /v1/approvals (step \"approve\" of the run named in workflow_id).",
				Params:      []api.Param{apiParam}, Request: &api.Content{Required: true, Schema: api.Ref("SubscribeRequest")},
				Responses: map[int]api.Response{201: {Description: "Requested (pending) or granted (active).", Schema: api.Ref("Subscription")},
					404: errResp("No such API (or a private one)."), 409: errResp("A request is pending, or a grant active, already (its state is named)."),
					410: errResp("The API is retired."), 422: errResp("The plan is not offered (details: plan).")},
			}},
			{Method: http.MethodGet, Path: "/v1/subscriptions", Handler: http.HandlerFunc(h.listSubs), Doc: api.Operation{
				ID: "listSubscriptions", Summary: "Your subscriptions (as=consumer, default) or those to your APIs (as=owner), newest first",
				Params: []api.Param{
					{Name: "as", In: "query", Description: "consumer (default) or owner.", Schema: enum(catalog.AsConsumer, catalog.AsOwner)},
					{Name: "api", In: "query", Description: "One API.", Schema: map[string]any{"type": "string"}},
					{Name: "state", In: "query", Description: "One state.", Schema: enum(wire.SubscriptionPending, wire.SubscriptionActive, wire.SubscriptionRejected, wire.SubscriptionRevoked, wire.SubscriptionCancelled)},
				},
				Responses: map[int]api.Response{200: {Description: "Subscriptions.", Schema: api.Ref("Subscriptions")},
					422: errResp("A bad filter value; details name the parameter.")},
			}},
			{Method: http.MethodGet, Path: "/v1/subscriptions/{id}", Handler: http.HandlerFunc(h.getSub), Doc: api.Operation{
				ID: "getSubscription", Summary: "One subscription you are the consumer or the owner of, with its history",
				Params:    []api.Param{subParam},
				Responses: map[int]api.Response{200: {Description: "The subscription.", Schema: api.Ref("Subscription")}, 404: errResp("No such subscription for you.")},
			}},
			{Method: http.MethodPost, Path: "/v1/subscriptions/{id}/revoke", Roles: admins, Handler: http.HandlerFunc(h.revoke), Doc: api.Operation{
				ID: "revokeSubscription", Summary: "Revoke a subscription to your API (pending or active); every replica refuses the consumer within the documented bound",
				Params: []api.Param{subParam}, Request: &api.Content{Schema: api.Ref("EndSubscriptionRequest")},
				Responses: map[int]api.Response{200: {Description: "Revoked.", Schema: api.Ref("Subscription")}, 403: errResp("Not your API: cancel instead."),
					404: errResp("No such subscription."), 409: errResp("Already ended (its state is named).")},
			}},
			{Method: http.MethodPost, Path: "/v1/subscriptions/{id}/cancel", Roles: admins, Handler: http.HandlerFunc(h.cancel), Doc: api.Operation{
				ID: "cancelSubscription", Summary: "Cancel your subscription (a pending request or an active grant)",
				Params: []api.Param{subParam}, Request: &api.Content{Schema: api.Ref("EndSubscriptionRequest")},
				Responses: map[int]api.Response{200: {Description: "Cancelled.", Schema: api.Ref("Subscription")}, 403: errResp("Not yours: revoke instead."),
					404: errResp("No such subscription."), 409: errResp("Already ended (its state is named).")},
			}},
		},
	}
}

var lifecycleHeaders = map[string]string{
	"Deprecation": "When the version was deprecated (RFC 9745), on answers of a deprecated version.",
	"Sunset":      "When the deprecated version is planned to be retired (RFC 8594).",
	"Link":        `rel="successor-version" (the version to move to) and rel="deprecation" (this API's catalogue entry).`,
}

func enum(values ...string) map[string]any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = v
	}
	return map[string]any{"type": "string", "enum": out}
}

// callerOf maps the authenticated key to the catalogue's caller.
func callerOf(r *http.Request) catalog.Caller {
	p, _ := api.Caller(r.Context())
	return catalog.Caller{Tenant: p.Tenant, App: p.App, KeyID: p.KeyID, User: p.User, Roles: p.Roles, RequestID: api.RequestID(r.Context())}
}

// query reads the allowed query parameters, each at most once (tag may
// repeat).
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q := r.URL.Query()
	var details []api.Detail
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		switch {
		case !ok:
			details = append(details, api.Detail{Path: k, Message: "unknown query parameter"})
		case len(vs) != 1 && k != "tag":
			details = append(details, api.Detail{Path: k, Message: "must be given once"})
		case k == "version" && !definition.VersionPattern.MatchString(vs[0]):
			details = append(details, api.Detail{Path: k, Message: "must be a version"})
		}
	}
	if len(details) > 0 {
		return nil, &api.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: details[0].Path + ": " + details[0].Message, Details: details}
	}
	return q, nil
}

// decode reads and strictly decodes a JSON body; an empty body is allowed
// when optional.
func (h *handlers) decode(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	body, err := api.ReadBody(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	if optional && len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return api.DecodeJSON(body, dst, api.DefaultMaxDepth, "")
}

func (h *handlers) search(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, "q", "tag", "kind", "owner", "state")
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	res, err := h.svc.Search(callerOf(r), catalog.Filter{Text: q.Get("q"), Tags: q["tag"], Kind: q.Get("kind"), Owner: q.Get("owner"), State: q.Get("state")})
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	if _, err := query(r); err != nil {
		httperr.Write(w, r, err)
		return
	}
	d, err := h.svc.Get(callerOf(r), r.PathValue("api"))
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, d)
}

func (h *handlers) create(w http.ResponseWriter, r *http.Request) {
	var req wire.CreateAPIRequest
	if err := h.decode(w, r, &req, false); err != nil {
		httperr.Write(w, r, err)
		return
	}
	a, err := h.svc.Create(r.Context(), callerOf(r), req)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/catalog/"+url.PathEscape(a.Name))
	api.WriteJSON(w, http.StatusCreated, a)
}

func (h *handlers) update(w http.ResponseWriter, r *http.Request) {
	var req wire.UpdateAPIRequest
	if err := h.decode(w, r, &req, false); err != nil {
		httperr.Write(w, r, err)
		return
	}
	a, err := h.svc.Update(r.Context(), callerOf(r), r.PathValue("api"), req)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, a)
}

func (h *handlers) addVersion(w http.ResponseWriter, r *http.Request) {
	var spec wire.APIVersionSpec
	if err := h.decode(w, r, &spec, false); err != nil {
		httperr.Write(w, r, err)
		return
	}
	a, err := h.svc.AddVersion(r.Context(), callerOf(r), r.PathValue("api"), spec)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusCreated, a)
}

func (h *handlers) transition(w http.ResponseWriter, r *http.Request) {
	var req wire.TransitionRequest
	if err := h.decode(w, r, &req, false); err != nil {
		httperr.Write(w, r, err)
		return
	}
	a, err := h.svc.Transition(r.Context(), callerOf(r), r.PathValue("api"), r.PathValue("version"), req)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, a)
}

// call authorizes and runs a call. The lifecycle headers of a deprecated
// version are set before anything else is written, so that every answer
// carries them, errors included; the call record is marked with the API,
// its version and state, and (once admitted) the consumer.
func (h *handlers) call(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, "version")
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	ctx := r.Context()
	name, c := r.PathValue("api"), callerOf(r)
	api.SetAPI(ctx, name, q.Get("version"), "")
	// A model-only key calls models (model and prompt APIs), never starts
	// orchestrations (auth.RoleModel); refused before Authorize, which
	// would count the call against the grant's quota.
	if a, ok := h.svc.ReadModel().API(name); ok && (a.Owner == c.Tenant || a.Visibility == wire.VisibilityShared) &&
		a.Kind == wire.APIKindOrchestration && !slices.Contains(c.Roles, string(auth.RoleSubmitter)) {
		httperr.Write(w, r, &catalog.Error{Kind: catalog.ErrForbidden, Code: "forbidden",
			Message: "API " + name + " runs orchestrations: calling it needs the submitter role (a model key calls model and prompt APIs)"})
		return
	}
	acc, err := h.svc.Authorize(ctx, c, name, q.Get("version"))
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.SetAPI(ctx, name, acc.Version.Version, acc.Version.State)
	api.SetConsumer(ctx, acc.Consumer, acc.ConsumerApp)
	for k, vs := range acc.Header {
		w.Header()[k] = vs
	}
	body, err := api.ReadBody(w, r, 4<<20)
	if err == nil {
		err = checkJSON(body)
	}
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	out, async, err := h.svc.Call(ctx, h.opts.Runners, acc, c, body)
	if err != nil {
		switch acc.API.Kind {
		case wire.APIKindPrompt:
			err = promptapi.HTTPError(err, nil)
		case wire.APIKindModel:
			err = chatapi.Error(err, nil)
		}
		httperr.Write(w, r, err)
		return
	}
	status := http.StatusOK
	if async {
		status = http.StatusAccepted
		if cc, ok := out.(wire.CatalogCall); ok {
			w.Header().Set("Location", cc.StatusURL)
			api.SetWorkflow(ctx, "", acc.Version.Target.Definition, acc.Version.Target.DefinitionVersion)
		}
	}
	api.WriteJSON(w, status, out)
}

// checkJSON refuses a body that is not one JSON value, locating the
// syntax error.
func checkJSON(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := api.CheckDepth(body, api.DefaultMaxDepth); err != nil {
		return &api.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: err.Error(), Details: []api.Detail{{Message: err.Error()}}}
	}
	if !json.Valid(body) {
		var v any
		return api.DecodeJSON(body, &v, 0, "")
	}
	return nil
}

func (h *handlers) callStatus(w http.ResponseWriter, r *http.Request) {
	st, err := h.svc.CallStatus(r.Context(), h.opts.Runners, callerOf(r), r.PathValue("api"), r.PathValue("id"))
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, st)
}

func (h *handlers) subscribe(w http.ResponseWriter, r *http.Request) {
	var req wire.SubscribeRequest
	if err := h.decode(w, r, &req, false); err != nil {
		httperr.Write(w, r, err)
		return
	}
	s, err := h.svc.Subscribe(r.Context(), callerOf(r), r.PathValue("api"), req)
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/subscriptions/"+url.PathEscape(s.ID))
	api.WriteJSON(w, http.StatusCreated, s)
}

func (h *handlers) listSubs(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, "as", "api", "state")
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	as := q.Get("as")
	if as == "" {
		as = catalog.AsConsumer
	}
	res, err := h.svc.ListSubscriptions(callerOf(r), as, q.Get("api"), q.Get("state"))
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

func (h *handlers) getSub(w http.ResponseWriter, r *http.Request) {
	s, err := h.svc.GetSubscription(callerOf(r), r.PathValue("id"))
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, s)
}

func (h *handlers) end(w http.ResponseWriter, r *http.Request, revoke bool) {
	var req wire.EndSubscriptionRequest
	if err := h.decode(w, r, &req, true); err != nil {
		httperr.Write(w, r, err)
		return
	}
	var (
		s   *catalog.Subscription
		err error
	)
	if revoke {
		s, err = h.svc.Revoke(r.Context(), callerOf(r), r.PathValue("id"), req.Reason)
	} else {
		s, err = h.svc.Cancel(r.Context(), callerOf(r), r.PathValue("id"), req.Reason)
	}
	if err != nil {
		httperr.Write(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, s)
}

func (h *handlers) revoke(w http.ResponseWriter, r *http.Request) { h.end(w, r, true) }
func (h *handlers) cancel(w http.ResponseWriter, r *http.Request) { h.end(w, r, false) }
