-- Raw call records: one row per call record (see docs/ANALYTICS.md).
-- ReplacingMergeTree on the full sorting key, which ends with the record id:
-- a record stored twice (a producer-side duplicate) collapses when parts
-- merge; queries that must be exact before that use FINAL.
-- kafka_topic/kafka_partition/kafka_offset say where the row came from; the
-- sink uses them to skip redelivered messages.
CREATE TABLE IF NOT EXISTS calls
(
    id              UUID,
    ts              DateTime64(3, 'UTC'),
    tenant          LowCardinality(String),
    key_id          LowCardinality(String),
    kind            LowCardinality(String),
    target          LowCardinality(String),
    workflow_id     String,
    run_id          String,
    definition      LowCardinality(String),
    version         LowCardinality(String),
    step_id         LowCardinality(String),
    attempt         Int32,
    status_code     Int32,
    outcome         LowCardinality(String),
    latency_ms      Float64,
    request_bytes   Int64,
    response_bytes  Int64,
    tokens_in       Int64,
    tokens_out      Int64,
    cost_usd        Float64,
    error_class     LowCardinality(String),
    error_message   String CODEC(ZSTD(3)),
    labels          Map(LowCardinality(String), String),
    schema          UInt8,
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, kind, target, ts, id)
TTL toDateTime(ts) + toIntervalDay(90);
