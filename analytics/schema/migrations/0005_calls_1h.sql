-- Hourly rollup, same columns as calls_1m: trends by hour or day and top-N
-- over hour-aligned ranges read it, which is what keeps month-long questions
-- fast when a minute holds few calls per group. Filled from the raw inserts
-- made after this migration (there was no deployment before it).
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
    latency_q      AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, kind, target, definition, step_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS calls_1h_mv TO calls_1h AS
SELECT
    toStartOfHour(ts)                        AS hour,
    tenant,
    kind,
    target,
    definition,
    step_id,
    count()                                  AS calls,
    countIf(outcome != 'ok')                 AS errors,
    countIf(outcome = 'timeout')             AS timeouts,
    sum(tokens_in)                           AS tokens_in,
    sum(tokens_out)                          AS tokens_out,
    sum(cost_usd)                            AS cost_usd,
    sum(request_bytes)                       AS request_bytes,
    sum(response_bytes)                      AS response_bytes,
    sum(latency_ms)                          AS latency_sum,
    max(latency_ms)                          AS latency_max,
    quantilesState(0.5, 0.95, 0.99)(latency_ms) AS latency_q
FROM calls
GROUP BY hour, tenant, kind, target, definition, step_id;
