// Package producer sends call records to Kafka without ever failing the
// caller and without ever blocking it on the network.
//
// Two modes (Config.LogFirst):
//
// Log first (what the ingress and the worker run): Emit encodes the record
// and appends it to the on-disk spool, a local append-only log, and returns
// only once the record reached the operating system, so a record whose
// call was answered survives a SIGKILL of the process (the page cache holds
// it; an OS crash or power loss is covered by the spool's fsync policy).
// Concurrent Emits share write calls (the spool's group commit). One
// background goroutine feeds Kafka from the log in order: it reads the
// oldest records, writes them, and acknowledges them in the log's cursor.
// A restart replays what was not acknowledged: a record written to Kafka
// just before a crash can reach Kafka twice, and the sink drops the second
// copy by its id (see analytics/sink).
//
// Memory first: Emit encodes the record and hands it to an in-memory queue
// (a few hundred nanoseconds). One background goroutine drains the queue in
// batches and writes them with a kafka-go Writer; the batch is whatever
// accumulated while the previous write was in flight, so batches grow with
// load and the Writer's BatchTimeout (a few ms) is the only added latency
// when idle. When a write fails (Kafka unreachable, or every retry failed)
// the batch goes to the on-disk spool and the producer switches to
// spooling: new batches are appended behind it so order is kept, until the
// replayer has emptied the spool. When the in-memory queue is full, Emit
// appends to the spool itself. A crash loses the records still in memory.
//
// In both modes the producer keeps every message until Kafka acknowledged
// it (RequireAll): the Writer is driven with synchronous WriteMessages
// calls from background goroutines rather than in kafka-go's Async mode,
// because Async mode reports failures only through a callback and its Close
// cannot be bounded by a deadline. When the spool is full its oldest
// segment is dropped, logged, and counted in
// gateflow_producer_records_dropped_total{reason="spool_full"}.
//
// Close flushes the queue to Kafka or, past its deadline, to the spool, and
// replays the spool while Kafka answers: nothing is lost on a graceful stop.
//
// Duplicates: a write whose outcome is unknown (deadline passed while the
// broker was slow, or a crash before the log's cursor moved) is written
// again later, so Kafka can hold a record twice; the sink drops the copy by
// record id, and the raw table's ReplacingMergeTree collapses what slips
// through (see docs/ANALYTICS.md).
package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/spool"
)

// Defaults for Config fields left zero.
const (
	DefaultQueueSize     = 65536
	DefaultBatchRecords  = 10000
	DefaultBatchTimeout  = 5 * time.Millisecond
	DefaultWriteTimeout  = 10 * time.Second
	DefaultSyncInterval  = time.Second
	DefaultReplayBackoff = 5 * time.Second
)

