package sink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"

	"github.com/gateflow/gateflow/analytics/schema"
)

// Bounds of the re-sending of in-doubt batches (repairInDoubt).
const (
	// resendLookback bounds how far back in-doubt batches are looked for
	// (the batches table keeps a day).
	resendLookback = 24 * time.Hour
	// resendWindowBatches is how many inserts may have followed an
	// in-doubt batch for it still to be re-sent. A re-send is only
	// harmless while the batch's token is inside every table's
	// deduplication window (1000 blocks, migration 0009), and an insert
	// adds at most a few blocks to a table (one per day or month its rows
	// span): 300 inserts leave a wide margin. Counting inserts rather
	// than time keeps a batch re-sendable however long ClickHouse was
	// away, since nothing was inserted meanwhile.
	resendWindowBatches = 300
	// resendMax bounds the batches re-sent for one assignment (after a
	// long run of failed offset commits every stored batch since the last
	// commit is in doubt; each re-send is then a deduplicated no-op).
	resendMax = 50
	// repairTimeout bounds one attempt of a step of the repair.
	repairTimeout = 30 * time.Second
)

// repairInDoubt re-sends the batches stored beyond the committed offsets
// of the assigned partitions, before this sink consumes them.
//
// The sink commits a partition's offsets after every insert ClickHouse
// accepted, so a batch stored beyond the committed offset is one whose
// sink died (or lost its generation) between sending the insert and the
// commit: the insert may have been applied in part (ClickHouse killed
// mid-insert commits the raw part and the offset mark but not, say, a
// rollup's part). The messages' offsets are at or below the stored mark, so
// consuming them again stores nothing; what completes the batch is the
// same block under the same token, which every table that has it drops and
// every table that missed it takes. Its rows are in the raw table (checked
// against the batch's row count), so they are re-sent from there, server
// side, as one block (see resend).
//
// Not on a cluster: a Distributed insert splits the block by shard, and
// whether a re-send gets the same per-shard tokens is untested (libchdb
// cannot run replicated tables); there a compound fault can still leave a
// rollup short, as docs/ANALYTICS.md says.
func (s *Sink) repairInDoubt(ctx, gctx context.Context, assigned []kafka.PartitionAssignment) {
	if s.cfg.Cluster.Enabled() || len(assigned) == 0 {
		return
	}
	// ClickHouse may still be down (the fault that leaves a batch in
	// doubt is its crash): retry until it answers. If the generation ends
	// first, the next one looks again (nothing was committed meanwhile).
	var tokens []inDoubtBatch
	if err := s.retryLoop(ctx, gctx, nil, "find batches in doubt", repairTimeout, func(actx context.Context) (err error) {
		tokens, err = s.inDoubt(actx, assigned)
		return err
	}); err != nil {
		return
	}
	if len(tokens) > resendMax {
		s.log.Warn("sink: more batches in doubt than are re-sent; the oldest are left", "found", len(tokens), "resent", resendMax)
		tokens = tokens[len(tokens)-resendMax:]
	}
	for _, b := range tokens {
		start := time.Now()
		var n uint64
		var cannot error
		err := s.retryLoop(ctx, gctx, nil, "re-send a batch in doubt", repairTimeout, func(actx context.Context) (err error) {
			n, err = s.resendIfInWindow(actx, b)
			if errors.Is(err, errCannotResend) {
				cannot, err = err, nil
			}
			return err
		})
		if err != nil {
			return
		}
		if cannot != nil {
			s.m.resendFailures.Inc()
			s.log.Error("sink: cannot re-send a batch in doubt; a rollup may miss some of its rows", "token", b.token, "err", cannot)
			continue
		}
		s.m.resent.Inc()
		s.log.Info("sink: re-sent a batch stored beyond the committed offsets (in doubt after a crash)",
			"token", b.token, "rows", n, "took", time.Since(start))
	}
}

// inDoubtBatch is a batch stored beyond a committed offset: its token and
// when it was stored (Unix seconds).
type inDoubtBatch struct {
	token string
	at    uint32
}

// resendIfInWindow re-sends b unless so many inserts followed it that its
// token may have left a table's deduplication window.
func (s *Sink) resendIfInWindow(ctx context.Context, b inDoubtBatch) (uint64, error) {
	var since uint64
	if err := s.conn.QueryRow(ctx, `SELECT uniqExact(token) FROM `+schema.TableSinkBatches+
		` WHERE toUnixTimestamp(inserted) >= ?`, b.at).Scan(&since); err != nil {
		return 0, fmt.Errorf("count the inserts since the batch: %w", err)
	}
	// since counts the batch itself and others of the same second.
	if since > resendWindowBatches {
		return 0, fmt.Errorf("%w: %d inserts since it, beyond the %d whose tokens are surely still deduplicated",
			errCannotResend, since-1, resendWindowBatches)
	}
	return s.resend(ctx, b.token)
}

// errCannotResend: the raw table does not hold exactly the batch's rows.
var errCannotResend = errors.New("cannot re-send the batch")

