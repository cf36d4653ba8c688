// Package logfan is a log/slog handler that fans each record out to several
// handlers, each with its own level: gateflow dev writes everything to its
// log file and only warnings to the terminal.
package logfan

import (
	"context"
	"errors"
	"log/slog"
)

// Handler sends each record to every handler that accepts its level.
type Handler []slog.Handler

// Enabled is true when one of the handlers accepts level l.
func (f Handler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

// Handle passes a clone of r to every handler that accepts its level.
func (f Handler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

// WithAttrs returns the fan-out of every handler with attrs.
func (f Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(Handler, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

// WithGroup returns the fan-out of every handler in group name.
func (f Handler) WithGroup(name string) slog.Handler {
	out := make(Handler, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
