package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gateflow/gateflow/workflows/definition"
)

// The API catalogue (docs/CATALOG.md): APIs that tenants publish for other
// tenants, their versions and lifecycle, and the subscriptions (grants)
// that let a consumer call them. These are the values the catalogue
// entity workflows hold and replicate, and the REST API's answers.

// API kinds: what a call to the API runs.
const (
	// APIKindService forwards plain HTTP calls to a registered service the
	// owner owns (served by the proxy).
	APIKindService = "service"
	// APIKindOrchestration runs a definition the owner may run.
	APIKindOrchestration = "orchestration"
	// APIKindPrompt runs a prompt API visible to the owner.
	APIKindPrompt = "prompt"
	// APIKindModel answers chat completions with a model alias the owner
	// may use.
	APIKindModel = "model"
)

// APIKinds lists the kinds in documentation order.
var APIKinds = []string{APIKindService, APIKindOrchestration, APIKindPrompt, APIKindModel}

// Visibilities of an API.
const (
	// VisibilityPrivate: only the owner tenant sees the API.
	VisibilityPrivate = "private"
	// VisibilityShared: every tenant sees the API (its non-draft versions)
	// and may request a subscription.
	VisibilityShared = "shared"
)

// Lifecycle states of an API version.
const (
	// StateDraft: only the owner sees and calls it.
	StateDraft = "draft"
	// StatePublished: served to the owner and to consumers with a grant.
	StatePublished = "published"
	// StateDeprecated: still served; every answer carries Deprecation,
	// Sunset and Link headers.
	StateDeprecated = "deprecated"
	// StateRetired: 410 Gone, naming the successor. Final.
	StateRetired = "retired"
)

// States lists the lifecycle states in order.
var States = []string{StateDraft, StatePublished, StateDeprecated, StateRetired}

// Subscription states.
const (
	// SubscriptionPending: waiting for the owner's approvers.
	SubscriptionPending = "pending"
	// SubscriptionActive: the grant lets the consumer call the API.
	SubscriptionActive = "active"
	// SubscriptionRejected: the approvers said no (or the wait timed out).
	SubscriptionRejected = "rejected"
	// SubscriptionRevoked: the owner withdrew an active grant.
	SubscriptionRevoked = "revoked"
	// SubscriptionCancelled: the consumer withdrew its request or grant.
	SubscriptionCancelled = "cancelled"
)

// RateLimit is a token bucket: RPS calls per second, at most Burst at once.
// RPS 0 means unlimited.
type RateLimit struct {
	RPS   float64 `json:"rps,omitempty"`
	Burst int     `json:"burst,omitempty"`
}

// Quota bounds the calls of one grant per UTC day and month; 0 means
// unlimited.
type Quota struct {
	Daily   int64 `json:"daily,omitempty"`
	Monthly int64 `json:"monthly,omitempty"`
}

// Plan is one of the terms an API offers its consumers.
type Plan struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	RateLimit   RateLimit `json:"rate_limit,omitempty"`
	Quota       Quota     `json:"quota,omitempty"`
}

// SubscriptionApproval says who approves subscriptions to an API, with the
// rules of an approval step (quorum, timeout, escalation), or, written as
// the string "none", that requests are granted at once.
type SubscriptionApproval struct {
	// None grants every request at once (JSON: "approval": "none").
	None      bool      `json:"-"`
	Approvers Approvers `json:"approvers"`
	// Quorum approvals grant the request (default 1); one rejection
	// rejects it.
	Quorum int `json:"quorum,omitempty"`
	// Timeout bounds the wait (default 7 days); OnTimeout says what then
	// happens: reject (default), approve or escalate to EscalateTo, who
	// get EscalationTimeout more.
	Timeout           definition.Duration `json:"timeout,omitempty"`
	OnTimeout         string              `json:"on_timeout,omitempty"`
	EscalateTo        *Approvers          `json:"escalate_to,omitempty"`
	EscalationTimeout definition.Duration `json:"escalation_timeout,omitempty"`
}

// approvalFields is SubscriptionApproval without its methods.
type approvalFields SubscriptionApproval

// MarshalJSON writes "none" or the object.
func (a SubscriptionApproval) MarshalJSON() ([]byte, error) {
	if a.None {
		return []byte(`"none"`), nil
	}
	return json.Marshal(approvalFields(a))
}

