package schedules

import (
	"testing"
	"time"

	"github.com/gateflow/gateflow/workflows/wire"
)

func TestCountRuns(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name     string
		spec     wire.ScheduleSpec
		from, to string
		want     int
	}{
		{"every minute", wire.ScheduleSpec{Interval: "1m"}, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", 5},
		{"every minute, unaligned range", wire.ScheduleSpec{Interval: "1m"}, "2026-01-01T00:00:30Z", "2026-01-01T00:05:30Z", 5},
		{"hourly at :10", wire.ScheduleSpec{Interval: "1h", Offset: "10m"}, "2026-01-01T00:00:00Z", "2026-01-01T03:00:00Z", 3},
		{"cron at 2am", wire.ScheduleSpec{Cron: "0 2 * * *"}, "2026-01-01T00:00:00Z", "2026-01-08T00:00:00Z", 7},
		{"cron at 2am Paris is 1am UTC in winter", wire.ScheduleSpec{Cron: "0 2 * * *", Timezone: "Europe/Paris"}, "2026-01-01T01:00:00Z", "2026-01-02T00:00:00Z", 1},
		{"cron includes from", wire.ScheduleSpec{Cron: "*/15 * * * *"}, "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", 4},
		{"limit", wire.ScheduleSpec{Interval: "1s"}, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CountRuns(tc.spec, at(tc.from), at(tc.to), 11)
			if err != nil || got != tc.want {
				t.Errorf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestSplitID(t *testing.T) {
	if tenant, name, ok := splitID(ScheduleID("acme", "nightly")); !ok || tenant != "acme" || name != "nightly" {
		t.Errorf("%s %s %v", tenant, name, ok)
	}
	for _, id := range []string{"other/acme/x", "gateflow/acme", "gateflow/acme/a/b", "gateflow//x"} {
		if _, _, ok := splitID(id); ok {
			t.Errorf("%s accepted", id)
		}
	}
}
