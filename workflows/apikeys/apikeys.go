// Package apikeys keeps the API keys created through the REST API
// (POST /v1/keys): each tenant's keys, as hashes only, in an entity
// workflow ("gateflow-keys/<tenant>") changed by validated Updates, and
// replicated through workflows/replicated on a compacted topic into every
// ingress's key store, beside the keys file (which stays the operator's
// way). Disabling a key publishes its new value; every replica stops
// accepting it once its tail reads it (docs/CATALOG.md gives the measured
// bound).
package apikeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/gateflow/gateflow/workflows/definition"
	"github.com/gateflow/gateflow/workflows/orchestrator"
	"github.com/gateflow/gateflow/workflows/replicated"
)

// Names registered with Temporal; part of the contract with running
// entities.
const (
	EntityWorkflow = "gateflow.APIKeys"
	EntityIDPrefix = "gateflow-keys/"
	UpdateCreate   = "create"
	UpdateDisable  = "disable"
	QueryList      = "list"
	// DefaultTopic is the compacted topic of the keys.
	DefaultTopic = "gateflow.keys"
	keyPrefix    = "key/"
)

// Bounds.
const (
	MaxKeysPerTenant = 1000
	maxNote          = 1000
)

var (
	idRe   = regexp.MustCompile(`^[a-z0-9]{4,32}$`)
	hashRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	roleRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	userRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)
	appRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// Key is a key as stored and replicated: never its secret.
type Key struct {
	ID             string     `json:"id"`
	Hash           string     `json:"hash"`
	Tenant         string     `json:"tenant"`
	Roles          []string   `json:"roles"`
	User           string     `json:"user,omitempty"`
	App            string     `json:"app,omitempty"`
	Note           string     `json:"note,omitempty"`
	RPS            float64    `json:"rps,omitempty"`
	Burst          int        `json:"burst,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	CreatedBy      string     `json:"created_by,omitempty"`
	Disabled       bool       `json:"disabled,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DisabledBy     string     `json:"disabled_by,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
}

// EntityID is the workflow id of a tenant's keys.
func EntityID(tenant string) string { return EntityIDPrefix + tenant }

// CreateInput is the argument of UpdateCreate.
type CreateInput struct {
	Key Key    `json:"key"`
	By  string `json:"by,omitempty"`
}

// DisableInput is the argument of UpdateDisable.
type DisableInput struct {
	ID     string `json:"id"`
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Result answers the Updates.
type Result struct {
	Key       Key                 `json:"key"`
	Records   []replicated.Record `json:"records,omitempty"`
	Published bool                `json:"published"`
}

// EntityInput starts (or continues) a tenant's keys.
type EntityInput struct {
	Tenant string `json:"tenant"`
	Topic  string `json:"topic"`
	// Keys and Outbox are set only by continue-as-new.
	Keys   []Key              `json:"keys,omitempty"`
	Outbox *replicated.Outbox `json:"outbox,omitempty"`
	// ContinueAsNewAfter is the number of changes after which a run
	// continues as new (0: replicated.ContinueAsNewAfter); in the input so
	// that a replay decides as the run did.
	ContinueAsNewAfter int `json:"continue_as_new_after,omitempty"`
}

const errType = "KeysRefused"

func refuse(kind error, code, format string, args ...any) error {
	return temporal.NewApplicationErrorWithOptions(fmt.Sprintf(format, args...), errType,
		temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{code, kindName(kind)}})
}

func kindName(k error) string {
	switch k {
	case orchestrator.ErrNotFound:
		return "not_found"
	case orchestrator.ErrInvalid:
		return "invalid"
	}
	return "conflict"
}

// checkCreate checks a new key against the tenant's keys.
func checkCreate(tenant string, keys map[string]*Key, in CreateInput) error {
	k := in.Key
	var bad []string
	if !idRe.MatchString(k.ID) {
		bad = append(bad, "id")
	}
	if !hashRe.MatchString(k.Hash) {
		bad = append(bad, "hash")
	}
	if k.Tenant != tenant {
		bad = append(bad, "tenant")
	}
	if len(k.Roles) == 0 || len(k.Roles) > 20 || slices.ContainsFunc(k.Roles, func(r string) bool { return !roleRe.MatchString(r) }) {
		bad = append(bad, "roles")
	}
	if k.User != "" && !userRe.MatchString(k.User) {
		bad = append(bad, "user")
	}
	if k.App != "" && !appRe.MatchString(k.App) {
		bad = append(bad, "app")
	}
	if k.RPS < 0 || k.Burst < 0 {
		bad = append(bad, "rps/burst")
	}
	if len(k.Note) > maxNote {
		bad = append(bad, "note")
	}
	switch {
	case len(bad) > 0:
		return refuse(orchestrator.ErrInvalid, "invalid_key", "invalid key: %s", strings.Join(bad, ", "))
	case keys[k.ID] != nil:
		return refuse(orchestrator.ErrConflict, "key_exists", "key %s already exists", k.ID)
	case len(keys) >= MaxKeysPerTenant:
		return refuse(orchestrator.ErrConflict, "too_many_keys", "tenant %s has %d keys, its limit", tenant, len(keys))
	}
	return nil
}

