package sysconfig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// Fingerprint digests the paths, sizes, modes and modification times of the
// files at or under paths, following symlinks, so that any edit, addition
// or removal changes it. Kubernetes updates a ConfigMap or Secret volume by
// swapping a symlink, which file-event watchers on the files miss; polling a
// fingerprint sees it.
func Fingerprint(paths ...string) string {
	h := sha256.New()
	for _, root := range paths {
		_ = filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				fmt.Fprintf(h, "%s\x00err %v\n", p, err)
				return nil
			}
			fi, err := os.Stat(p)
			if err != nil {
				fmt.Fprintf(h, "%s\x00err %v\n", p, err)
				return nil
			}
			fmt.Fprintf(h, "%s\x00%d %d %d\n", p, fi.Size(), fi.Mode(), fi.ModTime().UnixNano())
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Reload triggers.
const (
	TriggerSignal = "SIGHUP"
	TriggerChange = "file change"
)

// OnChange calls fn on every SIGHUP and, when interval > 0, whenever the
// Fingerprint of paths changes, until ctx is done. It blocks: run it in its
// own goroutine. A failed reload is not retried until the files change
// again, so a broken edit is logged once. A change is acted on only when
// the files look the same a moment later (a quarter second, or interval if
// shorter): a file being written (truncated, then filled) is not reloaded
// half-written, and one edit is one call.
func OnChange(ctx context.Context, interval time.Duration, paths []string, fn func(trigger string)) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	defer signal.Stop(sig)
	var tick <-chan time.Time
	var last string
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
		last = Fingerprint(paths...)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if tick != nil {
				last = Fingerprint(paths...)
			}
			fn(TriggerSignal)
		case <-tick:
			fp := Fingerprint(paths...)
			if fp == last {
				continue
			}
			// Changed: confirm after a short pause that the files
			// have stopped changing (or wait for the next poll).
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(interval, 250*time.Millisecond)):
			}
			if again := Fingerprint(paths...); again == fp {
				last = fp
				fn(TriggerChange)
			}
		}
	}
}

// Watch reloads the registry on every SIGHUP and, when interval > 0, when
// a file under its directory changes, until ctx is done, logging the
// outcome; an invalid config keeps the previous one. It blocks: run it in
// its own goroutine.
func (r *Registry) Watch(ctx context.Context, log *slog.Logger, interval time.Duration) {
	OnChange(ctx, interval, []string{r.dir}, func(trigger string) {
		start := time.Now()
		if err := r.Reload(); err != nil {
			log.Error("config reload failed; keeping the previous config", "dir", r.dir, "trigger", trigger, "err", err)
			return
		}
		s := r.Current()
		log.Info("config reloaded", "dir", r.dir, "trigger", trigger, "definitions", len(s.Definitions()),
			"services", len(s.cfg.Services), "tenants", len(s.cfg.Tenants), "took", time.Since(start))
	})
}
