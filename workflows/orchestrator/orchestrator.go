// Package orchestrator is the business logic behind the REST API: it starts,
// inspects, lists, watches, cancels and decides orchestrations through the
// Temporal client, and resolves and publishes definitions through a store.
//
// It knows nothing about HTTP. Every failure it returns wraps one of the
// sentinel errors below (or is a *definition.ValidationError), which the
// ingress maps to HTTP statuses in exactly one place.
//
// Tenant isolation: every Temporal workflow id is "<tenant>/<id>" and the
// API only ever shows "<id>". A caller can only name workflows of its own
// tenant, so a guessed id of another tenant is simply not found; the tenant
// search attribute is checked as well, as a second line of defence.
package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/workflows"
	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/wire"
)

// Sentinel error kinds. Errors returned by the Orchestrator wrap exactly one
// of them (or are a *definition.ValidationError).
var (
	// ErrNotFound: no such workflow, step or definition for this tenant.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request contradicts the current state (idempotency
	// key reused with another body, step not waiting, workflow closed,
	// version already published).
	ErrConflict = errors.New("conflict")
	// ErrForbidden: the caller is authenticated but not allowed to do this
	// (not an approver of the step, inline definitions not allowed).
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid: the request is malformed (bad id, bad filter, bad cursor).
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable: Temporal or a worker did not answer; retry later.
	ErrUnavailable = errors.New("unavailable")
)

// Error is an error of one of the sentinel kinds with a stable,
// machine-readable code (e.g. "step_not_waiting") for API clients.
type Error struct {
	Kind    error
	Code    string
	Message string
	// Details locate each problem of an ErrInvalid request.
	Details []definition.Problem
	// Cause is the underlying failure, for logs only: Message is what a
	// client sees and never carries Temporal's addresses.
	Cause error
}

// Error is Message, with the cause for logs.
func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

// Is reports whether target is e's kind, so errors.Is(err, ErrConflict) works.
func (e *Error) Is(target error) bool { return target == e.Kind }

// ErrorCode returns the machine-readable code.
func (e *Error) ErrorCode() string { return e.Code }

// problems collects request problems into one ErrInvalid error.
type problems []definition.Problem

func (p *problems) add(path, msg string) {
	*p = append(*p, definition.Problem{Path: path, Message: msg})
}

func (p problems) err(what string) error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Kind: ErrInvalid, Code: "invalid_request", Message: "invalid " + what, Details: p}
}

