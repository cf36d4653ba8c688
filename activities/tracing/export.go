package tracing

import (
	"context"
	"log/slog"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// loggedExporter reports failed exports to the process's log. Without it
// the batch span processor hands them to OpenTelemetry's global error
// handler: an unstructured line on stderr in a standalone process, and in
// `gateflow dev` the embedded Temporal server's handler, which files them
// in Temporal's own log as its errors (or drops them once it stops).
//
// A collector that is down fails every batch; the first failure is a
// warning, the ones after it debug lines, and the first success after
// them says how many batches were lost. The error is returned as nil so
// that the global handler does not log it a second time.
type loggedExporter struct {
	sdktrace.SpanExporter
	log *slog.Logger

	mu     sync.Mutex
	failed int // batches lost since the last success
}

func (e *loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err != nil && e.failed == 0:
		e.failed++
		// The error names the collector's address, never the exporter's
		// headers (OTEL_EXPORTER_OTLP_HEADERS may hold a credential).
		e.log.Warn("trace spans not exported; requests go on, spans are dropped until the collector answers", "spans", len(spans), "err", err)
	case err != nil:
		e.failed++
		e.log.Debug("trace spans not exported", "spans", len(spans), "lost_batches", e.failed, "err", err)
	case e.failed > 0:
		e.log.Info("trace spans exported again", "lost_batches", e.failed)
		e.failed = 0
	}
	return nil
}
