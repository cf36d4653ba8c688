package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/gateflow/gateflow/workflows/wire"
)

// The API catalogue (docs/CATALOG.md): its types are shared with the server
// through workflows/wire.
type (
	// API is a catalogue entry.
	API = wire.API
	// APIDetail is an API with the caller's subscriptions to it.
	APIDetail = wire.APIDetail
	// APIList answers CatalogSearch.
	APIList = wire.APIList
	// CreateAPIRequest creates an API with its first version.
	CreateAPIRequest = wire.CreateAPIRequest
	// UpdateAPIRequest changes an API's description and terms.
	UpdateAPIRequest = wire.UpdateAPIRequest
	// APIVersionSpec describes a new version.
	APIVersionSpec = wire.APIVersionSpec
	// TransitionRequest moves a version through the lifecycle.
	TransitionRequest = wire.TransitionRequest
	// Subscription is a consumer's request and grant.
	Subscription = wire.Subscription
	// Subscriptions is a list of subscriptions.
	Subscriptions = wire.Subscriptions
	// SubscribeRequest asks for a grant under a plan.
	SubscribeRequest = wire.SubscribeRequest
	// CatalogCall answers a call of an orchestration API.
	CatalogCall = wire.CatalogCall
	// APIKey describes an API key (never its secret).
	APIKey = wire.APIKey
	// CreatedKey is a created key, with the key shown once.
	CreatedKey = wire.CreatedKey
	// CreateKeyRequest creates a key.
	CreateKeyRequest = wire.CreateKeyRequest
)

// CatalogFilter selects APIs in CatalogSearch; empty fields match all.
type CatalogFilter struct {
	Text  string
	Tags  []string
	Kind  string
	Owner string
	State string
}

func apiPath(name string) string { return "/v1/catalog/" + url.PathEscape(name) }

// CatalogSearch lists the APIs the caller may see that match f.
func (c *Client) CatalogSearch(ctx context.Context, f CatalogFilter) (APIList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"q": f.Text, "kind": f.Kind, "owner": f.Owner, "state": f.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, t := range f.Tags {
		q.Add("tag", t)
	}
	var out APIList
	_, err := c.call(ctx, http.MethodGet, "/v1/catalog", q, nil, nil, &out)
	return out, err
}

// CatalogGet returns one API with the caller's subscriptions to it.
func (c *Client) CatalogGet(ctx context.Context, name string) (APIDetail, error) {
	var out APIDetail
	_, err := c.call(ctx, http.MethodGet, apiPath(name), nil, nil, nil, &out)
	return out, err
}

// CatalogCreate publishes a new API (its first version is a draft).
func (c *Client) CatalogCreate(ctx context.Context, r CreateAPIRequest) (API, error) {
	var out API
	_, err := c.call(ctx, http.MethodPost, "/v1/catalog", nil, r, nil, &out)
	return out, err
}

// CatalogUpdate changes an API's description and terms.
func (c *Client) CatalogUpdate(ctx context.Context, name string, r UpdateAPIRequest) (API, error) {
	var out API
	_, err := c.call(ctx, http.MethodPatch, apiPath(name), nil, r, nil, &out)
	return out, err
}

// CatalogAddVersion adds a draft version.
func (c *Client) CatalogAddVersion(ctx context.Context, name string, spec APIVersionSpec) (API, error) {
	var out API
	_, err := c.call(ctx, http.MethodPost, apiPath(name)+"/versions", nil, spec, nil, &out)
	return out, err
}

// CatalogTransition moves a version through the lifecycle.
func (c *Client) CatalogTransition(ctx context.Context, name, version string, r TransitionRequest) (API, error) {
	var out API
	_, err := c.call(ctx, http.MethodPost, apiPath(name)+"/versions/"+url.PathEscape(version)+"/lifecycle", nil, r, nil, &out)
	return out, err
}

// CallResult is the answer of CatalogCall: the body (a CatalogCall for an
// orchestration, the answer of a prompt or model API) and the lifecycle
// headers of a deprecated version.
type CallResult struct {
	Status int
	Body   json.RawMessage
	// Deprecation, Sunset and Link are set when the version called is
	// deprecated.
	Deprecation string
	Sunset      string
	Link        []string
}

