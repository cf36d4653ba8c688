-- Analytics by trigger: what started an orchestration (a schedule, a topic
-- trigger, a webhook, an event), as the "trigger" label ("<kind>:<name>")
-- that the trigger's own record and every call record of the
-- orchestrations it started carry.
--
-- The raw table gets a trigger column computed from the label (old parts
-- compute it when read), and rollups like calls_1m/1h/1d keyed by trigger
-- hold only the records that have one, so that grouping by trigger reads
-- rollups like every other dimension. The views read labels['trigger']
-- from the inserted block itself. Cascade and t-digest as in 0003.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS trigger LowCardinality(String) MATERIALIZED labels['trigger'];

CREATE TABLE IF NOT EXISTS triggers_1m
(
    minute         DateTime('UTC'),
    tenant         LowCardinality(String),
    trigger        LowCardinality(String),
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
ORDER BY (tenant, minute, trigger, kind, target, definition, step_id);

CREATE TABLE IF NOT EXISTS triggers_1h
(
    hour           DateTime('UTC'),
    tenant         LowCardinality(String),
    trigger        LowCardinality(String),
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
ORDER BY (tenant, hour, trigger, kind, target, definition, step_id);

CREATE TABLE IF NOT EXISTS triggers_1d
(
    day            DateTime('UTC'),
    tenant         LowCardinality(String),
    trigger        LowCardinality(String),
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
ORDER BY (tenant, day, trigger, kind, target, definition, step_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS triggers_1d_mv TO triggers_1d AS
SELECT
    toStartOfDay(hour)   AS day,
    tenant, trigger, kind, target, definition, step_id,
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
FROM triggers_1h
GROUP BY day, tenant, trigger, kind, target, definition, step_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS triggers_1h_mv TO triggers_1h AS
SELECT
    toStartOfHour(minute) AS hour,
    tenant, trigger, kind, target, definition, step_id,
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
FROM triggers_1m
GROUP BY hour, tenant, trigger, kind, target, definition, step_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS triggers_1m_mv TO triggers_1m AS
SELECT
    toStartOfMinute(ts)          AS minute,
    tenant,
    labels['trigger']            AS trigger,
    kind, target, definition, step_id,
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
WHERE labels['trigger'] != ''
GROUP BY minute, tenant, trigger, kind, target, definition, step_id;
