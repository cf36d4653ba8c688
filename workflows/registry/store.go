// Package registry keeps the definitions published through the API: one
// Temporal entity workflow per tenant holds them, changed only by validated
// Updates, so that every ingress and worker replica sees a published
// version as soon as the Update returns; Store reads them through a short
// cache and merges them with the config-dir definitions of the system
// configuration (activities/sysconfig), which win on a name@version clash.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/gateflow/gateflow/activities/sysconfig"
	"github.com/gateflow/gateflow/workflows/definition"
)

// Sentinel errors. The ingress maps them to HTTP statuses.
var (
	// ErrNotFound: no such definition (or version) for the tenant.
	ErrNotFound = errors.New("not found")
	// ErrExists: name@version is already published with another content,
	// or is defined in the config directory. Published versions are
	// immutable.
	ErrExists = errors.New("already exists")
	// ErrLimit: the tenant reached its bound of published versions.
	ErrLimit = errors.New("limit reached")
)

// DefaultTaskQueue is the task queue the registry workflow runs on unless
// WithTaskQueue says otherwise (the same default as workflows.DefaultTaskQueue).
const DefaultTaskQueue = "gateflow"

// DefaultCacheTTL is how long a Store reuses a tenant's list (and so the
// "latest" resolution) before asking the registry workflow again.
const DefaultCacheTTL = 2 * time.Second

// Store publishes and reads definitions for the API: those of the config
// directory and those each tenant published, which live in the tenant's
// registry workflow so that every ingress replica sees them. Published
// versions never change, so they are cached for good; lists (and "latest")
// are cached for a short TTL.
type Store struct {
	c         client.Client
	reg       *sysconfig.Registry
	log       *slog.Logger
	taskQueue string
	ttl       time.Duration
	now       func() time.Time

	versions *lruCache[versionKey, *Published]

	mu    sync.Mutex
	lists map[string]cachedList
}

type versionKey struct{ tenant, name, version string }

type cachedList struct {
	at      time.Time
	entries []Entry // published ones only
}

// maxCachedLists bounds the tenants whose lists a Store caches.
const maxCachedLists = 10_000

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithTaskQueue sets the task queue registry workflows are started on.
func WithTaskQueue(q string) StoreOption { return func(s *Store) { s.taskQueue = q } }

// WithCacheTTL sets how long lists and "latest" are cached (0 disables).
func WithCacheTTL(d time.Duration) StoreOption { return func(s *Store) { s.ttl = d } }

// NewStore returns a Store using the Temporal client c and the config
// registry reg (for config-file definitions and validation).
func NewStore(c client.Client, reg *sysconfig.Registry, log *slog.Logger, opts ...StoreOption) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		c: c, reg: reg, log: log,
		taskQueue: DefaultTaskQueue, ttl: DefaultCacheTTL, now: time.Now,
		versions: newLRUCache[versionKey, *Published](4096),
		lists:    map[string]cachedList{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Publish validates def and publishes it for the tenant, starting the
// tenant's registry workflow on first use. Errors: a *definition.
// ValidationError for an invalid definition; ErrExists when name@version
// is defined in the config directory or published with another content
// (publishing the same content again succeeds with Entry.Existing set);
// ErrLimit when the tenant's registry is full.
func (s *Store) Publish(ctx context.Context, tenant string, def definition.Definition, by string) (Entry, error) {
	if !definition.NamePattern.MatchString(tenant) {
		return Entry{}, fmt.Errorf("publish: invalid tenant name %q", tenant)
	}
	snap := s.reg.Current()
	if _, ok := snap.Definition(def.Name, def.Version); ok && def.Name != "" && def.Version != "" && snap.MayUseDefinition(tenant, def.Name) {
		return Entry{}, fmt.Errorf("publish %s: %w: defined in the config directory (%s)", def.Ref(), ErrExists, snap.DefinitionFile(def.Name, def.Version))
	}
	if err := def.Validate(snap.CatalogFor(tenant)); err != nil {
		return Entry{}, err
	}
	id := RegistryWorkflowID(tenant)
	start := s.c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                s.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, RegistryWorkflow, RegistryInput{Tenant: tenant})
	handle, err := s.c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   id,
			UpdateName:   PublishUpdate,
			Args:         []any{PublishRequest{Definition: def, By: by}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return Entry{}, fmt.Errorf("publish %s: %w", def.Ref(), err)
	}
	var entry Entry
	// A refused update shows its error here, not from UpdateWithStartWorkflow.
	if err := handle.Get(ctx, &entry); err != nil {
		return Entry{}, publishError(def.Ref(), err)
	}
	if p, err := Digest(&def); err == nil && p == entry.Digest {
		at := time.Time{}
		if entry.PublishedAt != nil {
			at = *entry.PublishedAt
		}
		d := def
		s.versions.put(versionKey{tenant, def.Name, def.Version}, &Published{Definition: d, PublishedAt: at, PublishedBy: entry.PublishedBy, Digest: entry.Digest})
	}
	s.invalidate(tenant)
	s.log.Info("definition published", "tenant", tenant, "definition", def.Ref(), "by", by, "existing", entry.Existing)
	return entry, nil
}

