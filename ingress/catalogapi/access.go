package catalogapi

import (
	"context"
	"net/http"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/workflows/catalog"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Target is what the proxy needs to forward one call of a service API:
// where to, for whom, under which terms, and the headers its answer must
// carry.
type Target struct {
	// Service is the registered service (its owner is the API's owner).
	Service string
	// API and Version name the catalogue entry called; State is the
	// version's lifecycle state (published, deprecated, or draft for the
	// owner's own test calls).
	API     string
	Version string
	State   string
	// Consumer and ConsumerApp name who is served: the caller's tenant and
	// the app of its grant (the key's app for the owner).
	Consumer    string
	ConsumerApp string
	// Owner is true for the owner's own calls (no grant, no plan).
	Owner bool
	// Plan is the grant's plan; its rate limit and quota were enforced by
	// Route (this call is counted).
	Plan      string
	RateLimit wire.RateLimit
	Quota     wire.Quota
	// Header holds the lifecycle headers of a deprecated version
	// (Deprecation, Sunset, Link), to add to the answer.
	Header http.Header
}

// Access is the catalogue-backed resolver of the proxy: a local lookup in
// this replica's read model, no remote call.
type Access struct {
	svc *catalog.Service
}

// NewAccess returns the resolver over svc.
func NewAccess(svc *catalog.Service) *Access { return &Access{svc: svc} }

// Route decides a call by caller to version ("" for the default one) of
// API api: the errors are catalog errors (ErrNotFound, ErrGone with the
// successor, ErrSubscriptionRequired with how to request one,
// ErrRateLimited, ErrQuotaExceeded with when it resets), answered through
// ingress/httperr. Inside the ingress it also names the API, version and
// consumer in the request's call record.
func (a *Access) Route(ctx context.Context, caller auth.Principal, apiName, version string) (Target, error) {
	c := catalog.Caller{Tenant: caller.Tenant, App: caller.App, KeyID: caller.KeyID, User: caller.User, Roles: caller.Roles, RequestID: api.RequestID(ctx)}
	api.SetAPI(ctx, apiName, version, "")
	// Other kinds are refused before Authorize, which would count the call
	// against the grant's quota.
	if full, ok := a.svc.ReadModel().API(apiName); ok && full.Kind != wire.APIKindService && (full.Owner == c.Tenant || full.Visibility == wire.VisibilityShared) {
		return Target{}, &catalog.Error{Kind: catalog.ErrNotFound, Code: "not_a_service_api",
			Message: "API " + apiName + " is a " + full.Kind + " API: call it with POST /v1/catalog/" + apiName + "/call"}
	}
	acc, err := a.svc.Authorize(ctx, c, apiName, version)
	if err != nil {
		return Target{}, err
	}
	api.SetAPI(ctx, apiName, acc.Version.Version, acc.Version.State)
	api.SetConsumer(ctx, acc.Consumer, acc.ConsumerApp)
	t := Target{Service: acc.Version.Target.Service, API: apiName, Version: acc.Version.Version, State: acc.Version.State,
		Consumer: acc.Consumer, ConsumerApp: acc.ConsumerApp, Owner: acc.Owner, Header: acc.Header}
	if acc.Plan != nil {
		t.Plan, t.RateLimit, t.Quota = acc.Plan.Name, acc.Plan.RateLimit, acc.Plan.Quota
	}
	return t, nil
}
