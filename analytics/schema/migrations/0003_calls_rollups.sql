-- Rollups of every call by tenant, kind, target, definition and step, per
-- minute, hour and day (UTC). Sums for counts, errors (outcome != 'ok'),
-- timeouts, tokens, cost and bytes; max latency; a t-digest of latency.
-- Read with sum(...), max(latency_max) and
-- quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q), grouped by any subset of
-- the key: rows of one key are merged in the background, so always
-- aggregate.
--
-- Latency percentiles are t-digests (ClickHouse's epsilon 0.01): a merged
-- digest answers the q-quantile with a value whose rank is within about
-- 2 * 0.01 * q * (1 - q) of q (±0.5 percentage points at p50, ±0.1 at p95,
-- ±0.02 at p99), and states of ~1 KiB. quantilesState (a 8192-value
-- reservoir, up to 64 KiB) was 2-3x slower to merge and less accurate
-- beyond 8192 values; see docs/BENCHMARKS.md.
--
-- Cascade: calls_1m is fed by the raw inserts, calls_1h by the rows written
-- to calls_1m, calls_1d by those written to calls_1h. Each view aggregates
-- the (much smaller) block of the level below, which keeps the insert cost
-- of three rollups close to that of one.
--
-- Sorting keys start with the tenant, then time: every query names one
-- tenant and a time range. No TTL: a rollup row stands for many calls and
-- is kept after the raw records expire. calls_1m costs ~70 bytes per
-- combination and minute (~3 MiB a month for a combination called every
-- minute); monthly partitions let an operator drop old months.
CREATE TABLE IF NOT EXISTS calls_1m
(
    minute         DateTime('UTC'),
    tenant         LowCardinality(String),
    kind           LowCardinality(String),
    target         LowCardinality(String),
    definition     LowCardinality(String),
    step_id        LowCardinality(String),
    calls          SimpleAggregateFunction(sum, UInt64),
    errors         SimpleAggregateFunction(sum, UInt64),
    timeouts       SimpleAggregateFunction(sum, UInt64),
    tokens_in      SimpleAggregateFunction(sum, Int64),
    tokens_out     SimpleAggregateFunction(sum, Int64),
    cost_usd       SimpleAggregateFunction(sum, Float64),
    request_bytes  SimpleAggregateFunction(sum, Int64),
    response_bytes SimpleAggregateFunction(sum, Int64),
    latency_sum    SimpleAggregateFunction(sum, Float64),
    latency_max    SimpleAggregateFunction(max, Float64),
    latency_q      AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, kind, target, definition, step_id);

CREATE TABLE IF NOT EXISTS calls_1h
(
    hour           DateTime('UTC'),
    tenant         LowCardinality(String),
    kind           LowCardinality(String),
    target         LowCardinality(String),
    definition     LowCardinality(String),
    step_id        LowCardinality(String),
    calls          SimpleAggregateFunction(sum, UInt64),
    errors         SimpleAggregateFunction(sum, UInt64),
    timeouts       SimpleAggregateFunction(sum, UInt64),
    tokens_in      SimpleAggregateFunction(sum, Int64),
    tokens_out     SimpleAggregateFunction(sum, Int64),
    cost_usd       SimpleAggregateFunction(sum, Float64),
    request_bytes  SimpleAggregateFunction(sum, Int64),
    response_bytes SimpleAggregateFunction(sum, Int64),
    latency_sum    SimpleAggregateFunction(sum, Float64),
    latency_max    SimpleAggregateFunction(max, Float64),
    latency_q      AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(hour)
ORDER BY (tenant, hour, kind, target, definition, step_id);

CREATE TABLE IF NOT EXISTS calls_1d
(
    day            DateTime('UTC'),
    tenant         LowCardinality(String),
    kind           LowCardinality(String),
    target         LowCardinality(String),
    definition     LowCardinality(String),
    step_id        LowCardinality(String),
    calls          SimpleAggregateFunction(sum, UInt64),
    errors         SimpleAggregateFunction(sum, UInt64),
    timeouts       SimpleAggregateFunction(sum, UInt64),
    tokens_in      SimpleAggregateFunction(sum, Int64),
    tokens_out     SimpleAggregateFunction(sum, Int64),
    cost_usd       SimpleAggregateFunction(sum, Float64),
    request_bytes  SimpleAggregateFunction(sum, Int64),
    response_bytes SimpleAggregateFunction(sum, Int64),
    latency_sum    SimpleAggregateFunction(sum, Float64),
    latency_max    SimpleAggregateFunction(max, Float64),
    latency_q      AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
ORDER BY (tenant, day, kind, target, definition, step_id);

-- Views from the coarsest level down: once a block reaches calls_1m, the
-- views above it already exist, so no level misses it.
CREATE MATERIALIZED VIEW IF NOT EXISTS calls_1d_mv TO calls_1d AS
SELECT
    toStartOfDay(hour)   AS day,
    tenant, kind, target, definition, step_id,
    sum(calls)           AS calls,
    sum(errors)          AS errors,
    sum(timeouts)        AS timeouts,
    sum(tokens_in)       AS tokens_in,
    sum(tokens_out)      AS tokens_out,
    sum(cost_usd)        AS cost_usd,
    sum(request_bytes)   AS request_bytes,
    sum(response_bytes)  AS response_bytes,
    sum(latency_sum)     AS latency_sum,
    max(latency_max)     AS latency_max,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q) AS latency_q
FROM calls_1h
GROUP BY day, tenant, kind, target, definition, step_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS calls_1h_mv TO calls_1h AS
SELECT
    toStartOfHour(minute) AS hour,
    tenant, kind, target, definition, step_id,
    sum(calls)           AS calls,
    sum(errors)          AS errors,
    sum(timeouts)        AS timeouts,
    sum(tokens_in)       AS tokens_in,
    sum(tokens_out)      AS tokens_out,
    sum(cost_usd)        AS cost_usd,
    sum(request_bytes)   AS request_bytes,
    sum(response_bytes)  AS response_bytes,
    sum(latency_sum)     AS latency_sum,
    max(latency_max)     AS latency_max,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q) AS latency_q
FROM calls_1m
GROUP BY hour, tenant, kind, target, definition, step_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS calls_1m_mv TO calls_1m AS
SELECT
    toStartOfMinute(ts)          AS minute,
    tenant, kind, target, definition, step_id,
    count()                      AS calls,
    countIf(outcome != 'ok')     AS errors,
    countIf(outcome = 'timeout') AS timeouts,
    sum(tokens_in)               AS tokens_in,
    sum(tokens_out)              AS tokens_out,
    sum(cost_usd)                AS cost_usd,
    sum(request_bytes)           AS request_bytes,
    sum(response_bytes)          AS response_bytes,
    sum(latency_ms)              AS latency_sum,
    max(latency_ms)              AS latency_max,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms) AS latency_q
FROM calls
GROUP BY minute, tenant, kind, target, definition, step_id;
