package llm

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/llm/llmtest"
	"github.com/gateflow/gateflow/analytics/record"
)

// fakeSpend is the analytics figure: tokens per tenant since a time.
type fakeSpend struct {
	mu    sync.Mutex
	day   int64
	month int64
	calls int
	err   error
}

func (f *fakeSpend) TokensSince(_ context.Context, tenant string, since time.Time) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return 0, f.err
	}
	if since.Day() == 1 && since.Hour() == 0 && since.Equal(time.Date(since.Year(), since.Month(), 1, 0, 0, 0, 0, time.UTC)) {
		return f.month, nil
	}
	return f.day, nil
}

func (f *fakeSpend) set(day, month int64, err error) {
	f.mu.Lock()
	f.day, f.month, f.err = day, month, err
	f.mu.Unlock()
}

func (f *fakeSpend) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func limits(daily, monthly int64) LimitSource {
	return LimitFunc(func(tenant string) (int64, int64) {
		if tenant == "free" {
			return 0, 0
		}
		return daily, monthly
	})
}

func TestBudgetRefusesWhenSpent(t *testing.T) {
	clock := newFakeClock()
	spend := &fakeSpend{day: 1000, month: 5000}
	b := NewBudgets(spend, limits(1000, 100000), clock, BudgetPolicy{})
	_, err := b.Reserve(context.Background(), "acme", 10)
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrBudgetExceeded) || ClassOf(err) != ClassBudget {
		t.Fatalf("err %v", err)
	}
	if be.Period != "daily" || be.Limit != 1000 || be.Used != 1000 || !be.ResetAt.Equal(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("budget error %+v", be)
	}
	// Monthly too.
	spend.set(0, 100000, nil)
	clock.Advance(time.Minute)
	_, err = b.Reserve(context.Background(), "acme", 10)
	if !errors.As(err, &be) || be.Period != "monthly" || !be.ResetAt.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("err %v", err)
	}
	// Unlimited tenants never read analytics.
	before := spend.count()
	settle, err := b.Reserve(context.Background(), "free", 1e9)
	if err != nil {
		t.Fatal(err)
	}
	settle(1e9)
	if spend.count() != before {
		t.Error("read spend for an unlimited tenant")
	}
}

func TestBudgetReservationsBoundOvershoot(t *testing.T) {
	clock := newFakeClock()
	spend := &fakeSpend{day: 900, month: 900}
	b := NewBudgets(spend, limits(1000, 0), clock, BudgetPolicy{})
	// 100 tokens left: the first call's reservation takes them, the second
	// is refused while the first is in flight.
	settle1, err := b.Reserve(context.Background(), "acme", 150)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(context.Background(), "acme", 10); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("second reservation: %v", err)
	}
	// The first call used little: settling frees the rest.
	settle1(30)
	settle1(30) // idempotent
	settle2, err := b.Reserve(context.Background(), "acme", 10)
	if err != nil {
		t.Fatalf("after settlement: %v", err)
	}
	settle2(70)
	// 900 + 30 + 70 = 1000: spent.
	if _, err := b.Reserve(context.Background(), "acme", 1); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("after spending: %v", err)
	}
}