func newError(kind error, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Caller is the authenticated principal behind a request, as established by
// the ingress.
type Caller struct {
	Tenant    string
	KeyID     string
	User      string
	Roles     []string
	RequestID string
}

// SubmittedBy is how the caller is named in memos and run metadata: the
// user when the key has one, else the key id.
func (c Caller) SubmittedBy() string {
	if c.User != "" {
		return c.User
	}
	return c.KeyID
}

// Identity is the caller as the workflow sees it in decisions.
func (c Caller) Identity() workflows.Identity {
	return workflows.Identity{KeyID: c.KeyID, User: c.User, Roles: append([]string(nil), c.Roles...)}
}

// Definitions resolves, lists and publishes definitions. The ingress wires
// the registry (config-dir definitions and the Temporal-backed store) behind
// it; errors must wrap ErrNotFound or ErrConflict where they apply.
type Definitions interface {
	// Get returns name@version visible to tenant; version "" means latest.
	Get(ctx context.Context, tenant, name, version string) (definition.Definition, error)
	// List returns every version visible to tenant.
	List(ctx context.Context, tenant string) ([]DefinitionInfo, error)
	// Publish stores a new version; it returns a *definition.ValidationError
	// for an invalid one and wraps ErrConflict when name@version exists with
	// another content (the same content again is not an error: Existing).
	Publish(ctx context.Context, tenant string, def definition.Definition, by string) (DefinitionInfo, error)
}

// DefinitionInfo describes one published version.
type DefinitionInfo = wire.DefinitionInfo

// Policies answers per-tenant permissions.
type Policies interface {
	// AllowInline reports whether the tenant may submit inline definitions.
	AllowInline(tenant string) bool
}

// Options configure an Orchestrator.
type Options struct {
	// Client talks to Temporal. Required.
	Client client.Client
	// TaskQueue is where orchestrations run (workflows.DefaultTaskQueue when empty).
	TaskQueue string
	// Definitions resolves definitions. Required.
	Definitions Definitions
	// Policies answers per-tenant permissions; nil allows no inline definitions.
	Policies Policies
	// ValidateDefinition checks a definition as the tenant may run it
	// (definition.Validate against what the tenant may use: its services,
	// models and MCP servers): an inline one, one being published, and every
	// definition at start, so that a withdrawn grant refuses the start with
	// the path of the step instead of failing a step later. Required.
	ValidateDefinition func(tenant string, def *definition.Definition) error
	// ValidateInput checks an input against a definition's input schema
	// (definition.ValidateInput). Required.
	ValidateInput func(def *definition.Definition, input json.RawMessage) error
	// ServiceDefaults gives the registry's per-service timeout and retry
	// policy, merged into http steps at start; nil leaves steps as written.
	ServiceDefaults workflows.ServiceDefaults
	// RunLimits gives a tenant's run limits, copied into each orchestration
	// at start (ValidateDefinition checks a definition against the same
	// limits); nil means definition.DefaultRunLimits.
	RunLimits func(tenant string) definition.RunLimits
	// QueryTimeout bounds one status query of a running workflow (default 10s).
	QueryTimeout time.Duration
	// ClosedQueryTimeout bounds the status query of a closed workflow,
	// answered by a worker replaying its history (default 3s); past it the
	// status comes from Temporal's record of the run, without steps.
	ClosedQueryTimeout time.Duration
	// ApprovalScanLimit bounds how many running workflows one
	// PendingApprovals list queries (DefaultApprovalScanLimit).
	ApprovalScanLimit int
	// ApprovalConcurrency bounds parallel status queries (default 8).
	ApprovalConcurrency int
	// ApprovalDeadline bounds the time one PendingApprovals list takes
	// (DefaultApprovalDeadline); past it the list is truncated.
	ApprovalDeadline time.Duration
	// ApprovalCacheTTL is how long a caller's PendingApprovals list is
	// reused (DefaultApprovalCacheTTL); negative: never.
	ApprovalCacheTTL time.Duration
	// WatchMinInterval and WatchMaxInterval bound how often Watch queries a
	// workflow (defaults 100ms and 5s); see Watch.
	WatchMinInterval time.Duration
	WatchMaxInterval time.Duration
	// Log receives warnings about partial failures; nil discards them.
	Log *slog.Logger
	// DataConverter is the one the client uses (payloadcodec's when
	// payloads are encrypted): memo fields are read with it. Nil means
	// Temporal's default.
	DataConverter converter.DataConverter
}

// Orchestrator implements the API operations on top of Temporal.
type Orchestrator struct {
	c    client.Client
	opts Options
	log  *slog.Logger
	// approvals keeps callers' pending-approvals lists briefly.
	approvals *approvalCache

	saTenant, saDefinition, saVersion temporal.SearchAttributeKeyKeyword
}

// New returns an Orchestrator.
func New(opts Options) (*Orchestrator, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("orchestrator: Client is required")
	case opts.Definitions == nil:
		return nil, errors.New("orchestrator: Definitions is required")
	case opts.ValidateDefinition == nil || opts.ValidateInput == nil:
		return nil, errors.New("orchestrator: ValidateDefinition and ValidateInput are required")
	}
	if opts.TaskQueue == "" {
		opts.TaskQueue = workflows.DefaultTaskQueue
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 10 * time.Second
	}
	if opts.ClosedQueryTimeout <= 0 {
		opts.ClosedQueryTimeout = 3 * time.Second
	}
	if opts.ApprovalScanLimit <= 0 {
		opts.ApprovalScanLimit = DefaultApprovalScanLimit
	}
	if opts.ApprovalDeadline <= 0 {
		opts.ApprovalDeadline = DefaultApprovalDeadline
	}
	if opts.ApprovalCacheTTL == 0 {
		opts.ApprovalCacheTTL = DefaultApprovalCacheTTL
	}
	if opts.ApprovalConcurrency <= 0 {
		opts.ApprovalConcurrency = 8
	}
	if opts.WatchMinInterval <= 0 {
		opts.WatchMinInterval = 100 * time.Millisecond
	}
	if opts.WatchMaxInterval < opts.WatchMinInterval {
		opts.WatchMaxInterval = 5 * time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.DataConverter == nil {
		opts.DataConverter = converter.GetDefaultDataConverter()
	}
	return &Orchestrator{
		c:            opts.Client,
		opts:         opts,
		log:          log,
		approvals:    newApprovalCache(opts.ApprovalCacheTTL),
		saTenant:     temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrTenant),
		saDefinition: temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrDefinition),
		saVersion:    temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrVersion),
	}, nil
}

var (
	tenantRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	// idRe is the API form of a workflow id. It cannot contain "/", so it can
	// never name a workflow of another tenant.
	idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	// stepRe matches step ids as the status query shows them
	// ("fanout[3].charge").
	stepRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._\[\]-]{0,255}$`)
)

// ValidTenant reports whether s is an acceptable tenant name.
func ValidTenant(s string) bool { return tenantRe.MatchString(s) }

// ValidID reports whether s is an acceptable API workflow id.
func ValidID(s string) bool { return idRe.MatchString(s) }

// ValidName reports whether s is an acceptable definition name.
func ValidName(s string) bool { return definition.NamePattern.MatchString(s) }

// ValidVersion reports whether s is an acceptable definition version.
func ValidVersion(s string) bool { return definition.VersionPattern.MatchString(s) }

// ValidStepID reports whether s is an acceptable step id in a URL.
func ValidStepID(s string) bool { return stepRe.MatchString(s) }

// WorkflowID returns the Temporal workflow id of an API id.
func WorkflowID(tenant, id string) string { return tenant + "/" + id }

// APIID returns the API id of a Temporal workflow id of tenant, and false
// when it does not belong to tenant.
func APIID(tenant, workflowID string) (string, bool) {
	id, ok := strings.CutPrefix(workflowID, tenant+"/")
	return id, ok && id != ""
}

// IdempotentID derives the API id of a submission from its idempotency
// key, so that every replica maps the same (tenant, key) to the same
// workflow and Temporal itself enforces "at most one start".
func IdempotentID(tenant, key string) string {
	sum := sha256.Sum256([]byte(tenant + "\x00" + key))
	return "idem-" + hex.EncodeToString(sum[:16])
}

// NewID returns a fresh, time-ordered API id (UUIDv7).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// checkCaller refuses callers without a usable tenant: they would build
// workflow ids outside every tenant's space.
func checkCaller(c Caller) error {
	if !ValidTenant(c.Tenant) {
		return newError(ErrForbidden, "bad_tenant", "caller has no valid tenant")
	}
	return nil
}

func checkID(id string) error {
	if !ValidID(id) {
		return newError(ErrNotFound, "workflow_not_found", "workflow %q not found", id)
	}
	return nil
}