func publishError(ref string, err error) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch app.Type() {
		case ErrTypeInvalid:
			ve := &definition.ValidationError{Subject: "definition " + ref}
			if app.HasDetails() {
				_ = app.Details(&ve.Problems)
			}
			if len(ve.Problems) == 0 {
				ve.Problems = []definition.Problem{{Message: app.Message()}}
			}
			return ve
		case ErrTypeExists:
			return fmt.Errorf("publish %s: %w: %s", ref, ErrExists, app.Message())
		case ErrTypeLimit:
			return fmt.Errorf("publish %s: %w: %s", ref, ErrLimit, app.Message())
		}
	}
	return fmt.Errorf("publish %s: %w", ref, err)
}

// Get returns name@version visible to the tenant: from the config
// directory (when the tenant's uses.definitions lists it) or published by
// the tenant. Version "" means the latest across
// both (CompareVersions). ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, tenant, name, version string) (definition.Definition, error) {
	if version == "" {
		entries, err := s.List(ctx, tenant)
		if err != nil {
			return definition.Definition{}, err
		}
		for _, e := range entries {
			if e.Name == name && (version == "" || definition.CompareVersions(e.Version, version) > 0) {
				version = e.Version
			}
		}
		if version == "" {
			return definition.Definition{}, fmt.Errorf("definition %s: %w", name, ErrNotFound)
		}
	}
	if snap := s.reg.Current(); snap.MayUseDefinition(tenant, name) {
		if d, ok := snap.Definition(name, version); ok {
			return *d, nil
		}
	}
	key := versionKey{tenant, name, version}
	if p, ok := s.versions.get(key); ok {
		return p.Definition, nil
	}
	if !definition.NamePattern.MatchString(tenant) {
		return definition.Definition{}, fmt.Errorf("definition %s@%s: %w", name, version, ErrNotFound)
	}
	v, err := s.c.QueryWorkflow(ctx, RegistryWorkflowID(tenant), "", GetQuery, GetRequest{Name: name, Version: version})
	if err != nil {
		if isNotFound(err) {
			return definition.Definition{}, fmt.Errorf("definition %s@%s: %w", name, version, ErrNotFound)
		}
		return definition.Definition{}, fmt.Errorf("get definition %s@%s: %w", name, version, err)
	}
	var p Published
	if err := v.Get(&p); err != nil {
		return definition.Definition{}, fmt.Errorf("get definition %s@%s: %w", name, version, err)
	}
	s.versions.put(key, &p)
	return p.Definition, nil
}

// isNotFound reports a registry workflow that does not exist (the tenant
// never published) or a query refused because the version is unknown.
func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var qf *serviceerror.QueryFailed
	return errors.As(err, &qf)
}

// List returns every version visible to the tenant (config directory and
// published), sorted by name, then version (oldest first).
func (s *Store) List(ctx context.Context, tenant string) ([]Entry, error) {
	published, err := s.published(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var out []Entry
	snap := s.reg.Current()
	for _, d := range snap.Definitions() {
		if snap.MayUseDefinition(tenant, d.Name) {
			out = append(out, Entry{Name: d.Name, Version: d.Version, Description: d.Description, Source: SourceFile})
		}
	}
	out = append(out, published...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return definition.CompareVersions(out[i].Version, out[j].Version) < 0
	})
	return out, nil
}

func (s *Store) published(ctx context.Context, tenant string) ([]Entry, error) {
	now := s.now()
	s.mu.Lock()
	if c, ok := s.lists[tenant]; ok && s.ttl > 0 && now.Sub(c.at) < s.ttl {
		s.mu.Unlock()
		return c.entries, nil
	}
	s.mu.Unlock()
	if !definition.NamePattern.MatchString(tenant) {
		return nil, nil
	}
	var entries []Entry
	v, err := s.c.QueryWorkflow(ctx, RegistryWorkflowID(tenant), "", ListQuery)
	switch {
	case err == nil:
		if err := v.Get(&entries); err != nil {
			return nil, fmt.Errorf("list definitions: %w", err)
		}
	case isNotFound(err):
		// The tenant never published.
	default:
		return nil, fmt.Errorf("list definitions of tenant %s: %w", tenant, err)
	}
	s.mu.Lock()
	if len(s.lists) >= maxCachedLists {
		clear(s.lists)
	}
	s.lists[tenant] = cachedList{at: now, entries: entries}
	s.mu.Unlock()
	return entries, nil
}

func (s *Store) invalidate(tenant string) {
	s.mu.Lock()
	delete(s.lists, tenant)
	s.mu.Unlock()
}

// lruCache is a bounded, concurrency-safe cache that evicts the oldest
// insertion first (entries are immutable, so recency matters little).
type lruCache[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	order []K // oldest first; small caches, O(n) touch is fine
	items map[K]V
}

func newLRUCache[K comparable, V any](max int) *lruCache[K, V] {
	return &lruCache[K, V]{max: max, items: make(map[K]V)}
}

func (c *lruCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.items[k]
	return v, ok
}

func (c *lruCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; !ok {
		c.order = append(c.order, k)
	}
	c.items[k] = v
	for len(c.order) > c.max {
		delete(c.items, c.order[0])
		c.order = c.order[1:]
	}
}
