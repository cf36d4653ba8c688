// Package sink moves call records from Kafka into ClickHouse.
//
// Several sinks share the topic's partitions through a consumer group. Each
// collects messages into a batch (BatchRows or BatchInterval, whichever
// comes first), inserts it with one clickhouse-go batch (explicit column
// list), and only then commits the offsets: delivery is at least once.
//
// Exact counts despite redelivery: every raw row carries its Kafka topic,
// partition and offset, and a materialized view keeps the highest stored
// offset per partition (calls_kafka_offsets). Before inserting, the sink
// drops every message whose offset is at or below that mark; the mark is
// read from ClickHouse when a partition is new to this sink's consumer-group
// generation, when its offsets jump, and before every retry of a failed
// insert (whose outcome is unknown). The sink uses kafka-go's ConsumerGroup
// directly, not its group Reader, because the group then waits for the
// sink's own functions before a rebalance completes: an insert in flight
// finishes before the partition's next owner reads the mark. A redelivered
// message therefore never reaches the raw table nor the rollup views.
// Batches collected in a generation that ended are dropped uninserted and
// come back through the new assignment. An insert applied in part (a
// ClickHouse killed mid-insert, then its sink killed before the retry) is
// completed by the partitions' next owner, which re-sends the batches stored
// beyond the committed offsets under their tokens (repair.go). See
// docs/ANALYTICS.md for the remaining windows.
//
// A message that is not a valid record goes to the dead-letter topic with
// the reason in the "gateflow-error" header, and its offset is committed
// with the batch: it never blocks the partition.
//
// ClickHouse down: the batch is retried with exponential backoff (fetching
// stops once the bounded fetch buffers are full) until it is accepted, the
// generation ends or the sink is stopped; nothing is committed before that.
package sink

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/schema"
)

// Defaults for Config fields left zero.
const (
	DefaultGroupID       = "gateflow-sink"
	DefaultBatchRows     = 50000
	DefaultBatchInterval = time.Second
	DefaultRetryMin      = 200 * time.Millisecond
	DefaultRetryMax      = 10 * time.Second
)

// HeaderError is the dead-letter message header carrying the reason.
const HeaderError = "gateflow-error"

// Config configures a Sink.
type Config struct {
	// Dialer is used by the consumer-group reader; Transport by the
	// dead-letter writer. Nil means plain TCP.
	Dialer    *kafka.Dialer
	Transport *kafka.Transport
	Brokers   []string
	Topic     string
	DLQTopic  string
	GroupID   string
	// BatchRows and BatchInterval bound a batch (default 50000 rows, 1 s).
	BatchRows     int
	BatchInterval time.Duration
	// TTLDays of raw records (0: default 90; negative: forever).
	TTLDays int
	// Cluster lays the schema out on a ClickHouse cluster (see
	// schema.Cluster); the zero value is a single server.
	Cluster schema.Cluster
	// RetryMin/RetryMax bound the backoff between ClickHouse attempts.
	RetryMin, RetryMax time.Duration
	// Registerer receives the sink's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// ClickHouse, when set, is the options the connection given to New
	// was opened with: batches are then inserted over a ch-go connection
	// of the sink's own with typed columns (see nativeInserter), which
	// costs far less CPU than clickhouse-go's reflection. Nil (or the
	// HTTP protocol): inserts go through the given connection.
	ClickHouse *clickhouse.Options
}