// UnmarshalJSON reads "none" or the object (unknown fields refused).
func (a *SubscriptionApproval) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s != "none" {
			return fmt.Errorf(`approval: want "none" or an object with approvers, not %q`, s)
		}
		*a = SubscriptionApproval{None: true}
		return nil
	}
	var f approvalFields
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("approval: %w", err)
	}
	*a = SubscriptionApproval(f)
	return nil
}

// APITarget is what a version of an API runs, by kind: a service (kind
// service), a definition name@version (orchestration), a prompt API
// name@version (prompt) or a model alias (model).
type APITarget struct {
	Service           string `json:"service,omitempty"`
	Definition        string `json:"definition,omitempty"`
	DefinitionVersion string `json:"definition_version,omitempty"`
	Prompt            string `json:"prompt,omitempty"`
	PromptVersion     string `json:"prompt_version,omitempty"`
	Model             string `json:"model,omitempty"`
}

// APIVersion is one version of an API with its lifecycle state.
type APIVersion struct {
	Version string    `json:"version"`
	State   string    `json:"state"`
	Target  APITarget `json:"target"`
	Notes   string    `json:"notes,omitempty"`
	// OpenAPI is the version's OpenAPI document: supplied for service
	// APIs, generated from the schemas for orchestrations and prompts.
	OpenAPI json.RawMessage `json:"openapi,omitempty"`
	// Successor names the version consumers should move to (set when the
	// version is deprecated or retired).
	Successor string `json:"successor,omitempty"`
	// Sunset is when a deprecated version is planned to be retired.
	Sunset       *time.Time `json:"sunset,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	CreatedBy    string     `json:"created_by,omitempty"`
	PublishedAt  *time.Time `json:"published_at,omitempty"`
	DeprecatedAt *time.Time `json:"deprecated_at,omitempty"`
	RetiredAt    *time.Time `json:"retired_at,omitempty"`
}

// Actions of the history of an API.
const (
	ActionCreated      = "created"
	ActionUpdated      = "updated"
	ActionVersionAdded = "version_added"
	ActionStateChanged = "state_changed"
)

// APIEvent is one entry of an API's history: who did what, when, why.
type APIEvent struct {
	At      time.Time `json:"at"`
	By      string    `json:"by"`
	Action  string    `json:"action"`
	Version string    `json:"version,omitempty"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

// API is one entry of the catalogue, owned by a tenant. Its name is
// unique across tenants.
type API struct {
	Name        string               `json:"name"`
	Owner       string               `json:"owner"`
	Kind        string               `json:"kind"`
	Title       string               `json:"title"`
	Description string               `json:"description,omitempty"`
	Tags        []string             `json:"tags,omitempty"`
	Visibility  string               `json:"visibility"`
	Docs        string               `json:"docs,omitempty"`
	Plans       []Plan               `json:"plans"`
	Approval    SubscriptionApproval `json:"approval"`
	Versions    []APIVersion         `json:"versions"`
	History     []APIEvent           `json:"history,omitempty"`
	CreatedAt   time.Time            `json:"created_at"`
	CreatedBy   string               `json:"created_by,omitempty"`
	UpdatedAt   time.Time            `json:"updated_at"`
}

// Version returns the named version, or nil.
func (a *API) Version(v string) *APIVersion {
	for i := range a.Versions {
		if a.Versions[i].Version == v {
			return &a.Versions[i]
		}
	}
	return nil
}

// Plan returns the named plan, or nil.
func (a *API) Plan(name string) *Plan {
	for i := range a.Plans {
		if a.Plans[i].Name == name {
			return &a.Plans[i]
		}
	}
	return nil
}

// SubscriptionEvent is one state change of a subscription.
type SubscriptionEvent struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to"`
	Reason string    `json:"reason,omitempty"`
}

// Subscription is a consumer's request for, and then grant of, access to
// an API under a plan. The consumer is a tenant, or an app of the tenant
// (a named group of its keys) when App is set.
type Subscription struct {
	ID       string `json:"id"`
	API      string `json:"api"`
	Owner    string `json:"owner"`
	Consumer string `json:"consumer"`
	App      string `json:"app,omitempty"`
	Plan     string `json:"plan"`
	State    string `json:"state"`
	// WorkflowID is the approval orchestration's id in the owner's tenant:
	// its approvers decide step "approve" through /v1/approvals.
	WorkflowID  string              `json:"workflow_id,omitempty"`
	RequestedAt time.Time           `json:"requested_at"`
	RequestedBy string              `json:"requested_by,omitempty"`
	DecidedAt   *time.Time          `json:"decided_at,omitempty"`
	DecidedBy   string              `json:"decided_by,omitempty"`
	EndedAt     *time.Time          `json:"ended_at,omitempty"`
	EndedBy     string              `json:"ended_by,omitempty"`
	Reason      string              `json:"reason,omitempty"`
	History     []SubscriptionEvent `json:"history,omitempty"`
}