func checkDisable(keys map[string]*Key, in DisableInput) error {
	k := keys[in.ID]
	switch {
	case k == nil:
		return refuse(orchestrator.ErrNotFound, "key_not_found", "key %q not found", in.ID)
	case k.Disabled:
		return refuse(orchestrator.ErrConflict, "key_disabled", "key %s is already disabled", in.ID)
	case len(in.Reason) > maxNote:
		return refuse(orchestrator.ErrInvalid, "invalid_request", "reason: must be at most %d bytes", maxNote)
	}
	return nil
}

// Entity is a tenant's keys workflow. Changes that alter the commands of
// an existing history must be guarded with workflow.GetVersion.
type Entity struct{}

// Run is the workflow function.
func (e *Entity) Run(ctx workflow.Context, in EntityInput) error {
	keys := map[string]*Key{}
	for i := range in.Keys {
		keys[in.Keys[i].ID] = &in.Keys[i]
	}
	out := in.Outbox
	if out == nil {
		out = replicated.NewOutbox(in.Topic)
	}
	if out.Topic == "" {
		out.Topic = DefaultTopic
	}
	handled := 0
	limit := in.ContinueAsNewAfter
	if limit <= 0 {
		limit = replicated.ContinueAsNewAfter
	}
	list := func() []Key {
		ids := sortedIDs(keys)
		outk := make([]Key, 0, len(ids))
		for _, id := range ids {
			outk = append(outk, *keys[id])
		}
		return outk
	}
	if err := workflow.SetQueryHandler(ctx, QueryList, func() ([]Key, error) { return list(), nil }); err != nil {
		return err
	}
	publish := func(ctx workflow.Context, k *Key) (Result, error) {
		keys[k.ID] = k
		rec, err := out.Put(keyPrefix+k.ID, k)
		if err != nil {
			return Result{}, err
		}
		handled++
		return Result{Key: *k, Records: []replicated.Record{rec}, Published: out.AwaitPublished(ctx, replicated.PublishWait, rec.Key)}, nil
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateCreate,
		func(ctx workflow.Context, in CreateInput) (Result, error) {
			if err := checkCreate(in.Key.Tenant, keys, in); err != nil {
				return Result{}, err
			}
			k := in.Key
			k.Roles = slices.Clone(k.Roles)
			k.CreatedAt, k.CreatedBy, k.Disabled, k.DisabledAt, k.DisabledBy = workflow.Now(ctx).UTC(), in.By, false, nil, ""
			return publish(ctx, &k)
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, in CreateInput) error { return checkCreate(in.Key.Tenant, keys, in) }})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateDisable,
		func(ctx workflow.Context, in DisableInput) (Result, error) {
			if err := checkDisable(keys, in); err != nil {
				return Result{}, err
			}
			k := *keys[in.ID]
			now := workflow.Now(ctx).UTC()
			k.Disabled, k.DisabledAt, k.DisabledBy, k.DisabledReason = true, &now, in.By, in.Reason
			return publish(ctx, &k)
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, in DisableInput) error { return checkDisable(keys, in) }})
	if err != nil {
		return err
	}
	workflow.Go(ctx, out.Run)
	_ = workflow.Await(ctx, func() bool { return replicated.ShouldContinueAsNew(ctx, handled) || handled >= limit })
	if err := replicated.DrainForContinueAsNew(ctx, out); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, EntityWorkflow, EntityInput{Tenant: in.Tenant, Topic: out.Topic, Keys: list(), Outbox: out,
		ContinueAsNewAfter: in.ContinueAsNewAfter})
}

