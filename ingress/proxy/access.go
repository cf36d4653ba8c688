package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/ingress/auth"
)

// Access decides who may call which API through the gateway and with what
// limits. The API catalogue implements it (APIs, versions, lifecycle,
// subscriptions and plans); until then OwnerAccess does, over the services
// of gateflow.yaml. Route is called once per gateway request and must be
// fast (an in-memory lookup): cache what it reads.
type Access interface {
	// Route resolves the API the caller named in /gw/{api}/... at the given
	// version ("" for the default: the latest published). It returns an
	// error wrapping ErrNotFound when the API or version does not exist or
	// is not visible to the caller's tenant (another tenant's API is not
	// found, never forbidden), and one wrapping ErrForbidden when the
	// caller sees the API but may not call it (e.g. a subscription waiting
	// for approval).
	Route(ctx context.Context, caller auth.Principal, api, version string) (Target, error)
}

// Target is what Access resolved: where the call goes and under which
// terms.
type Target struct {
	// API and Version name what was called (records, headers); Version may
	// be empty for an unversioned API.
	API     string
	Version string
	// Service is the service (cluster) of gateflow.yaml whose instances
	// serve the API.
	Service string
	// Owner is the tenant that owns the API: its analytics hold the call
	// records.
	Owner string
	// Consumer is who calls: the caller's tenant and application.
	Consumer Consumer
	// Headers are added to the answer: lifecycle headers such as
	// Deprecation, Sunset and Link (RFC 9745, RFC 8594).
	Headers []Header
	// Limits are the API's and the consumer's plan limits.
	Limits Limits
	// MaxBodyBytes bounds the request body (413 beyond); 0 means the
	// service's max_request_body_bytes.
	MaxBodyBytes int64
	// Cache is the API's caching policy; nil means the service's cache
	// settings.
	Cache *CachePolicy
}

// Consumer identifies the caller of an API: its tenant and application
// (for subscriptions, the subscribed application; without a catalogue,
// the key's user or else the key id).
type Consumer struct {
	Tenant string
	App    string
}

// String is "tenant/app", the consumer of call records and cache keys.
func (c Consumer) String() string { return c.Tenant + "/" + c.App }

// Header is one answer header added by Access.
type Header struct{ Name, Value string }

// Limits are token buckets applied per replica; RPS 0 means unlimited.
type Limits struct {
	// API bounds the calls of every consumer to the API together.
	API Rate
	// Consumer bounds this consumer's calls to the API (its plan).
	Consumer Rate
}

// Rate is a token bucket: RPS calls per second, at most Burst at once.
type Rate struct {
	RPS   float64
	Burst int
}

// CachePolicy is an API's caching policy.
type CachePolicy struct {
	Enabled bool
	// MaxTTL caps the freshness lifetime granted by the upstream.
	MaxTTL time.Duration
	// Public shares stored answers between consumers.
	Public bool
	// MaxEntryBytes bounds one stored answer.
	MaxEntryBytes int64
}

// Errors of the gateway; ingress/httperr maps them to statuses.
var (
	// ErrNotFound: no such API or version for the caller (404).
	ErrNotFound = errors.New("api not found")
	// ErrForbidden: the caller may not call the API (403).
	ErrForbidden = errors.New("api access refused")
	// ErrNoHealthyUpstream: every instance is unhealthy or ejected (503).
	ErrNoHealthyUpstream = errors.New("no healthy upstream")
	// ErrUpstreamTimeout: the upstream did not answer in time (504).
	ErrUpstreamTimeout = errors.New("upstream timeout")
	// ErrUpstreamUnreachable: no instance could be reached, after retries
	// (502).
	ErrUpstreamUnreachable = errors.New("upstream unreachable")
	// ErrOnlyIfCached: the request asked for a stored answer and there is
	// none (504, RFC 9111 5.2.1.7).
	ErrOnlyIfCached = errors.New("not in cache")
)

// RateLimitError is a call refused by a gateway limit (429).
type RateLimitError struct {
	// Scope is "api" or "consumer".
	Scope      string
	API        string
	Limit      int
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("too many requests to API %s for this %s", e.API, e.Scope)
}

// UpstreamError is a failed forward with the request id, wrapping one of
// ErrNoHealthyUpstream, ErrUpstreamTimeout or ErrUpstreamUnreachable.
type UpstreamError struct {
	Err       error
	API       string
	RequestID string
	Tries     int
	Detail    string
}

func (e *UpstreamError) Error() string {
	msg := fmt.Sprintf("%s for API %s", e.Err, e.API)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Tries > 1 {
		msg += fmt.Sprintf(" (%d tries)", e.Tries)
	}
	return msg + " (request id " + e.RequestID + ")"
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// Snapshots gives the current system configuration; *sysconfig.Registry
// implements it.
type Snapshots interface {
	Current() *sysconfig.Snapshot
}

// OwnerAccess is the Access used until the API catalogue lands: an API is
// a service of gateflow.yaml with the same name, callable only by keys of
// the service's owner tenant, with the service's limits and cache
// settings. A service without an owner is callable by UnownedTenant only
// ("dev" under gateflow dev; nobody when empty).
type OwnerAccess struct {
	Config        Snapshots
	UnownedTenant string
}

// Owns reports whether api names a service the caller's tenant may call
// through OwnerAccess (one it owns; an unowned one for UnownedTenant):
// the catalogue lets no other tenant's API shadow such a name.
func (a OwnerAccess) Owns(caller auth.Principal, api string) bool {
	_, ok := a.service(caller, api)
	return ok
}

// service returns the service named api when the caller's tenant owns it.
func (a OwnerAccess) service(caller auth.Principal, api string) (sysconfig.Service, bool) {
	svc, ok := a.Config.Current().Service(api)
	owner := svc.Owner
	if owner == "" {
		owner = a.UnownedTenant
	}
	return svc, ok && owner != "" && owner == caller.Tenant
}

// Route implements Access.
func (a OwnerAccess) Route(_ context.Context, caller auth.Principal, api, version string) (Target, error) {
	svc, ok := a.service(caller, api)
	if !ok {
		return Target{}, fmt.Errorf("%w: no API %q in your tenant", ErrNotFound, api)
	}
	owner := caller.Tenant
	if version != "" {
		return Target{}, fmt.Errorf("%w: API %q has no version %q (it is not versioned)", ErrNotFound, api, version)
	}
	app := caller.User
	if app == "" {
		app = caller.KeyID
	}
	return Target{
		API:      api,
		Service:  svc.Name,
		Owner:    owner,
		Consumer: Consumer{Tenant: caller.Tenant, App: app},
		Limits:   Limits{API: Rate{RPS: svc.GatewayRateLimit.RPS, Burst: svc.GatewayRateLimit.Burst}},
	}, nil
}

// servicePolicy is the cache policy of a service's settings.
func servicePolicy(svc sysconfig.Service) CachePolicy {
	c := svc.Cache.Effective()
	return CachePolicy{Enabled: c.Enabled, MaxTTL: c.MaxTTL.Std(), Public: c.Public, MaxEntryBytes: c.MaxEntryBytes}
}
