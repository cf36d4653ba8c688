package catalogapi

import (
	"context"
	"sort"

	"github.com/gateflow/gateflow/ingress/api"
	"github.com/gateflow/gateflow/ingress/auth"
	"github.com/gateflow/gateflow/ingress/proxy"
	"github.com/gateflow/gateflow/workflows/catalog"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Access is the catalogue-backed resolver of the gateway (proxy.Access):
// a local lookup in this replica's read model, no remote call. APIs the
// catalogue does not show the caller fall through to Fallback (the
// services a tenant owns, callable by that tenant without publishing
// them), so publishing an API never changes how its owner reaches it.
// Catalogue names and service names share /gw/: a name that is one of
// the caller's own services is that service even when another tenant
// publishes an API by the same name (which would otherwise take over the
// caller's route, and put the caller's calls to its own service in that
// tenant's analytics).
type Access struct {
	svc      *catalog.Service
	fallback Fallback
}

// Fallback resolves the names the catalogue does not serve the caller;
// proxy.OwnerAccess implements it. Owns reports whether a name is one of
// the caller's own services.
type Fallback interface {
	proxy.Access
	Owns(caller auth.Principal, api string) bool
}

// NewAccess returns the resolver over svc; fallback (nil: none) answers
// for names the catalogue does not show the caller.
func NewAccess(svc *catalog.Service, fallback Fallback) *Access {
	return &Access{svc: svc, fallback: fallback}
}

// Route decides a call by caller to version ("" for the default one) of
// API apiName: the errors are catalog errors (ErrNotFound, ErrGone with the
// successor, ErrSubscriptionRequired with how to request one,
// ErrRateLimited, ErrQuotaExceeded with when it resets), answered through
// ingress/httperr. The plan's rate limit and quota are enforced here (the
// call is counted), so the target carries no further consumer limit.
// Inside the ingress it also names the API, version and consumer in the
// request's call record.
func (a *Access) Route(ctx context.Context, caller auth.Principal, apiName, version string) (proxy.Target, error) {
	full, known := a.svc.ReadModel().API(apiName)
	if known && full.Owner != caller.Tenant {
		// Another tenant's private API is simply not found, and another
		// tenant's API never shadows one of the caller's services.
		known = full.Visibility == wire.VisibilityShared && (a.fallback == nil || !a.fallback.Owns(caller, apiName))
	}
	if !known && a.fallback != nil {
		return a.fallback.Route(ctx, caller, apiName, version)
	}
	c := catalog.Caller{Tenant: caller.Tenant, App: caller.App, KeyID: caller.KeyID, User: caller.User, Roles: caller.Roles, RequestID: api.RequestID(ctx)}
	api.SetAPI(ctx, apiName, version, "")
	// Other kinds are refused before Authorize, which would count the call
	// against the grant's quota.
	if known && full.Kind != wire.APIKindService {
		return proxy.Target{}, &catalog.Error{Kind: catalog.ErrNotFound, Code: "not_a_service_api",
			Message: "API " + apiName + " is a " + full.Kind + " API: call it with POST /v1/catalog/" + apiName + "/call"}
	}
	acc, err := a.svc.Authorize(ctx, c, apiName, version)
	if err != nil {
		return proxy.Target{}, err
	}
	api.SetAPI(ctx, apiName, acc.Version.Version, acc.Version.State)
	api.SetConsumer(ctx, acc.Consumer, acc.ConsumerApp)
	t := proxy.Target{
		API:      apiName,
		Version:  acc.Version.Version,
		Service:  acc.Version.Target.Service,
		Owner:    acc.API.Owner,
		Consumer: proxy.Consumer{Tenant: acc.Consumer, App: acc.ConsumerApp},
	}
	names := make([]string, 0, len(acc.Header))
	for k := range acc.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range acc.Header[k] {
			t.Headers = append(t.Headers, proxy.Header{Name: k, Value: v})
		}
	}
	return t, nil
}
