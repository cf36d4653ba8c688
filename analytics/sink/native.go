package sink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"
)

// nativeInserter inserts the sink's batches over a ch-go connection of its
// own, with the typed columns of rawColumns. clickhouse-go appends every
// LowCardinality value through interface{} and reflection (a third of the
// sink's CPU); ch-go's generic columns do not. Reads (stored offsets, ids)
// stay on the clickhouse-go connection.
//
// One connection, used by one batch at a time (the sink inserts
// sequentially); it is dropped after any error and dialled again on the
// next attempt, so a ClickHouse restart costs one failed attempt.
type nativeInserter struct {
	opts  ch.Options
	addrs []string
	conn  *ch.Client

	body    string
	input   proto.Input
	appends []func(*Row)
}

// newNativeInserter takes the options the sink's clickhouse-go connection
// was opened with (address, database, credentials, TLS, compression).
func newNativeInserter(o *clickhouse.Options) (*nativeInserter, error) {
	if o == nil || len(o.Addr) == 0 {
		return nil, errors.New("sink: ClickHouse options without an address")
	}
	opts := ch.Options{
		Database:    o.Auth.Database,
		User:        o.Auth.Username,
		Password:    o.Auth.Password,
		TLS:         o.TLS,
		DialTimeout: o.DialTimeout,
		// Each attempt is bounded by its context (storeTimeout); a 50k-row
		// insert through the rollup views can take seconds to answer.
		ReadTimeout: storeTimeout,
		ClientName:  "gateflow-sink",
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if c := o.Compression; c != nil {
		switch c.Method {
		case clickhouse.CompressionLZ4:
			opts.Compression = ch.CompressionLZ4
		case clickhouse.CompressionZSTD:
			opts.Compression = ch.CompressionZSTD
		case clickhouse.CompressionNone:
		default:
			return nil, fmt.Errorf("sink: ClickHouse compression %s: the sink's inserts support lz4 and zstd", c.Method)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Settings)) {
		opts.Settings = append(opts.Settings, ch.Setting{Key: k, Value: fmt.Sprint(o.Settings[k])})
	}
	n := &nativeInserter{opts: opts, addrs: slices.Clone(o.Addr), body: InsertSQL + " VALUES"}
	for _, c := range rawColumns {
		col, add := c.typed()
		n.input = append(n.input, proto.InputColumn{Name: c.name, Data: col})
		n.appends = append(n.appends, add)
	}
	return n, nil
}

// insert sends rows as one block under the deduplication token (see
// InsertRowsToken for the settings).
func (n *nativeInserter) insert(ctx context.Context, rows []*Row, token string) error {
	if n.conn == nil || n.conn.IsClosed() {
		if err := n.dial(ctx); err != nil {
			return err
		}
	}
	n.input.Reset()
	for _, r := range rows {
		for _, add := range n.appends {
			add(r)
		}
	}
	err := n.conn.Do(ctx, ch.Query{
		Body:  n.body,
		Input: n.input,
		Settings: []ch.Setting{
			ch.SettingInt("insert_deduplicate", 1),
			{Key: "insert_deduplication_token", Value: token, Important: true},
			ch.SettingInt("deduplicate_blocks_in_dependent_materialized_views", 1),
			// As InsertRowsToken: on a cluster, stored on the shards
			// before the offsets are committed.
			ch.SettingInt("distributed_foreground_insert", 1),
		},
	})
	n.input.Reset()
	if err != nil {
		n.close()
		return fmt.Errorf("insert %d rows: %w", len(rows), err)
	}
	return nil
}

func (n *nativeInserter) dial(ctx context.Context) error {
	var errs []error
	for _, addr := range n.addrs {
		opts := n.opts
		opts.Address = addr
		c, err := ch.Dial(ctx, opts)
		if err == nil {
			n.conn = c
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("connect to ClickHouse for inserts: %w", errors.Join(errs...))
}

func (n *nativeInserter) close() {
	if n.conn != nil {
		_ = n.conn.Close()
		n.conn = nil
	}
}
