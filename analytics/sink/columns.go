package sink

import (
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/gateflow/gateflow/analytics/record"
	"github.com/gateflow/gateflow/analytics/schema"
)

// rawColumns is the one list of the raw insert's columns: each one's name,
// its typed ch-go column and how its value is read from a Row. Both insert
// paths (the sink's native one and InsertRowsToken's clickhouse-go one)
// are built from it, so a new column is one line here (plus its
// migration, and its field in record.Record with its encoding and
// decoding).
var rawColumns = []rawColumn{
	col("id", func() proto.ColumnOf[uuid.UUID] { return new(proto.ColUUID) }, (*Row).uuid),
	col("ts", newTS, func(r *Row) time.Time { return time.UnixMilli(r.TS).UTC() }),
	lowCard("tenant", func(r *Row) string { return r.Tenant }),
	lowCard("key_id", func(r *Row) string { return r.KeyID }),
	lowCard("kind", func(r *Row) string { return string(r.Kind) }),
	lowCard("target", func(r *Row) string { return r.Target }),
	str("workflow_id", func(r *Row) string { return r.WorkflowID }),
	str("run_id", func(r *Row) string { return r.RunID }),
	lowCard("definition", func(r *Row) string { return r.Definition }),
	lowCard("version", func(r *Row) string { return r.Version }),
	lowCard("step_id", func(r *Row) string { return r.StepID }),
	col("attempt", newInt32, func(r *Row) int32 { return r.Attempt }),
	col("status_code", newInt32, func(r *Row) int32 { return r.StatusCode }),
	lowCard("outcome", func(r *Row) string { return string(r.Outcome) }),
	col("latency_ms", newFloat64, func(r *Row) float64 { return r.LatencyMS }),
	col("request_bytes", newInt64, func(r *Row) int64 { return r.ReqBytes }),
	col("response_bytes", newInt64, func(r *Row) int64 { return r.RespBytes }),
	col("tokens_in", newInt64, func(r *Row) int64 { return r.TokensIn }),
	col("tokens_out", newInt64, func(r *Row) int64 { return r.TokensOut }),
	col("cost_usd", newFloat64, func(r *Row) float64 { return r.CostUSD }),
	lowCard("cache", func(r *Row) string { return r.Cache }),
	col("cost_saved_usd", newFloat64, func(r *Row) float64 { return r.CostSavedUSD }),
	lowCard("error_class", func(r *Row) string { return r.ErrorClass }),
	str("error_message", func(r *Row) string { return r.ErrorMsg }),
	col("labels", newLabels, (*Row).labels),
	col("schema", func() proto.ColumnOf[uint8] { return new(proto.ColUInt8) }, func(r *Row) uint8 { return uint8(r.Schema) }),
	lowCard("kafka_topic", func(r *Row) string { return r.Topic }),
	col("kafka_partition", newInt32, func(r *Row) int32 { return r.Partition }),
	col("kafka_offset", newInt64, func(r *Row) int64 { return r.Offset }),
	lowCard("api", func(r *Row) string { return r.API }),
	lowCard("api_version", func(r *Row) string { return r.APIVersion }),
	lowCard("consumer", func(r *Row) string { return r.Consumer }),
	lowCard("consumer_app", func(r *Row) string { return r.ConsumerApp }),
	lowCard("upstream", func(r *Row) string { return r.Upstream }),
	lowCard("method", func(r *Row) string { return r.Method }),
	str("route", func(r *Row) string { return r.Route }),
	col("upstream_latency_ms", newFloat64, func(r *Row) float64 { return r.UpstreamLatencyMS }),
	lowCard("cache_status", func(r *Row) string { return r.CacheStatus }),
	col("retries", newInt32, func(r *Row) int32 { return r.Retries }),
	str("trace_id", func(r *Row) string { return r.TraceID }),
	str("span_id", func(r *Row) string { return r.SpanID }),
}

// InsertSQL is the raw insert statement (explicit column list), shared
// with the benchmark that compares the pipeline with a bare insert.
var InsertSQL = "INSERT INTO " + schema.TableCalls + " (" + columnList + ")"

// columnList is the raw insert's columns, comma-separated.
var columnList = func() string {
	names := make([]string, len(rawColumns))
	for i, c := range rawColumns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}()

// rawColumn is one column of the raw insert.
type rawColumn struct {
	name string
	// typed returns a new ch-go column and the function appending a row's
	// value to it: no interface boxing, no reflection per value.
	typed func() (proto.ColInput, func(*Row))
	// values returns the column's values of rows as the slice
	// clickhouse-go's batch.Column(i).Append takes.
	values func(rows []Row) any
}

// col describes a column of values of type T.
func col[T any](name string, newCol func() proto.ColumnOf[T], get func(*Row) T) rawColumn {
	return rawColumn{
		name: name,
		typed: func() (proto.ColInput, func(*Row)) {
			c := newCol()
			return c, func(r *Row) { c.Append(get(r)) }
		},
		values: func(rows []Row) any {
			out := make([]T, len(rows))
			for i := range rows {
				out[i] = get(&rows[i])
			}
			return out
		},
	}
}

// lowCard is a LowCardinality(String) column (see lowCardStr).
func lowCard(name string, get func(*Row) string) rawColumn {
	return col(name, func() proto.ColumnOf[string] { return newLowCardStr() }, get)
}

// str is a String column.
func str(name string, get func(*Row) string) rawColumn {
	return col(name, func() proto.ColumnOf[string] { return new(proto.ColStr) }, get)
}

func newInt32() proto.ColumnOf[int32]     { return new(proto.ColInt32) }
func newInt64() proto.ColumnOf[int64]     { return new(proto.ColInt64) }
func newFloat64() proto.ColumnOf[float64] { return new(proto.ColFloat64) }

// newTS is DateTime64(3, 'UTC').
func newTS() proto.ColumnOf[time.Time] {
	return new(proto.ColDateTime64).WithPrecision(proto.PrecisionMilli).WithLocation(time.UTC)
}

// newLabels is Map(LowCardinality(String), String).
func newLabels() proto.ColumnOf[map[string]string] {
	return proto.NewMap[string, string](new(proto.ColStr).LowCardinality(), new(proto.ColStr))
}

// Row is a record with where it came from in Kafka.
type Row struct {
	record.Record
	Topic     string
	Partition int32
	Offset    int64
	// id is Record.ID parsed (the sink has it from validation); zero means
	// parse it when inserting.
	id uuid.UUID
}

func (r *Row) uuid() uuid.UUID {
	if r.id != (uuid.UUID{}) {
		return r.id
	}
	// Rows reaching an insert were validated: the id parses.
	id, _ := uuid.Parse(r.ID)
	return id
}

// noLabels is the labels of rows without any; clickhouse-go only reads it.
var noLabels = map[string]string{}

func (r *Row) labels() map[string]string {
	if r.Labels == nil {
		return noLabels
	}
	return r.Labels
}