func (c *Config) defaults() error {
	if len(c.Brokers) == 0 {
		return errors.New("sink: no Kafka brokers")
	}
	if c.Topic == "" || c.DLQTopic == "" || c.Topic == c.DLQTopic {
		return errors.New("sink: topic and a different dead-letter topic are required")
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.BatchRows <= 0 {
		c.BatchRows = DefaultBatchRows
	}
	if c.BatchInterval <= 0 {
		c.BatchInterval = DefaultBatchInterval
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.Dialer == nil {
		c.Dialer = &kafka.Dialer{Timeout: 5 * time.Second, DualStack: true}
	}
	if c.Transport == nil {
		c.Transport = kafka.DefaultTransport.(*kafka.Transport)
	}
	return nil
}

// Sink is one member of the sink consumer group.
type Sink struct {
	cfg  Config
	conn driver.Conn
	log  *slog.Logger
	m    metrics

	// stored is the highest offset known stored in ClickHouse per
	// partition; last is the last offset fetched per partition in the
	// current generation (-1 after a refresh is due).
	stored map[int]int64
	last   map[int]int64
	stale  map[int]bool
	// seen holds the latest stored ids per partition (see filter).
	seen map[int]*idWindow

	// native inserts batches when Config.ClickHouse is set.
	native *nativeInserter
	// batchBuf and rowsBuf are reused by every batch (collect, filter):
	// growing a fresh slice of 50k pending messages cost more CPU than
	// decoding them.
	batchBuf []pending
	rowsBuf  []*pending
	rowPtrs  []*Row

	logMu        sync.Mutex
	lastFetchLog time.Time
}

// New returns a sink; Run starts it.
func New(cfg Config, conn driver.Conn, log *slog.Logger) (*Sink, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, errors.New("sink: no ClickHouse connection")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: cfg, conn: conn, log: log, m: newMetrics(),
		stored: map[int]int64{}, last: map[int]int64{}, stale: map[int]bool{}, seen: map[int]*idWindow{}}
	if cfg.Registerer != nil {
		if err := s.m.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	// ch-go speaks only the native protocol: a DSN over HTTP keeps the
	// inserts on conn.
	if cfg.ClickHouse != nil && cfg.ClickHouse.Protocol == clickhouse.Native {
		n, err := newNativeInserter(cfg.ClickHouse)
		if err != nil {
			return nil, err
		}
		s.native = n
	}
	return s, nil
}

// pending is one fetched message and what to do with it.
type pending struct {
	msg kafka.Message
	// row is the decoded record (row.id: its id, parsed) with its origin.
	row    Row
	reason string // non-empty: dead-letter it
	// resent: the producer marked the message as possibly written before
	// (producer.HeaderResent); it is looked up in ClickHouse by id.
	resent bool
}

// Run applies the schema migrations (waiting for ClickHouse if needed), then
// consumes until ctx is cancelled. It returns nil on cancellation; the batch
// being collected is dropped uncommitted (it is redelivered).
func (s *Sink) Run(ctx context.Context) error {
	if err := s.retry(ctx, "apply schema migrations", func(ctx context.Context) error {
		return schema.Migrate(ctx, s.conn, schema.Options{TTLDays: s.cfg.TTLDays, Cluster: s.cfg.Cluster})
	}); err != nil {
		return nilIfCancelled(ctx, err)
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:      s.cfg.GroupID,
		Brokers: s.cfg.Brokers,
		Dialer:  s.cfg.Dialer,
		Topics:  []string{s.cfg.Topic},
		// Heartbeats every 1 s so a rebalance reaches this member quickly;
		// 6 s is kfake's minimum session: a dead sink's partitions move in
		// ~6 s.
		HeartbeatInterval: time.Second,
		SessionTimeout:    6 * time.Second,
		// The coordinator waits this long for every member to finish its
		// generation (see consume) before it hands partitions to others.
		RebalanceTimeout: rebalanceTimeout,
		JoinGroupBackoff: time.Second,
		StartOffset:      kafka.FirstOffset,
		Timeout:          5 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			s.log.Debug("kafka group: " + fmt.Sprintf(f, a...))
		}),
	})
	if err != nil {
		return fmt.Errorf("sink: consumer group %s: %w", s.cfg.GroupID, err)
	}
	dlq := &kafka.Writer{
		Addr:                   kafka.TCP(s.cfg.Brokers...),
		Topic:                  s.cfg.DLQTopic,
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		Transport:              s.cfg.Transport,
		AllowAutoTopicCreation: true,
	}
	var running sync.WaitGroup
	defer func() {
		// Close ends the current generation and waits for its functions.
		if err := group.Close(); err != nil {
			s.log.Warn("sink: leave consumer group", "err", err)
		}
		running.Wait()
		if err := dlq.Close(); err != nil {
			s.log.Warn("sink: close dead-letter writer", "err", err)
		}
		if s.native != nil {
			// Nothing inserts any more: the generations' functions returned.
			s.native.close()
		}
	}()
	s.log.Info("sink: consuming", "topic", s.cfg.Topic, "group", s.cfg.GroupID,
		"batch_rows", s.cfg.BatchRows, "batch_interval", s.cfg.BatchInterval)
	for {
		// Next returns a generation only once every function of the
		// previous one has returned.
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, kafka.ErrGroupClosed) {
				return fmt.Errorf("sink: consumer group %s closed", s.cfg.GroupID)
			}
			// The group could not be joined (broker down): the group
			// keeps trying by itself.
			s.m.fetchErrors.Inc()
			s.logFetchError(err)
			continue
		}
		s.startGeneration(ctx, gen, dlq, &running)
	}
}

// rebalanceTimeout bounds how long the group waits for a member to finish
// its generation; storeTimeout (one insert attempt) stays well below it so
// that an insert in flight ends before its partitions move.
const (
	rebalanceTimeout = 30 * time.Second
	storeTimeout     = 20 * time.Second
)

