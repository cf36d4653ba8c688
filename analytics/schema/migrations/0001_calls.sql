-- Raw call records: one row per call record (see docs/ANALYTICS.md).
-- ReplacingMergeTree on the full sorting key, which ends with the record id:
-- a record stored twice (a producer-side duplicate) collapses when parts
-- merge; queries that must be exact before that use FINAL.
-- kafka_topic/kafka_partition/kafka_offset say where the row came from; the
-- sink uses them to skip redelivered messages.
--
-- Sorting key (tenant, ts, id): every query names one tenant and a time
-- range, and raw reads are narrow in time (the partial minutes at the edges
-- of a rollup query, recent errors, one orchestration), so a tenant's calls
-- of a time range are contiguous. One orchestration's calls are found
-- through the bloom filter on workflow_id.
--
-- Daily partitions with ttl_only_drop_parts: the TTL (90 days by default,
-- `gateflow sink --raw-ttl-days`) drops whole expired days instead of
-- rewriting parts row by row.
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
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX workflow_idx workflow_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toDate(ts)
ORDER BY (tenant, ts, id)
TTL toDateTime(ts) + toIntervalDay(90)
SETTINGS ttl_only_drop_parts = 1;
