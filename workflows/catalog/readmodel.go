package catalog

import (
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/gateflow/gateflow/workflows/replicated"
	"github.com/gateflow/gateflow/workflows/wire"
)

// ReadModel is a replica's copy of the whole catalogue, fed by a
// replicated.Tail of the catalogue topic (and by the replica's own changes
// at once, see Service). Values it hands out are never changed afterwards:
// each record replaces the value of its key.
type ReadModel struct {
	log *slog.Logger

	mu   sync.RWMutex
	seqs map[string]uint64
	apis map[string]*API
	subs map[string]*Subscription
	// grants indexes the active subscriptions by (api, consumer, app).
	grants map[grantKey]*Subscription
	// byTenant lists the subscription ids a tenant holds as consumer or
	// as owner.
	byConsumer map[string]map[string]bool
	byOwner    map[string]map[string]bool

	ready func() bool
}

type grantKey struct{ api, consumer, app string }

// NewReadModel returns an empty read model; ready reports whether it has
// caught up with the topic (nil: always).
func NewReadModel(ready func() bool, log *slog.Logger) *ReadModel {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ready == nil {
		ready = func() bool { return true }
	}
	return &ReadModel{
		log: log, ready: ready, seqs: map[string]uint64{},
		apis: map[string]*API{}, subs: map[string]*Subscription{}, grants: map[grantKey]*Subscription{},
		byConsumer: map[string]map[string]bool{}, byOwner: map[string]map[string]bool{},
	}
}

// Ready reports whether the model has caught up with the topic.
func (m *ReadModel) Ready() bool { return m.ready() }

// Apply takes one record (a replicated.Applier); records not newer than
// what the model holds for their key are ignored.
func (m *ReadModel) Apply(r replicated.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Seq <= m.seqs[r.Key] {
		return
	}
	switch {
	case strings.HasPrefix(r.Key, apiKeyPrefix):
		var a API
		if err := json.Unmarshal(r.Value, &a); err != nil {
			m.log.Warn("skipping an unreadable catalogue record", "key", r.Key, "err", err)
			return
		}
		m.apis[a.Name] = &a
	case strings.HasPrefix(r.Key, subKeyPrefix):
		var s Subscription
		if err := json.Unmarshal(r.Value, &s); err != nil {
			m.log.Warn("skipping an unreadable catalogue record", "key", r.Key, "err", err)
			return
		}
		m.putSub(&s)
	default:
		return
	}
	m.seqs[r.Key] = r.Seq
}

func (m *ReadModel) putSub(s *Subscription) {
	if old, ok := m.subs[s.ID]; ok && old.State == wire.SubscriptionActive {
		k := grantKey{old.API, old.Consumer, old.App}
		if g := m.grants[k]; g != nil && g.ID == old.ID {
			delete(m.grants, k)
		}
	}
	m.subs[s.ID] = s
	if s.State == wire.SubscriptionActive {
		m.grants[grantKey{s.API, s.Consumer, s.App}] = s
	}
	index := func(idx map[string]map[string]bool, tenant string) {
		if idx[tenant] == nil {
			idx[tenant] = map[string]bool{}
		}
		idx[tenant][s.ID] = true
	}
	index(m.byConsumer, s.Consumer)
	index(m.byOwner, s.Owner)
}

// API returns the API named name.
func (m *ReadModel) API(name string) (*API, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	a, ok := m.apis[name]
	return a, ok
}

// APIs returns every API, sorted by name.
func (m *ReadModel) APIs() []*API {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*API, 0, len(m.apis))
	for _, a := range m.apis {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Subscription returns the subscription with id.
func (m *ReadModel) Subscription(id string) (*Subscription, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.subs[id]
	return s, ok
}

// Grant returns the active subscription that lets (consumer, app) call
// api: the app's own grant, else the tenant's.
func (m *ReadModel) Grant(api, consumer, app string) (*Subscription, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if app != "" {
		if s, ok := m.grants[grantKey{api, consumer, app}]; ok {
			return s, true
		}
	}
	s, ok := m.grants[grantKey{api, consumer, ""}]
	return s, ok
}

// ConsumerSubscriptions lists a tenant's subscriptions as consumer,
// newest first.
func (m *ReadModel) ConsumerSubscriptions(tenant string) []*Subscription {
	return m.list(m.byConsumer, tenant)
}

// OwnerSubscriptions lists the subscriptions to a tenant's APIs, newest
// first.
func (m *ReadModel) OwnerSubscriptions(tenant string) []*Subscription {
	return m.list(m.byOwner, tenant)
}

func (m *ReadModel) list(idx map[string]map[string]bool, tenant string) []*Subscription {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Subscription, 0, len(idx[tenant]))
	for id := range idx[tenant] {
		out = append(out, m.subs[id])
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].RequestedAt.Equal(out[j].RequestedAt) {
			return out[i].RequestedAt.After(out[j].RequestedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// OwnedAPIs lists the names of a tenant's APIs, sorted (for analytics
// scoped to an owner's APIs).
func (m *ReadModel) OwnedAPIs(tenant string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []string
	for name, a := range m.apis {
		if a.Owner == tenant {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
