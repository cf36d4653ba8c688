// Package recordtest is the one in-memory call-record sink of the tests: it
// implements the Emit method every recorder interface asks for (activities,
// the model gateway, the ingress) and lets a test read back what was
// emitted. Only tests import it.
package recordtest

import (
	"sync"

	"github.com/gateflow/gateflow/activities/calls"
	"github.com/gateflow/gateflow/analytics/record"
)

// Sink keeps every record emitted to it; safe for concurrent use. The zero
// value is ready.
type Sink struct {
	mu   sync.Mutex
	recs []record.Record
}

// Emit keeps r.
func (s *Sink) Emit(r record.Record) {
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
}

// All returns a copy of the records so far, in emission order.
func (s *Sink) All() []record.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]record.Record(nil), s.recs...)
}

// Len is the number of records so far.
func (s *Sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// Kind returns the records of one kind.
func (s *Sink) Kind(k calls.Kind) []record.Record {
	var out []record.Record
	for _, r := range s.All() {
		if r.Kind == k {
			out = append(out, r)
		}
	}
	return out
}

// Reset forgets every record.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.recs = nil
	s.mu.Unlock()
}
