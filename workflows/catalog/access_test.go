package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gateflow/gateflow/workflows/replicated"
	"github.com/gateflow/gateflow/workflows/wire"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// counter answers a fixed analytics figure and records the ranges asked.
type counter struct {
	n     int64
	asked [][2]time.Time
}

func (c *counter) APICalls(_ context.Context, _, _, _ string, from, to time.Time) (int64, error) {
	c.asked = append(c.asked, [2]time.Time{from, to})
	return c.n, nil
}

func apply(rm *ReadModel, seq uint64, key string, v any) {
	b, _ := json.Marshal(v)
	rm.Apply(replicated.Record{Key: key, Seq: seq, Value: b})
}

func accessFixture(t *testing.T, q *Quotas, now func() time.Time) (*Service, *ReadModel) {
	t.Helper()
	st := mustCreate(t, orchestrationAPI("invoices"))
	a, err := st.addVersion(AddVersionInput{API: "invoices", Spec: wire.APIVersionSpec{Version: "2", Target: wire.APITarget{Definition: "invoice", DefinitionVersion: "2"}}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	rm := NewReadModel(nil, nil)
	apply(rm, 1, apiKey(a.Name), a)
	s := &Service{rm: rm, access: newAccessState(q, now)}
	return s, rm
}

func TestAuthorize(t *testing.T) {
	clock := &fakeClock{t: t0}
	s, rm := accessFixture(t, NewQuotas(nil, clock.now, QuotaPolicy{}), clock.now)
	owner := Caller{Tenant: "acme"}
	beta := Caller{Tenant: "beta", KeyID: "k1"}
	ctx := context.Background()

	acc, err := s.Authorize(ctx, owner, "invoices", "")
	if err != nil || !acc.Owner || acc.Version.Version != "1" {
		t.Fatalf("owner, default version: %+v %v", acc, err)
	}
	if acc, err := s.Authorize(ctx, owner, "invoices", "2"); err != nil || acc.Version.State != wire.StateDraft {
		t.Fatalf("owner calls a draft: %v", err)
	}
	if _, err := s.Authorize(ctx, beta, "invoices", "2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("consumer calls a draft: %v", err)
	}
	_, err = s.Authorize(ctx, beta, "invoices", "")
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != ErrSubscriptionRequired || !strings.Contains(ce.Message, "POST /v1/catalog/invoices/subscriptions") {
		t.Fatalf("no grant: %v", err)
	}
	if _, err := s.Authorize(ctx, beta, "nope", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}

	sub := Subscription{ID: "sub_0123456789", API: "invoices", Owner: "acme", Consumer: "beta", Plan: "free", State: wire.SubscriptionPending}
	apply(rm, 2, subKey(sub.ID), sub)
	if _, err := s.Authorize(ctx, beta, "invoices", ""); !errors.As(err, &ce) || !strings.Contains(ce.Message, "waiting for the owner's approval") {
		t.Fatalf("pending: %v", err)
	}
	sub.State = wire.SubscriptionActive
	apply(rm, 3, subKey(sub.ID), sub)
	// Plan free: 3 calls a day.
	for i := range 3 {
		acc, err := s.Authorize(ctx, beta, "invoices", "")
		if err != nil || acc.Grant.ID != sub.ID || acc.Consumer != "beta" {
			t.Fatalf("call %d: %+v %v", i, acc, err)
		}
	}
	_, err = s.Authorize(ctx, beta, "invoices", "")
	if !errors.As(err, &ce) || ce.Kind != ErrQuotaExceeded || !strings.Contains(ce.Message, "2026-12-02T00:00:00Z") || ce.Header.Get("Retry-After") == "" {
		t.Fatalf("over quota: %v", err)
	}
	clock.add(14 * time.Hour) // the next UTC day
	if _, err := s.Authorize(ctx, beta, "invoices", ""); err != nil {
		t.Fatalf("after the reset: %v", err)
	}
	// An app of beta without a grant of its own uses the tenant's grant.
	if acc, err := s.Authorize(ctx, Caller{Tenant: "beta", App: "mobile"}, "invoices", ""); err != nil || acc.ConsumerApp != "" {
		t.Fatalf("app under the tenant's grant: %+v %v", acc, err)
	}
	// A stale record (lower sequence) does not bring the grant back
	// after a revocation.
	sub.State = wire.SubscriptionRevoked
	apply(rm, 5, subKey(sub.ID), sub)
	active := sub
	active.State = wire.SubscriptionActive
	apply(rm, 4, subKey(sub.ID), active)
	if _, err := s.Authorize(ctx, beta, "invoices", ""); !errors.Is(err, ErrSubscriptionRequired) {
		t.Fatalf("after revocation: %v", err)
	}

	// Deprecated: headers; retired: 410 naming the successor.
	a, _ := rm.API("invoices")
	d := cloneAPI(a)
	d.Versions[1].State = wire.StatePublished
	now := t0
	sunset := t0.Add(DefaultSunset)
	d.Versions[0].State, d.Versions[0].DeprecatedAt, d.Versions[0].Sunset, d.Versions[0].Successor = wire.StateDeprecated, &now, &sunset, "2"
	apply(rm, 6, apiKey("invoices"), d)
	acc, err = s.Authorize(ctx, owner, "invoices", "1")
	if err != nil || acc.Header.Get("Deprecation") == "" || acc.Header.Get("Sunset") != sunset.Format("Mon, 02 Jan 2006 15:04:05 GMT") {
		t.Fatalf("deprecated: %+v %v", acc, err)
	}
	d = cloneAPI(d)
	d.Versions[0].State = wire.StateRetired
	apply(rm, 7, apiKey("invoices"), d)
	_, err = s.Authorize(ctx, owner, "invoices", "1")
	if !errors.As(err, &ce) || ce.Kind != ErrGone || !strings.Contains(ce.Message, "use version 2") || !strings.Contains(ce.Header.Get("Link"), "version=2") {
		t.Fatalf("retired: %v", err)
	}
	if acc, err := s.Authorize(ctx, owner, "invoices", ""); err != nil || acc.Version.Version != "2" {
		t.Fatalf("default skips the retired version: %+v %v", acc, err)
	}
}

func TestPlanRateLimit(t *testing.T) {
	clock := &fakeClock{t: t0}
	s, rm := accessFixture(t, nil, clock.now)
	sub := Subscription{ID: "sub_0123456789", API: "invoices", Owner: "acme", Consumer: "beta", Plan: "gold", State: wire.SubscriptionActive}
	apply(rm, 2, subKey(sub.ID), sub)
	beta := Caller{Tenant: "beta"}
	for i := range 20 { // burst 20
		if _, err := s.Authorize(context.Background(), beta, "invoices", ""); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := s.Authorize(context.Background(), beta, "invoices", "")
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != ErrRateLimited || ce.Header.Get("Retry-After") != "1" {
		t.Fatalf("over the rate: %v", err)
	}
	clock.add(time.Second)
	if _, err := s.Authorize(context.Background(), beta, "invoices", ""); err != nil {
		t.Fatalf("a second later: %v", err)
	}
}

// TestQuotaFigurePlusLocal: the analytics figure covers calls up to
// IngestLag ago (whole seconds) and this replica's calls since then are
// counted locally, without overlap.
func TestQuotaFigurePlusLocal(t *testing.T) {
	clock := &fakeClock{t: t0.Add(500 * time.Millisecond)}
	c := &counter{n: 5}
	q := NewQuotas(c, clock.now, QuotaPolicy{CacheTTL: time.Second, IngestLag: 10 * time.Second})
	g := &Subscription{ID: "sub_x", API: "a", Consumer: "b"}
	plan := &Plan{Name: "p", Quota: wire.Quota{Daily: 8}}
	for i := range 3 { // 5 from analytics + 3 local = 8
		if err := q.Admit(context.Background(), g, plan); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if err := q.Admit(context.Background(), g, plan); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("9th call: %v", err)
	}
	if to := c.asked[0][1]; !to.Equal(t0.Add(-10 * time.Second)) {
		t.Fatalf("figure read up to %s, want whole seconds IngestLag ago", to)
	}
	// 11 s later the figure is read again and now includes the 3 local
	// calls (8 in analytics); the local ones older than the new horizon
	// are no longer added.
	clock.add(11 * time.Second)
	c.n = 7
	if err := q.Admit(context.Background(), g, plan); err != nil {
		t.Fatalf("7 in analytics, none local since: %v", err)
	}
	if err := q.Admit(context.Background(), g, plan); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("7 + 1 local: %v", err)
	}
}
