// Package replicated spreads state that is changed rarely and read on
// every request (the API catalogue and its grants, API keys) to every
// ingress replica, so that the per-request check is a local map lookup.
//
// The mechanism has three parts, each usable on its own:
//
//   - The owner of the state is a Temporal entity workflow changed only by
//     validated Updates. Every change puts the full current value of the
//     keys it touched into the entity's Outbox, numbered by a sequence that
//     only grows (it is carried across continue-as-new). A loop of the
//     entity publishes the outbox, oldest first, one batch at a time,
//     through PublishActivity (Publisher, kafka-go). An Update may wait a
//     bounded time for its keys to be published before it answers, so a
//     caller that got an answer normally knows the change is on the topic.
//   - The topic is compacted (EnsureTopic creates it with
//     cleanup.policy=compact), keyed by the record key: Kafka keeps at least
//     the last value of every key, so the topic is the whole current state.
//   - Each replica runs a Tail: a consumer without a group that reads every
//     partition from the beginning into a local read model and reports
//     ready once it reached the high-water marks it saw at start. A record
//     whose sequence is not newer than the one held for its key is ignored,
//     so redeliveries, retried activities and replays never move a key
//     back.
//
// Ordering: an entity has one publishing loop and publishes in sequence
// order, so the last offset of a key in its partition carries the key's
// highest sequence and compaction keeps that one. An activity attempt that
// outlived its own timeout (a stalled process) could in theory write an
// older value after a newer one; the Writer's own timeouts are shorter than
// the activity's, which keeps that window closed in practice, and the next
// change of the key repairs it.
package replicated

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Record is the full current value of one key, numbered by the sequence of
// the entity that owns the key.
type Record struct {
	Key   string          `json:"key"`
	Seq   uint64          `json:"seq"`
	Value json.RawMessage `json:"value"`
}

// envelope is the Kafka message value: the sequence beside the value, so
// that a reader can order what it receives.
type envelope struct {
	Seq   uint64          `json:"seq"`
	Value json.RawMessage `json:"value"`
}

// Encode returns the Kafka message value of r.
func (r Record) Encode() ([]byte, error) {
	return json.Marshal(envelope{Seq: r.Seq, Value: r.Value})
}

// ErrBadMessage marks a message that is not a Record (skipped by a Tail).
var ErrBadMessage = errors.New("not a replicated record")

// Decode reads a Kafka message back into a Record.
func Decode(key, value []byte) (Record, error) {
	var e envelope
	if err := json.Unmarshal(value, &e); err != nil {
		return Record{}, fmt.Errorf("%w: key %q: %v", ErrBadMessage, key, err)
	}
	if len(key) == 0 || e.Seq == 0 || len(e.Value) == 0 {
		return Record{}, fmt.Errorf("%w: key %q: missing key, seq or value", ErrBadMessage, key)
	}
	return Record{Key: string(key), Seq: e.Seq, Value: e.Value}, nil
}