// startGeneration starts one fetcher per assigned partition and the batcher
// that stores and commits what they fetch. They all stop when the
// generation ends, and the group does not join the next generation (so no
// other sink gets these partitions) until they have returned: an insert in
// flight completes, and its offsets are in ClickHouse, before any new owner
// reads the stored marks.
func (s *Sink) startGeneration(ctx context.Context, gen *kafka.Generation, dlq *kafka.Writer, running *sync.WaitGroup) {
	assigned := gen.Assignments[s.cfg.Topic]
	s.log.Info("sink: partitions assigned", "generation", gen.ID, "partitions", len(assigned))
	// Keep the id windows of partitions this sink keeps (the previous
	// generation's functions have returned: no one else uses them).
	keep := map[int]bool{}
	for _, a := range assigned {
		keep[a.ID] = true
	}
	maps.DeleteFunc(s.seen, func(p int, _ *idWindow) bool { return !keep[p] })
	// A partition new to this sink gets the window of what is stored:
	// a record emitted again under the same id (a workflow task re-run
	// after its worker died re-runs its local activities) must be dropped
	// however often the partition changed sinks in between.
	for _, a := range assigned {
		if _, ok := s.seen[a.ID]; !ok {
			s.warmWindow(ctx, a.ID, a.Offset)
		}
	}
	msgs := make(chan kafka.Message, 4096)
	readers := make([]*kafka.Reader, 0, len(assigned))
	for _, a := range assigned {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   s.cfg.Brokers,
			Topic:     s.cfg.Topic,
			Partition: a.ID,
			Dialer:    s.cfg.Dialer,
			MinBytes:  1,
			MaxBytes:  4 << 20,
			// kafka-go uses MaxWait as the read deadline of a fetch
			// response; a short one turns a slow (busy) broker into read
			// errors and refetches.
			MaxWait:        time.Second,
			QueueCapacity:  4096,
			ReadBackoffMin: 100 * time.Millisecond,
			ReadBackoffMax: 2 * time.Second,
			ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
				s.log.Debug("kafka reader: " + fmt.Sprintf(f, a...))
			}),
		})
		if err := r.SetOffset(a.Offset); err != nil {
			s.log.Warn("sink: set partition offset", "partition", a.ID, "offset", a.Offset, "err", err)
		}
		readers = append(readers, r)
		running.Add(1)
		gen.Start(func(gctx context.Context) {
			defer running.Done()
			defer func() { _ = r.Close() }()
			s.fetch(gctx, r, msgs)
		})
	}
	running.Add(1)
	gen.Start(func(gctx context.Context) {
		defer running.Done()
		// A batch stored beyond a partition's committed offset may have
		// been applied in part by a ClickHouse that died mid-insert, and
		// its sink died before retrying it: complete it before consuming
		// (its messages are then skipped as stored).
		s.repairInDoubt(ctx, gctx, assigned)
		s.consume(ctx, gctx, gen, dlq, msgs, readers)
	})
}