func TestBudgetCacheAndLocalSpend(t *testing.T) {
	clock := newFakeClock()
	spend := &fakeSpend{day: 0, month: 0}
	b := NewBudgets(spend, limits(1000, 0), clock, BudgetPolicy{CacheTTL: "10s", IngestLag: "30s"})
	ctx := context.Background()
	settle, err := b.Reserve(ctx, "acme", 10)
	if err != nil {
		t.Fatal(err)
	}
	settle(600)
	if spend.count() != 2 {
		t.Fatalf("%d reads", spend.count())
	}
	// Within the TTL: no read, the local 600 counts.
	clock.Advance(5 * time.Second)
	settle, err = b.Reserve(ctx, "acme", 10)
	if err != nil {
		t.Fatal(err)
	}
	settle(400)
	if spend.count() != 2 {
		t.Errorf("read again within the TTL")
	}
	if _, err := b.Reserve(ctx, "acme", 1); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("local spend not counted: %v", err)
	}
	// After the TTL the figure is read again; analytics has not seen the
	// 1000 tokens yet (ingest lag), local spend still counts.
	clock.Advance(10 * time.Second)
	if _, err := b.Reserve(ctx, "acme", 1); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("lagging analytics: %v", err)
	}
	if spend.count() != 4 {
		t.Errorf("%d reads", spend.count())
	}
	// Much later, analytics has the tokens; local spend has aged out.
	spend.set(1000, 1000, nil)
	clock.Advance(time.Minute)
	if _, err := b.Reserve(ctx, "acme", 1); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("analytics figure: %v", err)
	}
	// Another replica's spend, visible only through analytics, is seen
	// after the TTL.
	spend.set(200, 200, nil)
	clock.Advance(11 * time.Second)
	if _, err := b.Reserve(ctx, "acme", 1); err != nil {
		t.Fatalf("fresh analytics figure: %v", err)
	}
	// A new day resets the daily budget.
	spend.set(0, 5000, nil)
	clock.Advance(24 * time.Hour)
	if _, err := b.Reserve(ctx, "acme", 1); err != nil {
		t.Fatalf("new day: %v", err)
	}
}

func TestBudgetAnalyticsUnavailable(t *testing.T) {
	clock := newFakeClock()
	spend := &fakeSpend{}
	b := NewBudgets(spend, limits(1000, 0), clock, BudgetPolicy{CacheTTL: "10s", MaxStale: "1m"})
	ctx := context.Background()
	if _, err := b.Reserve(ctx, "acme", 1); err != nil {
		t.Fatal(err)
	}
	spend.set(0, 0, errors.New("clickhouse down"))
	clock.Advance(20 * time.Second)
	// Stale but within MaxStale: admitted on the last figure.
	if _, err := b.Reserve(ctx, "acme", 1); err != nil {
		t.Fatalf("stale figure refused: %v", err)
	}
	reads := spend.count()
	if _, err := b.Reserve(ctx, "acme", 1); err != nil {
		t.Fatal(err)
	}
	if spend.count() != reads {
		t.Error("failed read retried at once (no backoff)")
	}
	clock.Advance(2 * time.Minute)
	_, err := b.Reserve(ctx, "acme", 1)
	if !errors.Is(err, ErrBudgetUnavailable) || ClassOf(err) != ClassInternal {
		t.Fatalf("err %v", err)
	}
	// A tenant never read fails closed at once.
	if _, err := b.Reserve(ctx, "other", 1); !errors.Is(err, ErrBudgetUnavailable) {
		t.Fatalf("other tenant: %v", err)
	}
}

func TestBudgetConcurrentReadsOnce(t *testing.T) {
	clock := newFakeClock()
	spend := &fakeSpend{}
	b := NewBudgets(spend, limits(1e9, 0), clock, BudgetPolicy{})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			settle, err := b.Reserve(context.Background(), "acme", 10)
			if err != nil {
				t.Error(err)
				return
			}
			settle(10)
		}()
	}
	wg.Wait()
	if spend.count() != 2 {
		t.Errorf("%d reads for 50 concurrent calls", spend.count())
	}
}

func TestGatewayBudget(t *testing.T) {
	srv := llmtest.NewProvider(t, llmtest.JSON(200, llmtest.Fixture(t, "openai/chat_response.json")))
	clock := newFakeClock()
	spend := &fakeSpend{day: 990, month: 990}
	b := NewBudgets(spend, limits(1000, 0), clock, BudgetPolicy{})
	env := newTestGateway(t, oneProvider(KindOpenAI, srv.URL, map[string]Model{"m": {}}), b)
	// 10 tokens left: admitted, uses 29.
	if _, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	_, err := env.gw.Chat(context.Background(), userRequest("p/m", "hi"), CallOptions{Tenant: "acme"})
	var be *BudgetError
	if !errors.As(err, &be) || be.Used != 1019 {
		t.Fatalf("err %v", err)
	}
	if len(srv.Requests()) != 1 {
		t.Errorf("refused call was sent")
	}
	recs := env.recs.All()
	if len(recs) != 2 || recs[1].Outcome != record.OutcomeRejected || recs[1].ErrorClass != ClassBudget || recs[1].Target != "p/m" {
		t.Errorf("records %+v", recs)
	}
}