// Live reports whether the subscription is pending or active (the states
// that block a second request).
func (s *Subscription) Live() bool {
	return s.State == SubscriptionPending || s.State == SubscriptionActive
}

// VersionState is a version and its state, for lists.
type VersionState struct {
	Version string `json:"version"`
	State   string `json:"state"`
}

// APISummary is one API in a catalogue list.
type APISummary struct {
	Name        string         `json:"name"`
	Owner       string         `json:"owner"`
	Kind        string         `json:"kind"`
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	Tags        []string       `json:"tags,omitempty"`
	Visibility  string         `json:"visibility"`
	Versions    []VersionState `json:"versions"`
	// Subscription is the caller's live (pending or active) subscription.
	Subscription *Subscription `json:"subscription,omitempty"`
}

// APIList answers GET /v1/catalog.
type APIList struct {
	Items []APISummary `json:"items"`
}

// APIDetail answers GET /v1/catalog/{api}: the API as the caller may see
// it (other tenants see neither drafts nor the history of drafts) and the
// caller's subscriptions to it.
type APIDetail struct {
	API
	Subscriptions []Subscription `json:"subscriptions,omitempty"`
}

// Subscriptions answers the subscription lists.
type Subscriptions struct {
	Items []Subscription `json:"items"`
}

// APIVersionSpec describes a new version of an API.
type APIVersionSpec struct {
	Version string    `json:"version"`
	Target  APITarget `json:"target"`
	Notes   string    `json:"notes,omitempty"`
	// OpenAPI is required for service APIs and generated for the others.
	OpenAPI json.RawMessage `json:"openapi,omitempty"`
}

// CreateAPIRequest creates an API with its first version (a draft).
type CreateAPIRequest struct {
	Name        string   `json:"name"`
	Kind        string   `json:"kind"`
	Title       string   `json:"title"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	// Visibility is private (default) or shared.
	Visibility string `json:"visibility,omitempty"`
	Docs       string `json:"docs,omitempty"`
	// Plans default to one unlimited plan named "default".
	Plans []Plan `json:"plans,omitempty"`
	// Approval defaults to the owner's admins (role admin), one vote.
	Approval *SubscriptionApproval `json:"approval,omitempty"`
	Version  APIVersionSpec        `json:"version"`
}

// UpdateAPIRequest changes an API's description and terms; fields left out
// stay as they are.
type UpdateAPIRequest struct {
	Title       *string               `json:"title,omitempty"`
	Description *string               `json:"description,omitempty"`
	Tags        *[]string             `json:"tags,omitempty"`
	Visibility  *string               `json:"visibility,omitempty"`
	Docs        *string               `json:"docs,omitempty"`
	Plans       *[]Plan               `json:"plans,omitempty"`
	Approval    *SubscriptionApproval `json:"approval,omitempty"`
	Reason      string                `json:"reason,omitempty"`
}

// TransitionRequest moves a version through the lifecycle.
type TransitionRequest struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Successor names the version to move to (deprecated and retired).
	Successor string `json:"successor,omitempty"`
	// Sunset is the planned retirement of a deprecated version (default 90
	// days after the deprecation).
	Sunset *time.Time `json:"sunset,omitempty"`
}

// SubscribeRequest asks for a grant under one of the API's plans, for the
// caller's tenant or for one of its apps.
type SubscribeRequest struct {
	Plan   string `json:"plan"`
	App    string `json:"app,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// EndSubscriptionRequest revokes (owner) or cancels (consumer) a
// subscription.
type EndSubscriptionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// CatalogCall answers a call of an orchestration API: the run started in
// the owner's tenant, and where the consumer follows it.
type CatalogCall struct {
	API        string `json:"api"`
	Version    string `json:"version"`
	ID         string `json:"id"`
	RunID      string `json:"run_id"`
	Definition string `json:"definition"`
	StatusURL  string `json:"status_url"`
}
