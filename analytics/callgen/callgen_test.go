package callgen

import (
	"testing"
	"time"

	"github.com/gateflow/gateflow/activities/calls"
)

// TestCardinality: the generator produces exactly the documented
// combinations, every step always calls the same target, and records fall
// in the span.
func TestCardinality(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := New(1, start, 7*24*time.Hour)
	type combo struct{ tenant, kind, target, def, step string }
	seen := map[combo]int{}
	targetOf := map[[2]string]string{}
	targets := map[string]bool{}
	for range 200_000 {
		r := g.Next()
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		if ts := time.UnixMilli(r.TS); ts.Before(start) || !ts.Before(start.Add(7*24*time.Hour)) {
			t.Fatalf("ts %s outside the span", ts)
		}
		seen[combo{r.Tenant, string(r.Kind), r.Target, r.Definition, r.StepID}]++
		targets[r.Target] = true
		if r.Kind == calls.KindIngress {
			continue
		}
		k := [2]string{r.Definition, r.StepID}
		if prev, ok := targetOf[k]; ok && prev != r.Target {
			t.Fatalf("step %v calls %s and %s", k, prev, r.Target)
		}
		targetOf[k] = r.Target
	}
	if len(seen) != Combinations() {
		t.Fatalf("%d combinations, Combinations() says %d", len(seen), Combinations())
	}
	if Combinations() != 116 || len(targets) != Targets() || Targets() != 24 {
		t.Fatalf("combinations %d, targets %d/%d: update the package doc", Combinations(), len(targets), Targets())
	}
}

// TestDailyCycle: the busiest hour has several times the calls of the
// quietest.
func TestDailyCycle(t *testing.T) {
	g := New(2, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 24*time.Hour)
	var perHour [24]int
	for range 100_000 {
		perHour[time.UnixMilli(g.Next().TS).UTC().Hour()]++
	}
	if perHour[15] < 3*perHour[3] {
		t.Fatalf("calls per hour %v: want a daily cycle", perHour)
	}
}

func TestSameSeedSameRecords(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := New(7, start, time.Hour).Generate(100), New(7, start, time.Hour).Generate(100)
	for i := range a {
		a[i].ID, b[i].ID = "", ""
		if a[i].TS != b[i].TS || a[i].Target != b[i].Target || a[i].LatencyMS != b[i].LatencyMS {
			t.Fatalf("record %d differs: %+v vs %+v", i, a[i], b[i])
		}
	}
}