// Config configures a Producer.
type Config struct {
	// Transport carries TLS/SASL settings; nil uses kafka.DefaultTransport.
	Transport *kafka.Transport
	Brokers   []string
	Topic     string
	// SpoolDir is where records wait while Kafka is unreachable. Required.
	SpoolDir string
	// SpoolMaxBytes bounds the spool (default 1 GiB); SpoolSegmentBytes is
	// the segment size (default 16 MiB), the unit dropped when full.
	SpoolMaxBytes     int64
	SpoolSegmentBytes int64
	// QueueSize is the in-memory queue, in records (default 65536).
	QueueSize int
	// BatchRecords caps one write (default 10000).
	BatchRecords int
	// BatchTimeout is the Writer's linger (default 5 ms).
	BatchTimeout time.Duration
	// WriteTimeout bounds one batch write including retries (default 10 s).
	WriteTimeout time.Duration
	// Compression codec (default lz4; see docs/BENCHMARKS.md for the
	// measurement behind the choice). Use -1 for none.
	Compression kafka.Compression
	// SyncInterval is how often the spool is fsynced (default 1 s).
	SyncInterval time.Duration
	// ReplayBackoffMax caps the wait between replay attempts (default 5 s).
	ReplayBackoffMax time.Duration
	// LogFirst writes every record to the spool before Emit returns and
	// feeds Kafka from there (see the package comment); false queues in
	// memory first.
	LogFirst bool
	// Fsync is the spool's fsync policy (default: every SyncInterval).
	Fsync spool.FsyncPolicy
	// Registerer receives the producer's metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

func (c *Config) defaults() error {
	if len(c.Brokers) == 0 {
		return errors.New("producer: no Kafka brokers")
	}
	if c.Topic == "" {
		return errors.New("producer: no topic")
	}
	if c.SpoolDir == "" {
		return errors.New("producer: no spool directory")
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.BatchRecords <= 0 {
		c.BatchRecords = DefaultBatchRecords
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Compression == 0 {
		c.Compression = kafka.Lz4
	}
	if c.Compression < 0 {
		c.Compression = 0
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.ReplayBackoffMax <= 0 {
		c.ReplayBackoffMax = DefaultReplayBackoff
	}
	return nil
}

// writerBatch bounds the messages of one produce request.
const writerBatch = 512

// Producer is safe for concurrent use.
type Producer struct {
	cfg    Config
	log    *slog.Logger
	writer *kafka.Writer
	spool  *spool.Spool
	m      metrics

	queue chan item
	// emitters counts Emit calls between their closing check and their
	// queue send, so Close can wait for them before the final drain.
	emitters atomic.Int64
	closing  atomic.Bool

	// mu orders spool appends against the switch back to direct writes.
	mu       sync.Mutex
	spooling bool
	// replayFailing is set while replay attempts fail.
	replayFailing bool

	wake       chan struct{} // nudges the replayer
	stopPump   chan struct{}
	pumpDone   chan struct{}
	replayStop context.CancelFunc
	bgDone     sync.WaitGroup
	pumpCtx    context.Context // deadline for the final drain
	pumpCtxMu  sync.Mutex
	errLogged  atomic.Int64 // unix seconds of the last write-failure log
	dropLogged atomic.Int64 // unix seconds of the last log-write-failure log
	// unsureUntil (replay goroutine only): spooled records before it were
	// part of a write whose outcome is unknown.
	unsureUntil spool.Position
	// replayMsgs (replay goroutine only) is reused for every batch:
	// WriteMessages copies the messages, not their keys and values.
	replayMsgs []kafka.Message
	// encBufs holds encoding buffers for log-first Emits: the log copies
	// the record, so its buffer can serve the next Emit.
	encBufs   sync.Pool
	closeOnce sync.Once
	closeErr  error
}

// New starts a producer. It does not contact Kafka: an unreachable cluster
// only means records are spooled until it answers.
func New(cfg Config, log *slog.Logger) (*Producer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Producer{
		cfg:      cfg,
		log:      log,
		queue:    make(chan item, cfg.QueueSize),
		wake:     make(chan struct{}, 1),
		stopPump: make(chan struct{}),
		pumpDone: make(chan struct{}),
	}
	p.encBufs.New = func() any {
		b := make([]byte, 0, 1024)
		return &b
	}
	p.m = newMetrics()
	sp, err := spool.Open(spool.Options{
		Dir:          cfg.SpoolDir,
		SegmentBytes: cfg.SpoolSegmentBytes,
		MaxBytes:     cfg.SpoolMaxBytes,
		Log:          log,
		Fsync:        cfg.Fsync,
		OnDrop: func(n int64, reason string) {
			p.m.dropped.WithLabelValues(reason).Add(float64(n))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	p.spool = sp
	if cfg.Registerer != nil {
		if err := p.m.register(cfg.Registerer, p); err != nil {
			_ = sp.Close()
			return nil, err
		}
	}
	transport := cfg.Transport
	if transport == nil {
		transport = kafka.DefaultTransport.(*kafka.Transport)
	}
	p.writer = &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		Compression:  cfg.Compression,
		BatchTimeout: cfg.BatchTimeout,
		// The producer batches itself; kafka-go splits one call's
		// messages per partition into requests of at most writerBatch
		// messages (and BatchBytes). kafka-go allocates room for
		// BatchSize messages for every request, however few it holds:
		// with BatchSize = BatchRecords (10000) each small batch of a
		// lightly loaded ingress cost a 1.7 MB allocation (a gateway
		// profile showed it as 5-12 % of the process's CPU with the
		// garbage collection it caused).
		BatchSize:       min(cfg.BatchRecords, writerBatch),
		BatchBytes:      1 << 20,
		MaxAttempts:     3,
		WriteBackoffMin: 50 * time.Millisecond,
		WriteBackoffMax: 500 * time.Millisecond,
		WriteTimeout:    cfg.WriteTimeout,
		ReadTimeout:     cfg.WriteTimeout,
		Transport:       transport,
		// The topic is created by the deployment (or auto-created by the
		// broker); the producer does not manage topics.
		AllowAutoTopicCreation: true,
	}
	// Records left in the spool by a previous run are replayed first.
	if sp.Len() > 0 {
		p.spooling = true
		log.Info("producer: replaying records spooled by a previous run", "records", sp.Len())
	}
	if cfg.LogFirst {
		// Every record goes through the spool; direct writes never resume.
		p.spooling = true
	}
	replayCtx, cancel := context.WithCancel(context.Background())
	p.replayStop = cancel
	p.bgDone.Add(2)
	go p.pump()
	go p.replay(replayCtx)
	p.nudge()
	return p, nil
}

// Emit queues r for Kafka. It never blocks on the network and never fails:
// when the queue is full the record goes to the spool, and when even that
// fails the loss is logged and counted. A missing schema version, id or
// timestamp is filled in. r is encoded before Emit returns, so the caller
// may reuse its Labels map.
func (p *Producer) Emit(r record.Record) {
	if r.Schema == 0 {
		r.Schema = record.SchemaVersion
	}
	if r.ID == "" {
		r.ID = record.NewID()
	}
	if r.TS == 0 {
		r.TS = time.Now().UnixMilli()
	}
	// Key and value share one buffer: a new one for the queue, a pooled
	// one for the log, which copies the record before Append returns.
	key := r.Key()
	var pooled *[]byte
	var buf []byte
	if p.cfg.LogFirst {
		pooled = p.encBufs.Get().(*[]byte)
		buf = (*pooled)[:0]
	} else {
		buf = make([]byte, 0, 512+len(key))
	}
	buf = append(buf, key...)
	buf = r.AppendJSON(buf)
	it := item{buf: buf, klen: len(key)}
	p.m.emitted.Inc()

	if p.cfg.LogFirst {
		p.logRecord(it)
		if cap(buf) <= 64<<10 { // a rare huge record is not kept
			*pooled = buf
			p.encBufs.Put(pooled)
		}
		return
	}

	p.emitters.Add(1)
	if !p.closing.Load() {
		select {
		case p.queue <- it:
			p.emitters.Add(-1)
			return
		default:
		}
	}
	p.emitters.Add(-1)
	// Queue full, or closing: spool directly.
	p.toSpool([]kafka.Message{it.message()}, "queue full or closing")
}

// item is a queued record: key and JSON value in one buffer. It is smaller
// than a kafka.Message, which keeps the queue's memory small.
type item struct {
	buf  []byte
	klen int
}

func (it item) message() kafka.Message {
	return kafka.Message{Key: it.buf[:it.klen:it.klen], Value: it.buf[it.klen:]}
}

// logRecord appends one record to the spool (log-first mode) and wakes the
// feeder. It returns once the record reached the operating system.
func (p *Producer) logRecord(it item) {
	err := p.spool.Append(spool.Entry{Key: it.buf[:it.klen], Value: it.buf[it.klen:]})
	if err != nil {
		reason := "spool_error"
		if errors.Is(err, spool.ErrClosed) {
			reason = "closed"
		}
		p.m.dropped.WithLabelValues(reason).Inc()
		p.logDropped(err)
		return
	}
	p.m.spooled.Inc()
	p.nudge()
}

// logDropped logs a record lost to a failed log write, at most once every
// 10 s.
func (p *Producer) logDropped(err error) {
	now := time.Now().Unix()
	last := p.dropLogged.Load()
	if now-last < 10 || !p.dropLogged.CompareAndSwap(last, now) {
		return
	}
	p.log.Error("producer: records lost: cannot write the record log", "dir", p.cfg.SpoolDir, "err", err)
}

// toSpool appends msgs to the spool and switches to spooling so that later
// batches queue up behind them.
func (p *Producer) toSpool(msgs []kafka.Message, why string) {
	entries := make([]spool.Entry, len(msgs))
	for i, m := range msgs {
		entries[i] = spool.Entry{Key: m.Key, Value: m.Value}
	}
	p.mu.Lock()
	err := p.spool.Append(entries...)
	if err == nil {
		p.spooling = true
	}
	p.mu.Unlock()
	if err != nil {
		reason := "spool_error"
		if errors.Is(err, spool.ErrClosed) {
			reason = "closed"
		}
		p.m.dropped.WithLabelValues(reason).Add(float64(len(msgs)))
		p.log.Error("producer: records lost: cannot spool", "records", len(msgs), "reason", why, "err", err)
		return
	}
	p.m.spooled.Add(float64(len(msgs)))
	p.nudge()
}

func (p *Producer) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// pump drains the queue in batches until Close.
func (p *Producer) pump() {
	defer p.bgDone.Done()
	defer close(p.pumpDone)
	batch := make([]kafka.Message, 0, p.cfg.BatchRecords)
	syncTick := time.NewTicker(p.cfg.SyncInterval)
	defer syncTick.Stop()
	for {
		batch = batch[:0]
		select {
		case it := <-p.queue:
			batch = append(batch, it.message())
		case <-syncTick.C:
			if err := p.spool.Sync(); err != nil {
				p.log.Error("producer: spool fsync failed", "err", err)
			}
			continue
		case <-p.stopPump:
			p.finalDrain(batch)
			return
		}
		batch = p.fill(batch)
		p.deliver(context.Background(), batch)
	}
}

// fill adds what is already queued, without waiting.
func (p *Producer) fill(batch []kafka.Message) []kafka.Message {
	for len(batch) < p.cfg.BatchRecords {
		select {
		case it := <-p.queue:
			batch = append(batch, it.message())
		default:
			return batch
		}
	}
	return batch
}

// finalDrain runs after every Emit has finished: it writes what is queued,
// within the Close deadline, and spools the rest.
func (p *Producer) finalDrain(batch []kafka.Message) {
	p.pumpCtxMu.Lock()
	ctx := p.pumpCtx
	p.pumpCtxMu.Unlock()
	for {
		batch = p.fill(batch[:0])
		if len(batch) == 0 {
			return
		}
		p.deliver(ctx, batch)
	}
}

// deliver writes a batch to Kafka, or spools it if the producer is
// spooling or the write fails.
func (p *Producer) deliver(ctx context.Context, batch []kafka.Message) {
	p.mu.Lock()
	if p.spooling || ctx.Err() != nil {
		p.mu.Unlock()
		p.toSpool(batch, "spooling")
		return
	}
	p.mu.Unlock()

	wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	err := p.writer.WriteMessages(wctx, batch...)
	cancel()
	if err == nil {
		p.m.sent.Add(float64(len(batch)))
		return
	}
	var werrs kafka.WriteErrors
	failed := batch
	if errors.As(err, &werrs) && len(werrs) == len(batch) {
		failed = failed[:0:0]
		for i, e := range werrs {
			if e != nil {
				failed = append(failed, batch[i])
			}
		}
		p.m.sent.Add(float64(len(batch) - len(failed)))
	}
	p.logWriteError(err, len(failed))
	p.toSpool(failed, "write failed")
}

// logWriteError logs at most once every 10 s.
func (p *Producer) logWriteError(err error, n int) {
	now := time.Now().Unix()
	last := p.errLogged.Load()
	if now-last < 10 || !p.errLogged.CompareAndSwap(last, now) {
		return
	}
	p.log.Warn("producer: Kafka write failed; spooling records until it answers",
		"topic", p.cfg.Topic, "records", n, "err", err)
}

// replay sends spooled records, oldest first, while there are any.
func (p *Producer) replay(ctx context.Context) {
	defer p.bgDone.Done()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		for ctx.Err() == nil {
			n, err := p.replayOnce(ctx)
			p.mu.Lock()
			p.replayFailing = err != nil
			p.mu.Unlock()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				p.logWriteError(err, 0)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, p.cfg.ReplayBackoffMax)
				continue
			}
			backoff = 100 * time.Millisecond
			if n == 0 {
				break
			}
		}
	}
}

// replayOnce sends one chunk of the spool; it returns 0 when the spool was
// empty, in which case direct writes resume.
func (p *Producer) replayOnce(ctx context.Context) (int, error) {
	b, err := p.spool.Peek(p.cfg.BatchRecords)
	if err != nil {
		return 0, err
	}
	if len(b.Entries) == 0 {
		if err := p.spool.Ack(b); err != nil { // a skipped damaged tail
			return 0, err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.spool.Len() > 0 {
			return 1, nil // appended meanwhile: go on
		}
		if p.spooling && !p.cfg.LogFirst {
			p.spooling = false
			p.log.Info("producer: spool replayed; writing to Kafka directly again")
		}
		return 0, nil
	}
	// Records that may be in Kafka already are marked, so that the sink
	// checks ClickHouse for them (see HeaderResent).
	var headers []kafka.Header
	if p.mayBeDelivered(b) {
		headers = resentHeaders
	}
	msgs := p.replayMsgs[:0]
	for _, e := range b.Entries {
		msgs = append(msgs, kafka.Message{Key: e.Key, Value: e.Value, Headers: headers})
	}
	if cap(msgs) <= 2*p.cfg.BatchRecords {
		p.replayMsgs = msgs
	}
	wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	err = p.writer.WriteMessages(wctx, msgs...)
	cancel()
	if err != nil {
		// The outcome is unknown (partial success, or a deadline): what is
		// written again up to this batch's end is marked as resent.
		if p.unsureUntil.Before(b.End()) {
			p.unsureUntil = b.End()
		}
		return 0, fmt.Errorf("replay %d spooled records: %w", len(msgs), err)
	}
	if err := p.spool.Ack(b); err != nil {
		return 0, err
	}
	p.m.replayed.Add(float64(len(msgs)))
	return len(msgs), nil
}

// HeaderResent marks a message that may have been written to Kafka before:
// a record replayed from the spool after a failed write whose outcome is
// unknown, after a crash (the log's cursor had not moved yet), or in
// memory-first mode at all (records spool after failed writes). The sink
// looks such records up in ClickHouse by id before inserting them, so a
// duplicate never reaches the rollups, even when the first copy was stored
// by another sink.
const HeaderResent = "gateflow-resent"

var resentHeaders = []kafka.Header{{Key: HeaderResent, Value: []byte("1")}}

// mayBeDelivered reports whether a spooled batch may already be in Kafka.
func (p *Producer) mayBeDelivered(b spool.Batch) bool {
	return !p.cfg.LogFirst || b.FromEarlierRun() || b.Start().Before(p.unsureUntil)
}

// drainSpool waits, until ctx is done, for the replayer to empty the spool;
// it gives up as soon as a replay attempt fails (Kafka unreachable).
func (p *Producer) drainSpool(ctx context.Context) {
	for {
		p.mu.Lock()
		n, failing := p.spool.Len(), p.replayFailing
		p.mu.Unlock()
		if n == 0 || failing || ctx.Err() != nil {
			return
		}
		p.nudge()
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close flushes queued records to Kafka, or to the spool once ctx is done;
// while ctx allows and Kafka answers it also replays the spool, so a
// graceful stop leaves records on disk only when Kafka is unreachable. It
// then stops the background work and closes the spool. Records emitted after
// Close go to the spool while it is open, and are counted as dropped after.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { p.closeErr = p.close(ctx) })
	return p.closeErr
}

func (p *Producer) close(ctx context.Context) error {
	p.closing.Store(true)
	for p.emitters.Load() != 0 {
		time.Sleep(10 * time.Microsecond)
	}
	p.pumpCtxMu.Lock()
	p.pumpCtx = ctx
	p.pumpCtxMu.Unlock()
	close(p.stopPump)
	<-p.pumpDone
	p.drainSpool(ctx)
	p.replayStop()

	// The Writer flushes nothing we still need (every write was
	// synchronous); bound its Close anyway.
	wdone := make(chan error, 1)
	go func() { wdone <- p.writer.Close() }()
	var errs []error
	select {
	case err := <-wdone:
		if err != nil {
			errs = append(errs, fmt.Errorf("close Kafka writer: %w", err))
		}
	case <-ctx.Done():
	}
	p.bgDone.Wait()
	p.mu.Lock()
	left := p.spool.Len()
	err := p.spool.Close()
	p.mu.Unlock()
	if err != nil {
		errs = append(errs, err)
	}
	if left > 0 {
		p.log.Info("producer: records left in the spool for the next start", "records", left, "dir", p.cfg.SpoolDir)
	}
	return errors.Join(errs...)
}