// fetch forwards one partition's messages until the generation ends.
func (s *Sink) fetch(gctx context.Context, r *kafka.Reader, msgs chan<- kafka.Message) {
	for {
		msg, err := r.FetchMessage(gctx)
		if err != nil {
			if gctx.Err() != nil {
				return
			}
			s.m.fetchErrors.Inc()
			s.logFetchError(err)
			select {
			case <-gctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		select {
		case msgs <- msg:
		case <-gctx.Done():
			return
		}
	}
}

// consume collects, stores and commits batches until the generation ends
// (gctx) or the sink stops (ctx).
func (s *Sink) consume(ctx, gctx context.Context, gen *kafka.Generation, dlq *kafka.Writer, msgs <-chan kafka.Message, readers []*kafka.Reader) {
	// Every partition is new to this generation: its stored mark is read
	// again before the first insert (another sink may have had it).
	clear(s.last)
	clear(s.stale)
	for {
		batch := s.collect(gctx, msgs)
		s.updateLag(readers)
		if len(batch) == 0 || gctx.Err() != nil {
			if len(batch) > 0 {
				s.dropped(len(batch))
				clear(batch)
			}
			if gctx.Err() != nil || ctx.Err() != nil {
				return
			}
			continue
		}
		err := s.flush(ctx, gctx, gen, dlq, batch)
		// The buffer is reused: let go of the messages it holds now
		// rather than when the next batches overwrite them.
		clear(batch)
		if err != nil {
			return
		}
	}
}

func (s *Sink) dropped(n int) {
	s.log.Info("sink: consumer group rebalanced; dropping the uncommitted batch (it is redelivered)", "messages", n)
	s.m.rebalances.Inc()
}

func (s *Sink) updateLag(readers []*kafka.Reader) {
	var lag int64
	for _, r := range readers {
		lag += max(r.Stats().Lag, 0)
	}
	s.m.lag.Set(float64(lag))
}

func nilIfCancelled(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// collect takes messages until BatchRows, or BatchInterval after the
// first, or the end of the generation.
func (s *Sink) collect(gctx context.Context, msgs <-chan kafka.Message) []pending {
	if cap(s.batchBuf) < s.cfg.BatchRows {
		s.batchBuf = make([]pending, 0, s.cfg.BatchRows)
	}
	batch := s.batchBuf[:0]
	var timeout <-chan time.Time
	for len(batch) < s.cfg.BatchRows {
		var msg kafka.Message
		select {
		case <-gctx.Done():
			return batch
		case <-timeout:
			return batch
		case msg = <-msgs:
		}
		if timeout == nil {
			t := time.NewTimer(s.cfg.BatchInterval)
			defer t.Stop()
			timeout = t.C
		}
		s.m.consumed.Inc()
		// A partition seen for the first time in this generation, or whose
		// offsets do not follow on, may have been consumed by another
		// sink: re-read its stored mark before inserting.
		if last, ok := s.last[msg.Partition]; !ok || msg.Offset != last+1 {
			s.stale[msg.Partition] = true
		}
		s.last[msg.Partition] = msg.Offset
		// Decode in place: a pending message is ~700 bytes.
		batch = append(batch, pending{})
		batch[len(batch)-1].decode(msg)
	}
	s.batchBuf = batch[:0]
	return batch
}

// decode sets p from msg: its record and origin, or why it is a dead
// letter.
func (p *pending) decode(msg kafka.Message) {
	*p = pending{msg: msg, resent: hasHeader(msg.Headers, headerResent)}
	// kafka-go reads every message into bytes of its own, which nothing
	// modifies: the record may share them.
	id, err := record.DecodeShared(msg.Value, &p.row.Record)
	if err != nil {
		p.reason = err.Error()
		return
	}
	p.row.id = id
	p.row.Topic, p.row.Partition, p.row.Offset = msg.Topic, int32(msg.Partition), msg.Offset
}

// logFetchError logs Kafka trouble at most every 10 s.
func (s *Sink) logFetchError(err error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if time.Since(s.lastFetchLog) < 10*time.Second {
		return
	}
	s.lastFetchLog = time.Now()
	s.log.Warn("sink: cannot read from Kafka; retrying", "topic", s.cfg.Topic, "err", err)
}

// flush stores a batch and commits it, retrying ClickHouse until it
// accepts, the generation ends, or ctx is cancelled. Dead letters are
// written first: once the rows are stored their offsets count as handled.
// Attempts run on ctx, not gctx, so that an insert in flight when the
// generation ends completes (bounded by storeTimeout) instead of leaving an
// unknown outcome behind.
func (s *Sink) flush(ctx, gctx context.Context, gen *kafka.Generation, dlq *kafka.Writer, batch []pending) error {
	start := time.Now()
	var rows, dead []*pending
	var dups int
	deadDone := false
	// token is set when the rows are decided, before the first insert is
	// sent: from then on its outcome may be unknown (ClickHouse can die
	// after committing some of the tables an insert reaches), so every
	// retry sends the same rows with the same insert_deduplication_token
	// and each table takes exactly the blocks it missed.
	var token string
	err := s.retryBatch(ctx, gctx, func() bool { return token != "" }, func(actx context.Context) (err error) {
		if token == "" {
			if err := s.refreshStale(actx, batch); err != nil {
				return err
			}
			rows, dead, dups = s.filter(batch)
			var stored int
			if rows, stored, err = s.dropStoredResent(actx, rows); err != nil {
				return err
			}
			dups += stored
			if len(dead) > 0 && !deadDone {
				if err := s.deadLetter(actx, dlq, dead); err != nil {
					return err
				}
				deadDone = true
			}
			if gctx.Err() != nil {
				return errRebalanced
			}
			token = batchToken(s.cfg.GroupID, rows)
		}
		return s.insert(actx, rows, token)
	})
	if errors.Is(err, errRebalanced) {
		s.dropped(len(batch))
		return nil
	}
	if err != nil {
		return err
	}
	if len(rows) > 0 {
		s.m.inserted.Add(float64(len(rows)))
		s.m.insertSeconds.Observe(time.Since(start).Seconds())
	}
	skipped := len(batch) - len(rows) - len(dead) - dups
	s.m.skipped.Add(float64(skipped))
	s.m.duplicates.Add(float64(dups))
	s.log.Debug("sink: batch stored", "messages", len(batch), "inserted", len(rows),
		"dead_lettered", len(dead), "skipped_as_stored", skipped, "duplicates", dups, "took", time.Since(start))
	s.commit(gen, batch)
	return nil
}

var errRebalanced = errors.New("consumer group rebalanced")

// refreshStale reads the stored offset mark of stale partitions.
func (s *Sink) refreshStale(ctx context.Context, batch []pending) error {
	if len(s.stale) == 0 {
		return nil
	}
	parts := slices.Sorted(maps.Keys(s.stale))
	p32 := make([]int32, len(parts))
	for i, p := range parts {
		p32[i] = int32(p)
	}
	marks, err := StoredOffsets(ctx, s.conn, s.cfg.Topic, p32)
	if err != nil {
		return err
	}
	// A topic deleted and created again restarts its offsets: a stored
	// mark at or above the partition's end means the mark is from the old
	// topic and must be ignored, or every new record would be skipped.
	hwm := map[int]int64{}
	for _, p := range batch {
		hwm[p.msg.Partition] = max(hwm[p.msg.Partition], p.msg.HighWaterMark)
	}
	for _, p := range parts {
		mark, ok := marks[int32(p)]
		if !ok {
			mark = -1
		}
		if h, seen := hwm[p]; seen && h > 0 && mark >= h {
			s.log.Warn("sink: stored offset is beyond the partition's end; was the topic recreated? ignoring the stored mark",
				"topic", s.cfg.Topic, "partition", p, "stored", mark, "high_watermark", h)
			mark = -1
		}
		s.stored[p] = mark
	}
	clear(s.stale)
	return nil
}

// StoredOffsets returns the highest stored offset of each given partition
// of topic that has any rows.
func StoredOffsets(ctx context.Context, conn driver.Conn, topic string, partitions []int32) (map[int32]int64, error) {
	rows, err := conn.Query(ctx, `SELECT partition, max(max_offset) FROM `+schema.TableKafkaOffsets+
		` WHERE topic = ? AND partition IN ? GROUP BY partition`, topic, partitions)
	if err != nil {
		return nil, fmt.Errorf("read stored offsets: %w", err)
	}
	defer rows.Close()
	out := map[int32]int64{}
	for rows.Next() {
		var p int32
		var o int64
		if err := rows.Scan(&p, &o); err != nil {
			return nil, fmt.Errorf("read stored offsets: %w", err)
		}
		out[p] = o
	}
	return out, rows.Err()
}

// filter splits the messages not yet stored into rows and dead letters,
// and drops records whose id was stored recently from the same partition
// (dups): the producer writes a record again when a Kafka write's outcome
// was unknown, at another offset, so the offset mark cannot catch it.
func (s *Sink) filter(batch []pending) (rows, dead []*pending, dups int) {
	if cap(s.rowsBuf) < len(batch) {
		s.rowsBuf = make([]*pending, 0, len(batch))
	}
	rows = s.rowsBuf[:0]
	var inBatch map[uuid.UUID]struct{}
	for i := range batch {
		p := &batch[i]
		if mark, ok := s.stored[p.msg.Partition]; ok && p.msg.Offset <= mark {
			// Stored already: remember its id for later duplicates.
			if p.reason == "" {
				s.window(p.msg.Partition).add(p.row.id)
			}
			continue
		}
		if p.reason != "" {
			dead = append(dead, p)
			continue
		}
		if s.window(p.msg.Partition).has(p.row.id) {
			dups++
			continue
		}
		if inBatch == nil {
			inBatch = make(map[uuid.UUID]struct{}, len(batch))
		}
		if _, ok := inBatch[p.row.id]; ok {
			dups++
			continue
		}
		inBatch[p.row.id] = struct{}{}
		rows = append(rows, p)
	}
	return rows, dead, dups
}

// headerResent is producer.HeaderResent (the sink does not import the
// producer).
const headerResent = "gateflow-resent"

func hasHeader(hs []kafka.Header, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

// dropStoredResent removes the rows the producer marked as possibly
// written before whose id ClickHouse holds already: the first copy may
// have been stored by another sink, or too long ago for the id window.
// The lookup uses the raw table's sorting key (tenant, ts, id) and runs
// only for marked rows, which exist only after a producer's failed write or
// crash. After a broker outage every row of a batch can be marked (the
// producer replays its spool), so the rows are looked up in chunks of at
// most LookupChunk ids, in timestamp order so that each chunk reads a
// narrow time range.
func (s *Sink) dropStoredResent(ctx context.Context, rows []*pending) ([]*pending, int, error) {
	var resent []*pending
	for _, p := range rows {
		if p.resent {
			resent = append(resent, p)
		}
	}
	if len(resent) == 0 {
		return rows, 0, nil
	}
	slices.SortFunc(resent, func(a, b *pending) int { return cmp.Compare(a.row.TS, b.row.TS) })
	found := map[string]bool{}
	for chunk := range slices.Chunk(resent, LookupChunk) {
		ids := make([]string, len(chunk))
		tenants := map[string]bool{}
		for i, p := range chunk {
			ids[i] = p.row.id.String()
			tenants[p.row.Tenant] = true
		}
		f, err := StoredIDs(ctx, s.conn, slices.Sorted(maps.Keys(tenants)), chunk[0].row.TS, chunk[len(chunk)-1].row.TS, ids)
		if err != nil {
			return nil, 0, err
		}
		maps.Copy(found, f)
	}
	if len(found) == 0 {
		return rows, 0, nil
	}
	kept := rows[:0:0]
	for _, p := range rows {
		if p.resent && found[p.row.id.String()] {
			s.window(p.msg.Partition).add(p.row.id)
			continue
		}
		kept = append(kept, p)
	}
	return kept, len(rows) - len(kept), nil
}

// LookupChunk is the most ids StoredIDs sends in one query. The ids are
// part of the query text (about 40 bytes each), which ClickHouse limits to
// max_query_size (256 KiB by default): 2000 ids take about 80 KB.
const LookupChunk = 2000

// StoredIDs returns which of ids (canonical UUID strings of records of
// tenants with timestamps from fromMS to toMS, inclusive, in Unix ms) the
// raw table holds. Any number of ids may be given: they are looked up
// LookupChunk at a time.
func StoredIDs(ctx context.Context, conn driver.Conn, tenants []string, fromMS, toMS int64, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for chunk := range slices.Chunk(ids, LookupChunk) {
		if err := storedIDs(ctx, conn, tenants, fromMS, toMS, chunk, out); err != nil {
			return nil, fmt.Errorf("look up resent records: %w", err)
		}
	}
	return out, nil
}

// storedIDs is one query of StoredIDs; it adds the ids found to out.
func storedIDs(ctx context.Context, conn driver.Conn, tenants []string, fromMS, toMS int64, ids []string, out map[string]bool) error {
	rows, err := conn.Query(ctx, `SELECT DISTINCT toString(id) FROM `+schema.TableCalls+
		` WHERE tenant IN ? AND ts >= fromUnixTimestamp64Milli(?, 'UTC') AND ts <= fromUnixTimestamp64Milli(?, 'UTC')`+
		` AND toString(id) IN ?`, tenants, fromMS, toMS, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		out[id] = true
	}
	return rows.Err()
}

// window returns the recent-id window of a partition.
func (s *Sink) window(partition int) *idWindow {
	w, ok := s.seen[partition]
	if !ok {
		w = newIDWindow(DedupWindow)
		s.seen[partition] = w
	}
	return w
}

// warmWindow fills partition's id window with the ids of the latest
// records stored from it (at most DedupWindow, from committed-DedupWindow
// on, with timestamps of the last day so that only recent parts are read).
// On error the window starts empty, as it did before: duplicates are
// still dropped from then on, and resent ones by dropStoredResent.
func (s *Sink) warmWindow(ctx context.Context, partition int, committed int64) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	rows, err := s.conn.Query(ctx, `SELECT id FROM `+schema.TableCalls+
		` WHERE ts >= now() - INTERVAL 1 DAY AND kafka_topic = ? AND kafka_partition = ? AND kafka_offset >= ?`+
		` ORDER BY kafka_offset DESC LIMIT ?`, s.cfg.Topic, int32(partition), max(0, committed-DedupWindow), DedupWindow)
	if err != nil {
		s.log.Warn("sink: read the stored ids of a partition; its duplicate window starts empty", "partition", partition, "err", err)
		return
	}
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			s.log.Warn("sink: read the stored ids of a partition", "partition", partition, "err", err)
			return
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		s.log.Warn("sink: read the stored ids of a partition", "partition", partition, "err", err)
		return
	}
	w := s.window(partition)
	for _, id := range slices.Backward(ids) { // oldest first, as they were added
		w.add(id)
	}
	s.log.Debug("sink: duplicate window read from ClickHouse", "partition", partition, "ids", len(ids), "took", time.Since(start))
}

// DedupWindow is how many of a partition's latest record ids a sink
// remembers to drop producer-side duplicates (~2 MB per partition).
const DedupWindow = 50_000

// idWindow remembers the last n ids added.
type idWindow struct {
	ids  map[uuid.UUID]struct{}
	ring []uuid.UUID
	next int
}

func newIDWindow(n int) *idWindow {
	return &idWindow{ids: make(map[uuid.UUID]struct{}, n), ring: make([]uuid.UUID, 0, n)}
}

func (w *idWindow) has(id uuid.UUID) bool {
	_, ok := w.ids[id]
	return ok
}

func (w *idWindow) add(id uuid.UUID) {
	if w.has(id) {
		return
	}
	if len(w.ring) < cap(w.ring) {
		w.ring = append(w.ring, id)
	} else {
		delete(w.ids, w.ring[w.next])
		w.ring[w.next] = id
		w.next = (w.next + 1) % len(w.ring)
	}
	w.ids[id] = struct{}{}
}

// insert writes rows in one batch with token (see flush) and, once
// accepted, raises the stored marks.
func (s *Sink) insert(ctx context.Context, rows []*pending, token string) error {
	if len(rows) == 0 {
		return nil
	}
	var err error
	if s.native != nil {
		s.rowPtrs = s.rowPtrs[:0]
		for _, p := range rows {
			s.rowPtrs = append(s.rowPtrs, &p.row)
		}
		err = s.native.insert(ctx, s.rowPtrs, token)
		clear(s.rowPtrs) // do not keep the batch's records alive
	} else {
		recs := make([]Row, len(rows))
		for i := range rows {
			recs[i] = rows[i].row
		}
		err = InsertRowsToken(ctx, s.conn, recs, token)
	}
	if err != nil {
		s.m.insertErrors.Inc()
		return err
	}
	for _, p := range rows {
		if p.msg.Offset > s.stored[p.msg.Partition] {
			s.stored[p.msg.Partition] = p.msg.Offset
		}
		s.window(p.msg.Partition).add(p.row.id)
	}
	return nil
}

// InsertRows inserts rows into the raw table with one batch, column by
// column, under a fresh deduplication token. It is exported for the
// benchmark that compares the pipeline with a bare clickhouse-go insert of
// the same rows, and for tests.
func InsertRows(ctx context.Context, conn driver.Conn, rows []Row) error {
	return InsertRowsToken(ctx, conn, rows, "gateflow-"+uuid.NewString())
}

// InsertRowsToken is InsertRows with the insert_deduplication_token given:
// inserting the same rows again with the same token adds nothing to a
// table that took them, and adds them to one that missed them (the
// migrations turn deduplication on for every table an insert reaches). A
// token is always set, because without one ClickHouse deduplicates by
// content, and two distinct inserts can give identical rollup blocks.
func InsertRowsToken(ctx context.Context, conn driver.Conn, rows []Row, token string) error {
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplicate":                                 1,
		"insert_deduplication_token":                         token,
		"deduplicate_blocks_in_dependent_materialized_views": 1,
		// On a cluster calls is a Distributed table: insert into the
		// shards before answering (the default queues the rows on the
		// node and sends them later, after the Kafka offsets would be
		// committed). Without effect on a single server's MergeTree.
		"distributed_foreground_insert": 1,
	}))
	batch, err := conn.PrepareBatch(ctx, InsertSQL)
	if err != nil {
		return fmt.Errorf("prepare insert: %w", err)
	}
	defer batch.Close()
	for i, c := range rawColumns {
		if err := batch.Column(i).Append(c.values(rows)); err != nil {
			return fmt.Errorf("insert column %s: %w", c.name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d rows: %w", len(rows), err)
	}
	return nil
}

// deadLetter writes undecodable messages to the dead-letter topic with the
// reason and origin in headers.
func (s *Sink) deadLetter(ctx context.Context, dlq *kafka.Writer, dead []*pending) error {
	msgs := make([]kafka.Message, len(dead))
	for i, p := range dead {
		msgs[i] = kafka.Message{
			Key:   p.msg.Key,
			Value: p.msg.Value,
			Headers: []kafka.Header{
				{Key: HeaderError, Value: []byte(record.Truncate(p.reason, 1024))},
				{Key: "gateflow-origin", Value: fmt.Appendf(nil, "%s/%d/%d", p.msg.Topic, p.msg.Partition, p.msg.Offset)},
			},
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := dlq.WriteMessages(wctx, msgs...); err != nil {
		return fmt.Errorf("write %d messages to %s: %w", len(msgs), s.cfg.DLQTopic, err)
	}
	s.m.deadLettered.Add(float64(len(msgs)))
	for _, p := range dead {
		s.log.Warn("sink: record sent to the dead-letter topic", "topic", s.cfg.DLQTopic,
			"partition", p.msg.Partition, "offset", p.msg.Offset, "reason", p.reason)
	}
	return nil
}

// commit commits, in the batch's generation, the offset after the last
// message of every partition in the batch. A failed commit (the generation
// ended, the broker is away) is not fatal: the messages come again and are
// skipped as already stored.
func (s *Sink) commit(gen *kafka.Generation, batch []pending) {
	next := map[int]int64{}
	for _, p := range batch {
		next[p.msg.Partition] = max(next[p.msg.Partition], p.msg.Offset+1)
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{s.cfg.Topic: next}); err != nil {
		s.m.commitErrors.Inc()
		s.log.Warn("sink: offset commit failed; the batch will be redelivered and skipped", "err", err)
		return
	}
	s.m.committed.Add(float64(len(batch)))
}

// retry runs fn until it succeeds or ctx ends, backing off exponentially
// between attempts (schema migrations: each attempt bounded by a minute).
func (s *Sink) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	return s.retryLoop(ctx, nil, nil, what, time.Minute, fn)
}

// genGrace is how long a batch whose insert may have been applied in part
// keeps being retried after its generation ended: the group waits for this
// sink (up to rebalanceTimeout) before another sink reads the stored marks,
// so completing the insert first keeps the rollups whole.
const genGrace = 20 * time.Second

// retryBatch is retry for a batch: each attempt is bounded by storeTimeout,
// and once the generation ends it stops with errRebalanced — at once while
// hold reports false, after genGrace while it reports true.
func (s *Sink) retryBatch(ctx, gctx context.Context, hold func() bool, fn func(context.Context) error) error {
	return s.retryLoop(ctx, gctx, hold, "store call records", storeTimeout, fn)
}

func (s *Sink) retryLoop(ctx, gctx context.Context, hold func() bool, what string, timeout time.Duration, fn func(context.Context) error) error {
	var genDone <-chan struct{}
	if gctx != nil {
		genDone = gctx.Done()
	}
	var graceEnd time.Time // set when the generation ended while holding
	stop := func() bool {
		if genDone == nil || gctx.Err() == nil {
			return false
		}
		if hold == nil || !hold() {
			return true
		}
		if graceEnd.IsZero() {
			graceEnd = time.Now().Add(genGrace)
			genDone = nil // wait out the grace with backoffs, not the channel
		}
		return time.Now().After(graceEnd)
	}
	backoff := s.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		if stop() {
			if !graceEnd.IsZero() {
				s.log.Warn("sink: giving up a batch whose insert may be applied in part: the generation ended " +
					"and ClickHouse did not take the retry in time; the partition's next owner re-sends it")
			}
			return errRebalanced
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		if !graceEnd.IsZero() {
			actx, cancel = context.WithDeadline(ctx, graceEnd)
		}
		err := fn(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				s.log.Info("sink: recovered", "op", what, "attempts", attempt)
			}
			return nil
		}
		if errors.Is(err, errRebalanced) || ctx.Err() != nil {
			return err
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Warn("sink: retrying", "op", what, "attempt", attempt, "backoff", backoff, "err", err)
		}
		s.m.retries.Inc()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-genDone:
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.cfg.RetryMax)
	}
}

