package proxy

import "sync/atomic"

// retryBudget is Envoy's retry budget for one cluster: a retry may start
// only while the retries in flight stay below percent of the calls in
// flight, or below minConcurrency when that is larger. In an outage every
// call fails, so a fixed number of retries per call would multiply the
// load on the upstream by (1 + retries); the budget keeps the extra load
// to a fraction of the normal one.
type retryBudget struct {
	percent        float64
	minConcurrency int64

	active  atomic.Int64 // calls in flight
	retries atomic.Int64 // retries in flight
}

// begin counts a call in flight; end must follow.
func (b *retryBudget) begin() { b.active.Add(1) }

// end counts the call's end.
func (b *retryBudget) end() { b.active.Add(-1) }

// tryRetry reserves a retry when the budget allows one; endRetry must
// follow when it returns true.
func (b *retryBudget) tryRetry() bool {
	limit := max(b.minConcurrency, int64(float64(b.active.Load())*b.percent/100))
	for {
		n := b.retries.Load()
		if n >= limit {
			return false
		}
		if b.retries.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// endRetry releases a retry reserved by tryRetry.
func (b *retryBudget) endRetry() { b.retries.Add(-1) }
