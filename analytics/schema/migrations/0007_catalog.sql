-- Calls to APIs of the catalogue (docs/CATALOG.md). The raw table gains
-- the API, its version and who was served: the consumer tenant and the app
-- of its grant (empty for calls outside the catalogue; consumer is set only
-- for admitted calls).
ALTER TABLE calls
    ADD COLUMN IF NOT EXISTS api          LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS api_version  LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS consumer     LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS consumer_app LowCardinality(String) DEFAULT '';

-- Rollups of catalogue calls per minute, hour and day (UTC) by API,
-- consumer, app, version, the record's tenant (who called) and kind, with
-- the figures of the calls rollups (0003). They answer analytics grouped
-- or filtered by API or consumer (an owner reads the rows of its APIs, a
-- consumer its own rows) and the quotas of grants (calls per API,
-- consumer and app since the start of a day or month). Sorting keys start
-- with the API and the consumer, the columns every such question names.
CREATE TABLE IF NOT EXISTS api_calls_1m
(
    minute         DateTime('UTC'),
    api            LowCardinality(String),
    consumer       LowCardinality(String),
    consumer_app   LowCardinality(String),
    api_version    LowCardinality(String),
    tenant         LowCardinality(String),
    kind           LowCardinality(String),
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
ORDER BY (api, consumer, consumer_app, minute, api_version, tenant, kind);

CREATE TABLE IF NOT EXISTS api_calls_1h
(
    hour           DateTime('UTC'),
    api            LowCardinality(String),
    consumer       LowCardinality(String),
    consumer_app   LowCardinality(String),
    api_version    LowCardinality(String),
    tenant         LowCardinality(String),
    kind           LowCardinality(String),
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
ORDER BY (api, consumer, consumer_app, hour, api_version, tenant, kind);

CREATE TABLE IF NOT EXISTS api_calls_1d
(
    day            DateTime('UTC'),
    api            LowCardinality(String),
    consumer       LowCardinality(String),
    consumer_app   LowCardinality(String),
    api_version    LowCardinality(String),
    tenant         LowCardinality(String),
    kind           LowCardinality(String),
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
ORDER BY (api, consumer, consumer_app, day, api_version, tenant, kind);

-- Views from the coarsest level down, as in 0003.
CREATE MATERIALIZED VIEW IF NOT EXISTS api_calls_1d_mv TO api_calls_1d AS
SELECT
    toStartOfDay(hour)   AS day,
    api, consumer, consumer_app, api_version, tenant, kind,
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
FROM api_calls_1h
GROUP BY day, api, consumer, consumer_app, api_version, tenant, kind;

CREATE MATERIALIZED VIEW IF NOT EXISTS api_calls_1h_mv TO api_calls_1h AS
SELECT
    toStartOfHour(minute) AS hour,
    api, consumer, consumer_app, api_version, tenant, kind,
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
FROM api_calls_1m
GROUP BY hour, api, consumer, consumer_app, api_version, tenant, kind;

CREATE MATERIALIZED VIEW IF NOT EXISTS api_calls_1m_mv TO api_calls_1m AS
SELECT
    toStartOfMinute(ts)          AS minute,
    api, consumer, consumer_app, api_version, tenant, kind,
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
WHERE api != ''
GROUP BY minute, api, consumer, consumer_app, api_version, tenant, kind;
