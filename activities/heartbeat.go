package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// heartbeatWhileCalling records heartbeats until the returned stop is
// called, so that a worker dying mid-call is noticed after the heartbeat
// timeout rather than the whole attempt timeout, and so that a cancellation
// of the activity reaches the call (Temporal delivers it on a heartbeat).
// every overrides the interval; otherwise it is half the heartbeat timeout
// (at most 5 s), or 10 s when the workflow set none.
func heartbeatWhileCalling(ctx context.Context, every, hbTimeout time.Duration) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	if every <= 0 {
		every = 10 * time.Second
		if hbTimeout > 0 {
			every = min(hbTimeout/2, 5*time.Second)
		}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