// CatalogCall calls an orchestration, prompt or model API (version "" for
// the newest published one) with body (the input, the variables or a chat
// request).
func (c *Client) CatalogCall(ctx context.Context, name, version string, body any) (CallResult, error) {
	q := url.Values{}
	if version != "" {
		q.Set("version", version)
	}
	var raw json.RawMessage
	resp, err := c.call(ctx, http.MethodPost, apiPath(name)+"/call", q, body, nil, &raw)
	if err != nil {
		return CallResult{}, err
	}
	return CallResult{Status: resp.StatusCode, Body: raw, Deprecation: resp.Header.Get("Deprecation"),
		Sunset: resp.Header.Get("Sunset"), Link: resp.Header.Values("Link")}, nil
}

// CatalogCallStatus returns the status of an orchestration started through
// an API.
func (c *Client) CatalogCallStatus(ctx context.Context, name, id string) (Status, error) {
	var st Status
	_, err := c.call(ctx, http.MethodGet, apiPath(name)+"/calls/"+url.PathEscape(id), nil, nil, nil, &st)
	return st, err
}

// Subscribe requests a grant to a shared API.
func (c *Client) Subscribe(ctx context.Context, name string, r SubscribeRequest) (Subscription, error) {
	var out Subscription
	_, err := c.call(ctx, http.MethodPost, apiPath(name)+"/subscriptions", nil, r, nil, &out)
	return out, err
}

// ListSubscriptions lists the caller's subscriptions (as "consumer") or
// those to its APIs (as "owner"), narrowed to an API and a state when set.
func (c *Client) ListSubscriptions(ctx context.Context, as, api, state string) (Subscriptions, error) {
	q := url.Values{}
	for k, v := range map[string]string{"as": as, "api": api, "state": state} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out Subscriptions
	_, err := c.call(ctx, http.MethodGet, "/v1/subscriptions", q, nil, nil, &out)
	return out, err
}

// GetSubscription returns one subscription.
func (c *Client) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	var out Subscription
	_, err := c.call(ctx, http.MethodGet, "/v1/subscriptions/"+url.PathEscape(id), nil, nil, nil, &out)
	return out, err
}

// RevokeSubscription ends a subscription to one of the caller's APIs.
func (c *Client) RevokeSubscription(ctx context.Context, id, reason string) (Subscription, error) {
	var out Subscription
	_, err := c.call(ctx, http.MethodPost, "/v1/subscriptions/"+url.PathEscape(id)+"/revoke", nil, wire.EndSubscriptionRequest{Reason: reason}, nil, &out)
	return out, err
}

// CancelSubscription ends one of the caller's subscriptions.
func (c *Client) CancelSubscription(ctx context.Context, id, reason string) (Subscription, error) {
	var out Subscription
	_, err := c.call(ctx, http.MethodPost, "/v1/subscriptions/"+url.PathEscape(id)+"/cancel", nil, wire.EndSubscriptionRequest{Reason: reason}, nil, &out)
	return out, err
}

// Keys lists the caller's tenant's keys (admin).
func (c *Client) Keys(ctx context.Context) ([]APIKey, error) {
	var out wire.APIKeys
	_, err := c.call(ctx, http.MethodGet, "/v1/keys", nil, nil, nil, &out)
	return out.Items, err
}

// CreateKey creates a key for the caller's tenant; the answer holds the key,
// shown only this once.
func (c *Client) CreateKey(ctx context.Context, r CreateKeyRequest) (CreatedKey, error) {
	var out CreatedKey
	_, err := c.call(ctx, http.MethodPost, "/v1/keys", nil, r, nil, &out)
	return out, err
}

// DisableKey disables a key created through the API.
func (c *Client) DisableKey(ctx context.Context, id, reason string) (APIKey, error) {
	var out APIKey
	_, err := c.call(ctx, http.MethodPost, "/v1/keys/"+url.PathEscape(id)+"/disable", nil, wire.DisableKeyRequest{Reason: reason}, nil, &out)
	return out, err
}
