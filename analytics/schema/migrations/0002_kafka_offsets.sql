-- Highest Kafka offset stored per topic partition, kept by a materialized
-- view on every insert into calls. The sink reads it when a partition is
-- (re)assigned and before retrying an insert, and skips messages at or below
-- it, so a redelivered message never reaches calls nor the rollups.
-- Rows here are not subject to the raw TTL.
CREATE TABLE IF NOT EXISTS calls_kafka_offsets
(
    topic      LowCardinality(String),
    partition  Int32,
    max_offset SimpleAggregateFunction(max, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (topic, partition);

CREATE MATERIALIZED VIEW IF NOT EXISTS calls_kafka_offsets_mv TO calls_kafka_offsets AS
SELECT
    kafka_topic       AS topic,
    kafka_partition   AS partition,
    max(kafka_offset) AS max_offset
FROM calls
GROUP BY topic, partition;
