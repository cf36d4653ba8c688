-- Gateway calls (kind 'proxy', docs/PROXY.md): the fields of proxy call
-- records as columns of the raw table (empty or 0 for other kinds; ADD
-- COLUMN is a metadata change, old parts read the defaults), and rollups by
-- tenant (the API owner), API, version, consumer and upstream instance per
-- minute, hour and day, so that analytics group gateway traffic by those
-- dimensions without reading raw rows. Cascade and t-digest as in 0003;
-- cache_hits counts hits and revalidations (answers served from the
-- cache), cache_misses answers fetched and cacheable-looking (miss).
ALTER TABLE calls ADD COLUMN IF NOT EXISTS api LowCardinality(String) DEFAULT '' AFTER error_message;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS consumer LowCardinality(String) DEFAULT '' AFTER api;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS upstream LowCardinality(String) DEFAULT '' AFTER consumer;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS method LowCardinality(String) DEFAULT '' AFTER upstream;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS route String DEFAULT '' CODEC(ZSTD(3)) AFTER method;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS upstream_latency_ms Float64 DEFAULT 0 AFTER route;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS cache_status LowCardinality(String) DEFAULT '' AFTER upstream_latency_ms;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS retries Int32 DEFAULT 0 AFTER cache_status;

CREATE TABLE IF NOT EXISTS proxy_1m
(
    minute         DateTime('UTC'),
    tenant         LowCardinality(String),
    api            LowCardinality(String),
    version        LowCardinality(String),
    consumer       LowCardinality(String),
    upstream       LowCardinality(String),
    calls          SimpleAggregateFunction(sum, UInt64),
    errors         SimpleAggregateFunction(sum, UInt64),
    timeouts       SimpleAggregateFunction(sum, UInt64),
    request_bytes  SimpleAggregateFunction(sum, Int64),
    response_bytes SimpleAggregateFunction(sum, Int64),
    latency_sum    SimpleAggregateFunction(sum, Float64),
    latency_max    SimpleAggregateFunction(max, Float64),
    latency_q      AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64),
    upstream_latency_sum SimpleAggregateFunction(sum, Float64),
    cache_hits     SimpleAggregateFunction(sum, UInt64),
    cache_misses   SimpleAggregateFunction(sum, UInt64),
    retries        SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, api, version, consumer, upstream);

CREATE TABLE IF NOT EXISTS proxy_1h
(
    hour           DateTime('UTC'),
    tenant         LowCardinality(String),
    api            LowCardinality(String),
    version        LowCardinality(String),
    consumer       LowCardinality(String),
    upstream       LowCardinality(String),
    calls          SimpleAggregateFunction(sum, UInt64),
    errors         SimpleAggregateFunction(sum, UInt64),
    timeouts       SimpleAggregateFunction(sum, UInt64),
    request_bytes  SimpleAggregateFunction(sum, Int64),
    response_bytes SimpleAggregateFunction(sum, Int64),
    latency_sum    SimpleAggregateFunction(sum, Float64),
    latency_max    SimpleAggregateFunction(max, Float64),
    latency_q      AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64),
    upstream_latency_sum SimpleAggregateFunction(sum, Float64),
    cache_hits     SimpleAggregateFunction(sum, UInt64),
    cache_misses   SimpleAggregateFunction(sum, UInt64),
    retries        SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(hour)
ORDER BY (tenant, hour, api, version, consumer, upstream);

CREATE TABLE IF NOT EXISTS proxy_1d
(
    day            DateTime('UTC'),
    tenant         LowCardinality(String),
    api            LowCardinality(String),
    version        LowCardinality(String),
    consumer       LowCardinality(String),
    upstream       LowCardinality(String),
    calls          SimpleAggregateFunction(sum, UInt64),
    errors         SimpleAggregateFunction(sum, UInt64),
    timeouts       SimpleAggregateFunction(sum, UInt64),
    request_bytes  SimpleAggregateFunction(sum, Int64),
    response_bytes SimpleAggregateFunction(sum, Int64),
    latency_sum    SimpleAggregateFunction(sum, Float64),
    latency_max    SimpleAggregateFunction(max, Float64),
    latency_q      AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64),
    upstream_latency_sum SimpleAggregateFunction(sum, Float64),
    cache_hits     SimpleAggregateFunction(sum, UInt64),
    cache_misses   SimpleAggregateFunction(sum, UInt64),
    retries        SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
ORDER BY (tenant, day, api, version, consumer, upstream);

-- Views from the coarsest level down, as in 0003.
CREATE MATERIALIZED VIEW IF NOT EXISTS proxy_1d_mv TO proxy_1d AS
SELECT
    toStartOfDay(hour) AS day,
    tenant, api, version, consumer, upstream,
    sum(calls)                AS calls,
    sum(errors)               AS errors,
    sum(timeouts)             AS timeouts,
    sum(request_bytes)        AS request_bytes,
    sum(response_bytes)       AS response_bytes,
    sum(latency_sum)          AS latency_sum,
    max(latency_max)          AS latency_max,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q) AS latency_q,
    sum(upstream_latency_sum) AS upstream_latency_sum,
    sum(cache_hits)           AS cache_hits,
    sum(cache_misses)         AS cache_misses,
    sum(retries)              AS retries
FROM proxy_1h
GROUP BY day, tenant, api, version, consumer, upstream;

CREATE MATERIALIZED VIEW IF NOT EXISTS proxy_1h_mv TO proxy_1h AS
SELECT
    toStartOfHour(minute) AS hour,
    tenant, api, version, consumer, upstream,
    sum(calls)                AS calls,
    sum(errors)               AS errors,
    sum(timeouts)             AS timeouts,
    sum(request_bytes)        AS request_bytes,
    sum(response_bytes)       AS response_bytes,
    sum(latency_sum)          AS latency_sum,
    max(latency_max)          AS latency_max,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q) AS latency_q,
    sum(upstream_latency_sum) AS upstream_latency_sum,
    sum(cache_hits)           AS cache_hits,
    sum(cache_misses)         AS cache_misses,
    sum(retries)              AS retries
FROM proxy_1m
GROUP BY hour, tenant, api, version, consumer, upstream;

CREATE MATERIALIZED VIEW IF NOT EXISTS proxy_1m_mv TO proxy_1m AS
SELECT
    toStartOfMinute(ts)          AS minute,
    tenant, api, version, consumer, upstream,
    count()                      AS calls,
    countIf(outcome != 'ok')     AS errors,
    countIf(outcome = 'timeout') AS timeouts,
    sum(request_bytes)           AS request_bytes,
    sum(response_bytes)          AS response_bytes,
    sum(latency_ms)              AS latency_sum,
    max(latency_ms)              AS latency_max,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms) AS latency_q,
    sum(upstream_latency_ms)     AS upstream_latency_sum,
    countIf(cache_status IN ('hit', 'revalidated')) AS cache_hits,
    countIf(cache_status = 'miss') AS cache_misses,
    sum(toInt64(retries))        AS retries
FROM calls
WHERE kind = 'proxy'
GROUP BY minute, tenant, api, version, consumer, upstream;
