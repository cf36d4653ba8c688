package logfan

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLevelsPerHandler(t *testing.T) {
	var all, warn bytes.Buffer
	log := slog.New(Handler{
		slog.NewTextHandler(&all, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewTextHandler(&warn, &slog.HandlerOptions{Level: slog.LevelWarn}),
	}).With("part", "sink").WithGroup("g")
	log.Debug("quiet", "k", 1)
	log.Warn("loud", "k", 2)
	if !strings.Contains(all.String(), "quiet") || !strings.Contains(all.String(), "loud") {
		t.Errorf("file handler got %q", all.String())
	}
	if strings.Contains(warn.String(), "quiet") || !strings.Contains(warn.String(), "part=sink g.k=2") {
		t.Errorf("terminal handler got %q", warn.String())
	}
	if (Handler{}).Enabled(t.Context(), slog.LevelError) {
		t.Error("an empty fan-out accepts records")
	}
}