// inDoubt returns the tokens of the recent batches stored beyond the
// committed offsets of the assigned partitions, oldest first.
func (s *Sink) inDoubt(ctx context.Context, assigned []kafka.PartitionAssignment) ([]inDoubtBatch, error) {
	committed := map[int32]int64{}
	for _, a := range assigned {
		// No committed offset yet: the group's start offset (negative).
		committed[int32(a.ID)] = max(a.Offset, 0)
	}
	parts := slices.Sorted(maps.Keys(committed))
	marks, err := StoredOffsets(ctx, s.conn, s.cfg.Topic, parts)
	if err != nil {
		return nil, err
	}
	var cond []string
	args := []any{s.cfg.Topic, int64(resendLookback / time.Second)}
	for _, p := range parts {
		if m, ok := marks[p]; ok && m >= committed[p] {
			cond = append(cond, "(partition = ? AND max_offset >= ?)")
			args = append(args, p, committed[p])
		}
	}
	if len(cond) == 0 {
		return nil, nil
	}
	return s.inDoubtTokens(ctx, strings.Join(cond, " OR "), args)
}

// inDoubtTokens returns the recent batches matching cond (over
// calls_sink_batches), oldest first.
func (s *Sink) inDoubtTokens(ctx context.Context, cond string, args []any) ([]inDoubtBatch, error) {
	rows, err := s.conn.Query(ctx, `SELECT token, toUnixTimestamp(min(inserted)) AS at FROM `+schema.TableSinkBatches+
		` WHERE topic = ? AND token != '' AND inserted >= now() - toIntervalSecond(?) AND (`+cond+`)`+
		` GROUP BY token ORDER BY at, min(min_offset)`, args...)
	if err != nil {
		return nil, fmt.Errorf("list batches in doubt: %w", err)
	}
	defer rows.Close()
	var out []inDoubtBatch
	for rows.Next() {
		var b inDoubtBatch
		if err := rows.Scan(&b.token, &b.at); err != nil {
			return nil, fmt.Errorf("list batches in doubt: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// resend inserts the raw rows of the batch stored under token again, from
// the raw table, under the same token, and returns how many rows it sent.
// ClickHouse derives every table's block id from the token (the views'
// from the token and the view), not from the rows' order, so the rows need
// only be the same rows in one block: the sort makes the SELECT produce a
// single chunk and the insert settings keep it one block.
func (s *Sink) resend(ctx context.Context, token string) (uint64, error) {
	where, args, want, err := s.batchRows(ctx, token)
	if err != nil {
		return 0, err
	}
	var have uint64
	if err := s.conn.QueryRow(ctx, `SELECT count() FROM `+schema.TableCalls+` WHERE `+where, args...).Scan(&have); err != nil {
		return 0, fmt.Errorf("count the batch's raw rows: %w", err)
	}
	if have != want {
		// Fewer: the raw part is missing (what was stored cannot be told
		// apart); more: rows of another insert in the range. Either way
		// the block would not be the batch's.
		return 0, fmt.Errorf("%w: the raw table holds %d of its %d rows", errCannotResend, have, want)
	}
	block := int64(want) + 1
	ictx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplicate":                                 1,
		"insert_deduplication_token":                         token,
		"deduplicate_blocks_in_dependent_materialized_views": 1,
		"max_threads":                                        1,
		"max_insert_threads":                                 1,
		"optimize_read_in_order":                             0,
		"max_block_size":                                     block,
		"max_insert_block_size":                              block,
		"min_insert_block_size_rows":                         block,
		"min_insert_block_size_bytes":                        int64(1) << 40,
	}))
	q := `INSERT INTO ` + schema.TableCalls + ` (` + columnList + `) SELECT ` + columnList +
		` FROM ` + schema.TableCalls + ` WHERE ` + where + ` ORDER BY kafka_partition, kafka_offset`
	if err := s.conn.Exec(ictx, q, args...); err != nil {
		return 0, fmt.Errorf("re-send %d rows: %w", want, err)
	}
	return want, nil
}

// batchRows returns the WHERE clause (and its arguments) selecting the raw
// rows of the batch stored under token, and how many rows it stored.
func (s *Sink) batchRows(ctx context.Context, token string) (where string, args []any, n uint64, err error) {
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT partition, min_offset, max_offset, row_count,
		toUnixTimestamp64Milli(min_ts), toUnixTimestamp64Milli(max_ts)
		FROM `+schema.TableSinkBatches+` WHERE topic = ? AND token = ? ORDER BY partition`, s.cfg.Topic, token)
	if err != nil {
		return "", nil, 0, fmt.Errorf("read the batch's partitions: %w", err)
	}
	defer rows.Close()
	var ranges []string
	var rangeArgs []any
	minTS, maxTS := int64(0), int64(0)
	for rows.Next() {
		var p int32
		var lo, hi, from, to int64
		var c uint64
		if err := rows.Scan(&p, &lo, &hi, &c, &from, &to); err != nil {
			return "", nil, 0, fmt.Errorf("read the batch's partitions: %w", err)
		}
		if len(ranges) == 0 || from < minTS {
			minTS = from
		}
		maxTS = max(maxTS, to)
		ranges = append(ranges, "(kafka_partition = ? AND kafka_offset BETWEEN ? AND ?)")
		rangeArgs = append(rangeArgs, p, lo, hi)
		n += c
	}
	if err := rows.Err(); err != nil {
		return "", nil, 0, fmt.Errorf("read the batch's partitions: %w", err)
	}
	if len(ranges) == 0 {
		return "", nil, 0, fmt.Errorf("%w: no partitions recorded for it", errCannotResend)
	}
	where = `kafka_topic = ? AND ts >= fromUnixTimestamp64Milli(?, 'UTC') AND ts <= fromUnixTimestamp64Milli(?, 'UTC') AND (` +
		strings.Join(ranges, " OR ") + `)`
	return where, append([]any{s.cfg.Topic, minTS, maxTS}, rangeArgs...), n, nil
}