// sortedIDs returns the ids sorted: the order of the map's iteration does
// not matter, hence the mark for workflowcheck.
func sortedIDs(keys map[string]*Key) []string {
	ids := make([]string, 0, len(keys))
	//workflowcheck:ignore
	for id := range keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Register registers the keys workflow on a worker.
func Register(r worker.Registry) {
	r.RegisterWorkflowWithOptions((&Entity{}).Run, workflow.RegisterOptions{Name: EntityWorkflow})
}

// ReadModel is a replica's copy of every tenant's API-created keys, fed by
// a replicated.Tail; OnChange (set before the tail starts) is told of
// every key that changed, e.g. to update the ingress's key store.
type ReadModel struct {
	mu       sync.RWMutex
	seqs     map[string]uint64
	keys     map[string]*Key
	onChange func(Key)
	ready    func() bool
	log      *slog.Logger
}

// NewReadModel returns an empty read model calling onChange (may be nil)
// for each applied key.
func NewReadModel(onChange func(Key), ready func() bool, log *slog.Logger) *ReadModel {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ready == nil {
		ready = func() bool { return true }
	}
	return &ReadModel{seqs: map[string]uint64{}, keys: map[string]*Key{}, onChange: onChange, ready: ready, log: log}
}

// Apply takes one record (a replicated.Applier).
func (m *ReadModel) Apply(r replicated.Record) {
	if !strings.HasPrefix(r.Key, keyPrefix) {
		return
	}
	var k Key
	if err := json.Unmarshal(r.Value, &k); err != nil {
		m.log.Warn("skipping an unreadable key record", "key", r.Key, "err", err)
		return
	}
	m.mu.Lock()
	if r.Seq <= m.seqs[r.Key] {
		m.mu.Unlock()
		return
	}
	m.seqs[r.Key] = r.Seq
	m.keys[k.ID] = &k
	m.mu.Unlock()
	if m.onChange != nil {
		m.onChange(k)
	}
}

// Ready reports whether the model has caught up with the topic.
func (m *ReadModel) Ready() bool { return m.ready() }

// Key returns an API-created key.
func (m *ReadModel) Key(id string) (Key, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k, ok := m.keys[id]
	if !ok {
		return Key{}, false
	}
	return *k, true
}

// Tenant lists a tenant's API-created keys, by id.
func (m *ReadModel) Tenant(tenant string) []Key {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Key
	for _, k := range m.keys {
		if k.Tenant == tenant {
			out = append(out, *k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Service creates and disables keys through the tenants' entities.
type Service struct {
	c         client.Client
	taskQueue string
	topic     string
	rm        *ReadModel
}

// NewService returns a Service.
func NewService(c client.Client, taskQueue, topic string, rm *ReadModel) *Service {
	if topic == "" {
		topic = DefaultTopic
	}
	return &Service{c: c, taskQueue: taskQueue, topic: topic, rm: rm}
}

// ReadModel returns the replica's read model.
func (s *Service) ReadModel() *ReadModel { return s.rm }

func (s *Service) entity(tenant string) replicated.Entity {
	return replicated.Entity{ID: EntityID(tenant), Type: EntityWorkflow, TaskQueue: s.taskQueue, Input: EntityInput{Tenant: tenant, Topic: s.topic}}
}

// Create stores a new key (its hash) for k.Tenant.
func (s *Service) Create(ctx context.Context, k Key, by string) (Key, error) {
	if !definition.TenantPattern.MatchString(k.Tenant) {
		return Key{}, &orchestrator.Error{Kind: orchestrator.ErrInvalid, Code: "invalid_request", Message: "invalid tenant"}
	}
	var res Result
	if err := replicated.Update(ctx, s.c, s.entity(k.Tenant), UpdateCreate, CreateInput{Key: k, By: by}, &res); err != nil {
		return Key{}, fromUpdateError(err)
	}
	for _, r := range res.Records {
		s.rm.Apply(r)
	}
	return res.Key, nil
}

// Disable disables a key of the tenant.
func (s *Service) Disable(ctx context.Context, tenant, id, by, reason string) (Key, error) {
	if k, ok := s.rm.Key(id); !ok || k.Tenant != tenant {
		return Key{}, &orchestrator.Error{Kind: orchestrator.ErrNotFound, Code: "key_not_found", Message: fmt.Sprintf("key %q not found", id)}
	}
	var res Result
	if err := replicated.Update(ctx, s.c, s.entity(tenant), UpdateDisable, DisableInput{ID: id, By: by, Reason: reason}, &res); err != nil {
		return Key{}, fromUpdateError(err)
	}
	for _, r := range res.Records {
		s.rm.Apply(r)
	}
	return res.Key, nil
}

// fromUpdateError maps a refused Update to an orchestrator.Error of the
// same kind (mapped to a status by ingress/httperr).
func fromUpdateError(err error) error {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != errType {
		return fmt.Errorf("keys: %w", err)
	}
	var code, kind string
	if app.HasDetails() {
		_ = app.Details(&code, &kind)
	}
	k := orchestrator.ErrConflict
	switch kind {
	case "not_found":
		k = orchestrator.ErrNotFound
	case "invalid":
		k = orchestrator.ErrInvalid
	}
	return &orchestrator.Error{Kind: k, Code: code, Message: app.Message()}
}
