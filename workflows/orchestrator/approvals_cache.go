package orchestrator

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// approvalCache keeps each caller's pending-approvals list for a short
// time and makes one list at a time per caller: a client (or an MCP agent)
// polling its inbox, or sending the same request from several tabs, costs
// Temporal one list per TTL instead of one per request. It is per process
// and best effort: another replica has its own, and a list may be up to
// the TTL old (the caller's own decisions drop it at once).
type approvalCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*approvalEntry
}

// approvalEntry is one caller's list, being made until done is closed.
type approvalEntry struct {
	done chan struct{}
	at   time.Time
	res  Approvals
	err  error
}

// Defaults of the approvals list bounds (Options).
const (
	// DefaultApprovalScanLimit bounds the status queries of one list.
	DefaultApprovalScanLimit = 100
	// DefaultApprovalDeadline bounds the time one list may take.
	DefaultApprovalDeadline = 10 * time.Second
	// DefaultApprovalCacheTTL is how long a caller's list is reused.
	DefaultApprovalCacheTTL = 5 * time.Second
	// approvalCacheMax bounds the callers whose lists are kept; past it
	// expired ones are dropped, and when none has expired lists are made
	// without being kept.
	approvalCacheMax = 10_000
)

func newApprovalCache(ttl time.Duration) *approvalCache {
	return &approvalCache{ttl: ttl, max: approvalCacheMax, now: time.Now, entries: map[string]*approvalEntry{}}
}

// approvalCacheKey names a caller as the list depends on it: tenant, key,
// user and roles.
func approvalCacheKey(c Caller) string {
	roles := slices.Clone(c.Roles)
	slices.Sort(roles)
	return strings.Join([]string{c.Tenant, c.KeyID, c.User, strings.Join(roles, ",")}, "\x00")
}

// get returns key's list: the kept one when fresh, the one being made when
// another request is making it, else a new one from build. Errors are not
// kept: a request that finds the list it waited for failed makes its own.
func (c *approvalCache) get(ctx context.Context, key string, build func(context.Context) (Approvals, error)) (Approvals, error) {
	if c.ttl <= 0 {
		return build(ctx)
	}
	c.mu.Lock()
	e := c.entries[key]
	if e != nil {
		select {
		case <-e.done:
			if e.err != nil || c.now().Sub(e.at) >= c.ttl {
				e = nil
			}
		default:
		}
	}
	if e != nil {
		c.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return Approvals{}, temporalError(ctx.Err(), "list approvals")
		}
		if e.err == nil {
			return cloneApprovals(e.res), nil
		}
		return build(ctx)
	}
	e = &approvalEntry{done: make(chan struct{})}
	keep := c.makeRoom()
	if keep {
		c.entries[key] = e
	}
	c.mu.Unlock()

	e.res, e.err = build(ctx)
	c.mu.Lock()
	e.at = c.now()
	if e.err != nil && c.entries[key] == e {
		delete(c.entries, key)
	}
	c.mu.Unlock()
	close(e.done)
	return cloneApprovals(e.res), e.err
}

// makeRoom drops expired lists when the cache is full and reports whether
// one more may be kept. Called with mu held.
func (c *approvalCache) makeRoom() bool {
	if len(c.entries) < c.max {
		return true
	}
	now := c.now()
	for k, e := range c.entries {
		select {
		case <-e.done:
			if now.Sub(e.at) >= c.ttl {
				delete(c.entries, k)
			}
		default:
		}
	}
	return len(c.entries) < c.max
}

// forget drops key's list (its owner just voted); one being made may
// predate the vote, so it is not reused either.
func (c *approvalCache) forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// cloneApprovals copies a list, so that callers sharing it cannot change
// it for each other.
func cloneApprovals(a Approvals) Approvals {
	a.Items = slices.Clone(a.Items)
	return a
}
