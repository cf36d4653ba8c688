package proxy

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
)

// Selector picks the endpoint of one try among a cluster's endpoints. A
// selector skips endpoints that are not Available and, when it can,
// endpoints already tried by this call (tried is a bit set over the
// endpoints' indexes; a retry goes to another instance while one is
// available). It returns -1 when no endpoint is available. Selectors are
// built per config snapshot and shared by concurrent calls.
type Selector interface {
	Select(eps []*Endpoint, key string, tried uint64, now int64) int
}

// skip reports whether endpoint i may not take the try: unavailable, or
// already tried (when pass is 0; pass 1 allows tried ones).
func skip(eps []*Endpoint, i int, tried uint64, pass int, now int64) bool {
	if !eps[i].Available(now) {
		return true
	}
	return pass == 0 && i < 64 && tried&(1<<uint(i)) != 0
}

// RoundRobin is smooth weighted round robin: each endpoint gets calls in
// proportion to its weight, interleaved (weights 5,1,1 give a a b a c a a,
// not a a a a a b c). The order is computed once per snapshot; a call takes
// the next slot with one atomic add.
type RoundRobin struct {
	order []int
	next  atomic.Uint64
}

// maxSchedule bounds the precomputed order; larger weight sums are scaled.
const maxSchedule = 4096

// NewRoundRobin computes the order of eps by their weights.
func NewRoundRobin(eps []*Endpoint) *RoundRobin {
	weights := make([]int, len(eps))
	total := 0
	for i, e := range eps {
		weights[i] = max(1, e.Weight)
		total += weights[i]
	}
	if total > maxSchedule {
		scaled := 0
		for i := range weights {
			weights[i] = max(1, weights[i]*maxSchedule/total)
			scaled += weights[i]
		}
		total = scaled
	}
	// nginx's smooth weighted round robin, run for one full cycle.
	cur := make([]int, len(eps))
	order := make([]int, 0, total)
	for range total {
		best := 0
		for i := range cur {
			cur[i] += weights[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		order = append(order, best)
	}
	rr := &RoundRobin{order: order}
	if len(order) > 0 {
		rr.next.Store(uint64(rand.IntN(len(order)))) // replicas do not move in lockstep
	}
	return rr
}

// Select implements Selector.
func (rr *RoundRobin) Select(eps []*Endpoint, _ string, tried uint64, now int64) int {
	n := uint64(len(rr.order))
	if n == 0 {
		return -1
	}
	start := rr.next.Add(1)
	for pass := range 2 {
		for k := range n {
			i := rr.order[(start+k)%n]
			if !skip(eps, i, tried, pass, now) {
				return i
			}
		}
	}
	return -1
}

// LeastRequest picks the less loaded of two random available endpoints
// (power of two choices), load being outstanding tries divided by weight.
// It avoids both the herd of "least loaded of all" and a scan of every
// endpoint.
type LeastRequest struct{}

// Select implements Selector.
func (LeastRequest) Select(eps []*Endpoint, _ string, tried uint64, now int64) int {
	n := len(eps)
	if n == 0 {
		return -1
	}
	for pass := range 2 {
		a, b := -1, -1
		// Two random probes first, then a scan from a random start when
		// they miss (few endpoints available).
		for range 2 {
			i := rand.IntN(n)
			if skip(eps, i, tried, pass, now) {
				continue
			}
			if a < 0 {
				a = i
			} else if i != a {
				b = i
			}
		}
		if a < 0 || b < 0 {
			start := rand.IntN(n)
			for k := range n {
				i := (start + k) % n
				if i == a || skip(eps, i, tried, pass, now) {
					continue
				}
				if a < 0 {
					a = i
				} else {
					b = i
					break
				}
			}
		}
		switch {
		case a < 0:
			continue
		case b < 0:
			return a
		}
		la := eps[a].outstanding.Load() * int64(eps[b].Weight)
		lb := eps[b].outstanding.Load() * int64(eps[a].Weight)
		if lb < la {
			return b
		}
		return a
	}
	return -1
}

// HashRing is consistent hashing (a ring of virtual nodes, 160 per unit of
// weight): a key maps to the same endpoint while that endpoint is
// available, and removing one endpoint moves only its keys. Keys of an
// unavailable endpoint go to the next endpoint on the ring. The hash
// (FNV-1a) is stable across processes, so every replica sends a key to the
// same instance.
type HashRing struct {
	points []uint64
	owner  []int
}

const vnodesPerWeight = 160

// NewHashRing builds the ring of eps.
func NewHashRing(eps []*Endpoint) *HashRing {
	type point struct {
		h uint64
		i int
	}
	var pts []point
	for i, e := range eps {
		for v := range max(1, e.Weight) * vnodesPerWeight {
			pts = append(pts, point{fnv64(e.BaseURL + "#" + strconv.Itoa(v)), i})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return a.i - b.i
	})
	r := &HashRing{points: make([]uint64, len(pts)), owner: make([]int, len(pts))}
	for k, p := range pts {
		r.points[k], r.owner[k] = p.h, p.i
	}
	return r
}

// Select implements Selector.
func (r *HashRing) Select(eps []*Endpoint, key string, tried uint64, now int64) int {
	n := len(r.points)
	if n == 0 {
		return -1
	}
	h := fnv64(key)
	start, _ := slices.BinarySearch(r.points, h)
	for pass := range 2 {
		for k := range n {
			i := r.owner[(start+k)%n]
			if !skip(eps, i, tried, pass, now) {
				return i
			}
		}
	}
	return -1
}

// fnv64 is FNV-1a over s, without allocating.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	// FNV mixes its last bytes poorly; finish with a murmur3 avalanche so
	// that keys differing only at the end spread over the ring.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
