package partgroup

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestEarlyStopIsReported(t *testing.T) {
	g := New(t.Context(), slog.New(slog.DiscardHandler))
	g.Go("steady", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	g.Go("broken", func(context.Context) error { return errors.New("port in use") })
	select {
	case <-g.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("Failed not closed")
	}
	if err := g.Err(); err == nil || !strings.Contains(err.Error(), "broken: port in use") {
		t.Errorf("Err = %v", err)
	}
	if err := g.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestStopIsClean(t *testing.T) {
	parent, cancel := context.WithCancel(t.Context())
	g := New(parent, slog.New(slog.DiscardHandler))
	cancel() // the parent's cancellation does not stop the parts
	g.Go("a", func(ctx context.Context) error { <-ctx.Done(); return nil })
	g.AddSummary("API", "http://127.0.0.1:8080")
	if g.Context().Err() != nil {
		t.Fatal("parts cancelled with the parent")
	}
	if err := g.Stop(5 * time.Second); err != nil || g.Err() != nil {
		t.Fatalf("stop %v, err %v", err, g.Err())
	}
	if s := g.Summary(); len(s) != 1 || s[0][0] != "API" {
		t.Errorf("summary %v", s)
	}
	g2 := New(t.Context(), slog.New(slog.DiscardHandler))
	g2.Go("stuck", func(context.Context) error { time.Sleep(time.Hour); return nil })
	if err := g2.Stop(10 * time.Millisecond); err == nil {
		t.Error("a stuck part was not reported")
	}
}
