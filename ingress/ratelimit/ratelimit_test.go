package ratelimit

import (
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New()
	l.now = func() time.Time { return now }
	key, tenant := Limit{RPS: 1, Burst: 2}, Limit{RPS: 10, Burst: 3}

	d := l.Allow("k1", key, "t", tenant)
	if !d.Allowed || !d.Limited || d.Scope != ScopeKey || d.Remaining != 1 || d.Limit != 2 {
		t.Fatalf("first %+v", d)
	}
	if d := l.Allow("k1", key, "t", tenant); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("second %+v", d)
	}
	d = l.Allow("k1", key, "t", tenant)
	if d.Allowed || d.Scope != ScopeKey || d.RetryAfter != time.Second || d.Remaining != 0 {
		t.Fatalf("third %+v", d)
	}
	// The refused request took no tenant token: k2 gets the last one.
	if d := l.Allow("k2", key, "t", tenant); !d.Allowed || d.Scope != ScopeTenant || d.Remaining != 0 {
		t.Fatalf("k2 %+v", d)
	}
	if d := l.Allow("k3", key, "t", tenant); d.Allowed || d.Scope != ScopeTenant || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("tenant empty %+v", d)
	}
	now = now.Add(time.Second)
	if d := l.Allow("k1", key, "t", tenant); !d.Allowed {
		t.Fatalf("after refill %+v", d)
	}
	// Limit changes take effect (tokens are kept, refill is faster).
	l.Allow("k1", Limit{RPS: 100, Burst: 50}, "t", Limit{Unlimited: true})
	now = now.Add(20 * time.Millisecond)
	if d := l.Allow("k1", Limit{RPS: 100, Burst: 50}, "t", Limit{Unlimited: true}); !d.Allowed || d.Limit != 50 {
		t.Fatalf("changed limit %+v", d)
	}
	if d := l.Allow("k9", Limit{Unlimited: true}, "t9", Limit{Unlimited: true}); !d.Allowed || d.Limited {
		t.Fatalf("unlimited %+v", d)
	}
	// Zero is not unlimited: an unresolved limit fails closed at Floor.
	if d := l.Allow("k8", Limit{}, "t8", Limit{Unlimited: true}); !d.Allowed || !d.Limited || d.Limit != Floor.Burst {
		t.Fatalf("zero limit %+v", d)
	}
	if d := l.Allow("k8", Limit{}, "t8", Limit{Unlimited: true}); d.Allowed {
		t.Fatalf("zero limit, second request %+v", d)
	}
	if Seconds(100*time.Millisecond) != 1 || Seconds(1500*time.Millisecond) != 2 {
		t.Error("Seconds rounds up")
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New()
	key, tenant := Limit{RPS: 1e9, Burst: 1e9}, Limit{RPS: 1e9, Burst: 1e9}
	b.ReportAllocs()
	for b.Loop() {
		l.Allow("k", key, "t", tenant)
	}
}
