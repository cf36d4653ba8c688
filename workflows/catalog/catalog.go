// Package catalog is the API catalogue's control plane (docs/CATALOG.md):
// tenants publish APIs (a service, an orchestration, a prompt API or a
// model alias), version them and move each version through its lifecycle
// (draft, published, deprecated, retired); other tenants find the shared
// ones, subscribe under a plan, and once the owner's approvers agree hold
// a grant that lets them call the API within the plan's rate limit and
// quota.
//
// Where things live:
//
//   - Each owner tenant's APIs and the subscriptions to them are held by
//     one entity workflow ("gateflow-catalog/<tenant>", Entity) changed
//     only by validated Updates. Every change is published, full value per
//     key ("api/<name>", "sub/<id>"), on a compacted Kafka topic through
//     workflows/replicated.
//   - API names are unique across tenants: a small entity
//     ("gateflow-catalog-names", Names) claims each name for its owner
//     before the API is created.
//   - A subscription request starts Subscription, a workflow that runs the
//     built-in definition "catalog-subscription" (one approval step with
//     the API's approvers) in the generic interpreter, in the owner's
//     tenant, so approvers decide through /v1/approvals, the CLI and the
//     MCP tools like any approval; then an activity applies the decision
//     to the owner's entity.
//   - Every ingress replica tails the topic into a ReadModel; the
//     per-request check (Service.Authorize) is a map lookup there, plus
//     the plan's rate limit and quota (Quotas).
//
// Nothing here knows HTTP: errors are *Error values of the sentinel kinds
// below, mapped to statuses in ingress/httperr.
package catalog

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Names registered with Temporal; part of the contract with running
// catalogue workflows.
const (
	// EntityWorkflow is the workflow type of an owner's catalogue.
	EntityWorkflow = "gateflow.Catalog"
	// NamesWorkflow is the workflow type of the name claims.
	NamesWorkflow = "gateflow.CatalogNames"
	// SubscriptionWorkflow is the workflow type of one subscription's
	// approval.
	SubscriptionWorkflow = "gateflow.CatalogSubscription"
	// ApplyDecisionActivity applies an approval's outcome to the owner's
	// entity.
	ApplyDecisionActivity = "gateflow.CatalogApplyDecision"

	// EntityIDPrefix is followed by the owner tenant.
	EntityIDPrefix = "gateflow-catalog/"
	// NamesWorkflowID is the one name-claims entity.
	NamesWorkflowID = "gateflow-catalog-names"
	// SubscriptionIDPrefix is followed by the subscription id.
	SubscriptionIDPrefix = "gateflow-catalog-subscription/"

	// Updates of the owner's entity.
	UpdateCreateAPI    = "create_api"
	UpdateAddVersion   = "add_version"
	UpdateUpdateAPI    = "update_api"
	UpdateTransition   = "transition"
	UpdateSubscribe    = "subscribe"
	UpdateDecide       = "decide_subscription"
	UpdateRevoke       = "revoke_subscription"
	UpdateCancel       = "cancel_subscription"
	QuerySnapshot      = "snapshot"
	UpdateClaimName    = "claim"
	QueryNames         = "names"
	approvalDefinition = "catalog-subscription"
	approvalVersion    = "1"
	// ApprovalStep is the step of the approval orchestration approvers
	// decide.
	ApprovalStep = "approve"
)

// DefaultTopic is the compacted topic of the catalogue.
const DefaultTopic = "gateflow.catalog"

// EntityID is the workflow id of an owner's catalogue.
func EntityID(owner string) string { return EntityIDPrefix + owner }

// ApprovalRunID is the API id (in the owner's tenant) of the approval
// orchestration of a subscription.
func ApprovalRunID(subscriptionID string) string { return "subscription-" + subscriptionID }

// Record keys on the topic.
const (
	apiKeyPrefix = "api/"
	subKeyPrefix = "sub/"
)

func apiKey(name string) string { return apiKeyPrefix + name }
func subKey(id string) string   { return subKeyPrefix + id }

// Types of the catalogue, shared with clients through workflows/wire.
type (
	// API is one catalogue entry.
	API = wire.API
	// APIVersion is one version of an API.
	APIVersion = wire.APIVersion
	// Subscription is a consumer's request and grant.
	Subscription = wire.Subscription
	// Plan is one of the terms an API offers.
	Plan = wire.Plan
)

// Sentinel error kinds. Errors of this package are *Error values of one of
// them; ingress/httperr maps each to a status.
var (
	// ErrNotFound: no such API, version or subscription for the caller
	// (another tenant's private API is not found either). 404.
	ErrNotFound = errors.New("not found")
	// ErrGone: the API version (or every version) is retired. 410.
	ErrGone = errors.New("gone")
	// ErrConflict: the request contradicts the current state (a lifecycle
	// move not allowed from the current state, a request while one is
	// pending, a name taken). 409.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request is malformed; Details locate each problem.
	// 422.
	ErrInvalid = errors.New("invalid")
	// ErrForbidden: the caller may not do this (not the owner, not the
	// consumer). 403.
	ErrForbidden = errors.New("forbidden")
	// ErrSubscriptionRequired: the caller neither owns the API nor holds an
	// active grant. 403 subscription_required.
	ErrSubscriptionRequired = errors.New("subscription required")
	// ErrQuotaExceeded: the grant's daily or monthly quota is used up.
	// 429 quota_exceeded with when it resets.
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrRateLimited: the grant's rate limit. 429 rate_limited.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnavailable: the catalogue is not loaded yet, or Temporal did not
	// answer. 503.
	ErrUnavailable = errors.New("unavailable")
)

// Error is a catalogue failure with a stable code for API clients.
type Error struct {
	Kind    error
	Code    string
	Message string
	// Details locate the problems of an ErrInvalid request.
	Details []definition.Problem
	// RetryAfter is set on ErrQuotaExceeded and ErrRateLimited.
	RetryAfter time.Duration
	// Header holds response headers the answer must carry (the lifecycle
	// headers of a deprecated version, Retry-After).
	Header http.Header
}

func (e *Error) Error() string { return e.Message }

// Is makes errors.Is(err, ErrConflict) work.
func (e *Error) Is(target error) bool { return target == e.Kind }

func newError(kind error, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalid(problems ...definition.Problem) *Error {
	msg := "invalid request"
	if len(problems) > 0 {
		msg = problems[0].Path + ": " + problems[0].Message
		if problems[0].Path == "" {
			msg = problems[0].Message
		}
	}
	return &Error{Kind: ErrInvalid, Code: "validation_failed", Message: msg, Details: problems}
}

// Caller is who asks: a key of a tenant, maybe of one of its apps.
type Caller struct {
	Tenant string
	App    string
	KeyID  string
	User   string
	Roles  []string
	// RequestID names the request in logs and records.
	RequestID string
}

// By is how the caller is named in histories: the user, else the key.
func (c Caller) By() string {
	if c.User != "" {
		return c.User
	}
	return c.KeyID
}
