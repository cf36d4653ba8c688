// Package partgroup runs the named parts of one process (gateflow dev's
// worker, sink, ingress and demo services) as a group: each in its own
// goroutine, the first early stop reported with its name, and a bounded
// wait on shutdown.
package partgroup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Group runs named parts (gateflow dev's worker, sink, ingress, demo
// services) in the background, so that their owner can stop them first,
// wait for them, and learn which one stopped early and why.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup
	failed chan struct{} // closed when a part returns early
	mu     sync.Mutex
	err    error
	rows   [][2]string
	once   sync.Once
}

// New returns an empty group. Its parts' context is not cancelled with
// parent: the owner stops the parts itself (Stop), before stopping what they
// depend on.
func New(parent context.Context, log *slog.Logger) *Group {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	return &Group{ctx: ctx, cancel: cancel, log: log, failed: make(chan struct{})}
}

// Go runs fn(ctx) in the background. fn must return soon after ctx is
// cancelled. If it returns before (with or without an error), Failed is
// closed and Err names it.
func (p *Group) Go(name string, fn func(ctx context.Context) error) {
	p.wg.Go(func() {
		err := fn(p.ctx)
		if p.ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
			return
		}
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		p.mu.Lock()
		if p.err == nil {
			p.err = fmt.Errorf("%s: %w", name, err)
		}
		p.mu.Unlock()
		p.once.Do(func() { close(p.failed) })
	})
}

// AddSummary adds a line to the summary the owner prints when ready.
func (p *Group) AddSummary(label, value string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows = append(p.rows, [2]string{label, value})
}

// Summary returns the lines added by AddSummary, in order.
func (p *Group) Summary() [][2]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][2]string(nil), p.rows...)
}

// Err is the first early stop of a part, naming it; nil while all run.
func (p *Group) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop cancels the parts and waits for them up to timeout.
func (p *Group) Stop(timeout time.Duration) error {
	p.cancel()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("still running after %s", timeout)
	}
}

// Failed is closed when a part returns before Stop.
func (p *Group) Failed() <-chan struct{} { return p.failed }

// Context is the parts' context: cancelled by Stop, not by New's parent.
func (p *Group) Context() context.Context { return p.ctx }
