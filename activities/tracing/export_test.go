package tracing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// flakyExporter fails while down is set.
type flakyExporter struct{ down bool }

func (f *flakyExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	if f.down {
		return errors.New("traces export: connection refused")
	}
	return nil
}
func (f *flakyExporter) Shutdown(context.Context) error { return nil }

// TestLoggedExporter: a collector that is down is one warning, then debug
// lines, and its return is one line counting the lost batches; the batch
// processor never sees the error (OpenTelemetry's global handler would
// log it a second time, elsewhere).
func TestLoggedExporter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := &flakyExporter{down: true}
	e := &loggedExporter{SpanExporter: f, log: log}
	for _, down := range []bool{true, true, true, false, false, true} {
		f.down = down
		if err := e.ExportSpans(context.Background(), nil); err != nil {
			t.Fatalf("ExportSpans returned %v", err)
		}
	}
	var levels []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		levels = append(levels, strings.Fields(line)[1])
	}
	want := []string{"level=WARN", "level=DEBUG", "level=DEBUG", "level=INFO", "level=WARN"}
	if strings.Join(levels, " ") != strings.Join(want, " ") {
		t.Errorf("levels %v, want %v\n%s", levels, want, buf.String())
	}
	if !strings.Contains(buf.String(), "lost_batches=3") {
		t.Errorf("the recovery line does not count 3 lost batches:\n%s", buf.String())
	}
}