// batchToken is the insert_deduplication_token of a batch: the same rows
// give the same token (a retry), other rows another one. Each row counts
// with its record id as well as its offset: offsets alone repeat when the
// topic is deleted and created again (see refreshStale), and a repeated
// token within the deduplication window would make ClickHouse drop the new
// rows silently as a duplicate insert.
func batchToken(group string, rows []*pending) string {
	h := sha256.New()
	h.Write([]byte(group))
	var b [28]byte
	for _, p := range rows {
		binary.BigEndian.PutUint32(b[:4], uint32(p.msg.Partition))
		binary.BigEndian.PutUint64(b[4:12], uint64(p.msg.Offset))
		copy(b[12:], p.row.id[:])
		h.Write([]byte(p.msg.Topic))
		h.Write(b[:])
	}
	return "gateflow-sink-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Check reports whether Kafka and ClickHouse answer, by name, for readiness
// probes. A nil error means reachable.
func Check(ctx context.Context, dialer *kafka.Dialer, brokers []string, conn driver.Conn) map[string]error {
	out := map[string]error{"clickhouse": nil, "kafka": nil}
	if err := conn.Ping(ctx); err != nil {
		out["clickhouse"] = err
	}
	if dialer == nil {
		dialer = &kafka.Dialer{Timeout: 5 * time.Second}
	}
	var kerr error
	for _, b := range brokers {
		c, err := dialer.DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = c.Brokers()
			_ = c.Close()
		}
		if err == nil {
			kerr = nil
			break
		}
		kerr = err
	}
	out["kafka"] = kerr
	return out
}
