package sysconfig

import (
	"context"
	"log/slog"
	"time"

	"github.com/gateflow/gateflow/activities/llm"
)

// FollowModels keeps gw on the models of the registry's current
// snapshot: every interval (1 s when zero) it checks whether a reload
// (SIGHUP) replaced the snapshot and then reloads the gateway's routing
// table. It blocks until ctx ends: run it in its own goroutine, in every
// process that holds a gateway (ingress and worker).
//
// Polling the snapshot pointer costs nothing and needs no hook in the
// registry; a model added by a reload is routable at most one interval
// later.
func FollowModels(ctx context.Context, reg *Registry, gw *llm.Gateway, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The first round reloads unconditionally: a reload may have happened
	// between building the gateway and this call.
	var last *Snapshot
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cur := reg.Current()
		if cur == last {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			continue
		}
		first := last == nil
		last = cur
		if err := gw.Reload(cur.Models()); err != nil {
			// The registry validated the same section; this cannot
			// happen unless the two disagree. Keep the previous table.
			log.Error("model gateway not reloaded; keeping the previous models", "err", err)
			continue
		}
		if !first {
			log.Info("model gateway reloaded", "models", len(gw.Models()))
		}
	}
}
