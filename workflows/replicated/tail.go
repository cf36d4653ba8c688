package replicated

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// Applier receives the records a Tail accepts, one at a time, in the order
// it accepts them (serialised: never two calls at once). Every record is
// newer than what the Tail saw before for its key.
type Applier func(Record)

// TailConfig locates the topic a Tail reads.
type TailConfig struct {
	Brokers []string
	Topic   string
	// Transport is used for metadata and offsets, Dialer by the readers
	// (kafka-go readers take a Dialer); nil means kafka-go's defaults.
	Transport *kafka.Transport
	Dialer    *kafka.Dialer
	// MaxWait bounds how long the broker holds an empty fetch: the tail
	// sees a new record as soon as it is written, and MaxWait only bounds
	// the idle polling (default 500ms).
	MaxWait time.Duration
	// Log receives errors and progress; nil discards them.
	Log *slog.Logger
}

// Tail reads a whole compacted topic, every partition, without a consumer
// group (every replica gets everything), into an Applier.
type Tail struct {
	cfg   TailConfig
	apply Applier
	log   *slog.Logger

	mu   sync.Mutex
	seqs map[string]uint64

	ready     chan struct{}
	readyOnce sync.Once
	applied   atomic.Int64
	skipped   atomic.Int64
}

// NewTail returns a Tail feeding apply; Run starts it.
func NewTail(cfg TailConfig, apply Applier) *Tail {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 500 * time.Millisecond
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tail{cfg: cfg, apply: apply, log: log.With("topic", cfg.Topic), seqs: map[string]uint64{}, ready: make(chan struct{})}
}

// Ready is closed once the Tail has applied everything the topic held when
// Run started (the high-water mark of every partition).
func (t *Tail) Ready() <-chan struct{} { return t.ready }

// IsReady reports whether Ready is closed.
func (t *Tail) IsReady() bool {
	select {
	case <-t.ready:
		return true
	default:
		return false
	}
}

// Check is a readiness check: nil once caught up.
func (t *Tail) Check(context.Context) error {
	if t.IsReady() {
		return nil
	}
	return fmt.Errorf("still reading %s up to where it stood at start (%d records applied)", t.cfg.Topic, t.applied.Load())
}

// Applied and Skipped count the records applied, and ignored as not newer
// than what the key held (duplicates, replays).
func (t *Tail) Applied() int64 { return t.applied.Load() }

// Skipped: see Applied.
func (t *Tail) Skipped() int64 { return t.skipped.Load() }

// Run reads until ctx ends. It first learns the partitions and their
// high-water marks, retrying while Kafka is unreachable, then reads every
// partition from its first offset.
func (t *Tail) Run(ctx context.Context) error {
	var hwm map[int]int64
	for attempt := 0; ; attempt++ {
		var err error
		hwm, err = t.highWaterMarks(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt%10 == 0 {
			t.log.Warn("cannot read the replicated topic yet; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	var (
		wg      sync.WaitGroup
		pending atomic.Int32
	)
	pending.Store(int32(len(hwm)))
	caughtUp := func() {
		if pending.Add(-1) == 0 {
			t.markReady()
		}
	}
	if len(hwm) == 0 {
		t.markReady()
	}
	errc := make(chan error, len(hwm))
	for p, end := range hwm {
		wg.Add(1)
		go func(p int, end int64) {
			defer wg.Done()
			errc <- t.readPartition(ctx, p, end, caughtUp)
		}(p, end)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return ctx.Err()
}

func (t *Tail) markReady() {
	t.readyOnce.Do(func() {
		t.log.Info("replicated topic loaded", "records", t.applied.Load())
		close(t.ready)
	})
}

// highWaterMarks returns each partition's next offset to be written.
func (t *Tail) highWaterMarks(ctx context.Context) (map[int]int64, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kc := &kafka.Client{Addr: kafka.TCP(t.cfg.Brokers...), Transport: t.transport()}
	md, err := kc.Metadata(cctx, &kafka.MetadataRequest{Topics: []string{t.cfg.Topic}})
	if err != nil {
		return nil, err
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		if len(md.Topics) == 1 {
			return nil, fmt.Errorf("topic %s: %w", t.cfg.Topic, md.Topics[0].Error)
		}
		return nil, fmt.Errorf("topic %s not found", t.cfg.Topic)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	res, err := kc.ListOffsets(cctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{t.cfg.Topic: reqs}})
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, po := range res.Topics[t.cfg.Topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", t.cfg.Topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	if len(out) != len(reqs) {
		return nil, fmt.Errorf("offsets of %s: %d of %d partitions answered", t.cfg.Topic, len(out), len(reqs))
	}
	return out, nil
}

func (t *Tail) transport() kafka.RoundTripper {
	if t.cfg.Transport != nil {
		return t.cfg.Transport
	}
	return kafka.DefaultTransport
}

// readPartition reads one partition from its start; caughtUp is called
// once, when the offset end-1 has been applied (at once when end is 0).
func (t *Tail) readPartition(ctx context.Context, p int, end int64, caughtUp func()) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     t.cfg.Brokers,
		Topic:       t.cfg.Topic,
		Partition:   p,
		Dialer:      t.cfg.Dialer,
		MinBytes:    1,
		MaxBytes:    10 << 20,
		MaxWait:     t.cfg.MaxWait,
		StartOffset: kafka.FirstOffset,
		// Do not let kafka-go's own idle wait add to the propagation
		// delay: a new record is fetched as soon as the broker has it.
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
	})
	defer r.Close()
	done := false
	if end <= 0 {
		caughtUp()
		done = true
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t.log.Warn("reading the replicated topic", "partition", p, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		t.accept(m.Key, m.Value, p, m.Offset)
		if !done && m.Offset >= end-1 {
			caughtUp()
			done = true
		}
	}
}

// accept applies a message when its sequence is newer than its key's.
func (t *Tail) accept(key, value []byte, partition int, offset int64) {
	rec, err := Decode(key, value)
	if err != nil {
		t.log.Warn("skipping a message that is not a replicated record", "partition", partition, "offset", offset, "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rec.Seq <= t.seqs[rec.Key] {
		t.skipped.Add(1)
		return
	}
	t.seqs[rec.Key] = rec.Seq
	t.applied.Add(1)
	t.apply(rec)
}
