-- The batches the sinks stored, per Kafka partition: the insert's
-- insert_deduplication_token and the offsets, row count and timestamps of
-- its rows from that partition. A materialized view on calls writes them in
-- the same insert as the rows (getSetting reads the insert's token).
--
-- Why: ClickHouse killed mid-insert can commit a batch's raw rows and its
-- offset mark without some rollup's part. The sink retries the same rows
-- with the same token, which completes the rollup, but if the sink dies
-- too before its retry, the partition's next owner sees the rows stored and
-- skips them: the rollup stays short. A batch is in doubt exactly when it is
-- stored beyond the partition's committed Kafka offset (the sink commits
-- after every insert it saw succeed); the next owner finds such batches
-- here, checks that the raw table holds all of their rows, and re-sends
-- those rows from the raw table (INSERT ... SELECT) under the batch's
-- token: every table that has the block deduplicates it, a table that
-- missed it takes it. See analytics/sink (repairInDoubt).
--
-- Rows live a day: a batch is only re-sent while few enough inserts followed
-- it that its token is surely inside every table's deduplication window.
CREATE TABLE IF NOT EXISTS calls_sink_batches
(
    inserted   DateTime,
    topic      LowCardinality(String),
    partition  Int32,
    token      String,
    min_offset Int64,
    max_offset Int64,
    row_count  UInt64,
    min_ts     DateTime64(3, 'UTC'),
    max_ts     DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (topic, partition, max_offset)
TTL inserted + INTERVAL 1 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS calls_sink_batches_mv TO calls_sink_batches AS
SELECT
    now()                                   AS inserted,
    kafka_topic                             AS topic,
    kafka_partition                         AS partition,
    getSetting('insert_deduplication_token') AS token,
    min(kafka_offset)                       AS min_offset,
    max(kafka_offset)                       AS max_offset,
    count()                                 AS row_count,
    min(ts)                                 AS min_ts,
    max(ts)                                 AS max_ts
FROM calls
GROUP BY topic, partition;
