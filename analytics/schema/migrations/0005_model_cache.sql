-- The model gateway's response cache (docs/MODELS.md, "Response cache"):
-- a model call record's cache status ('hit': answered from the cache
-- without a provider call; 'miss': eligible, stored after; 'refresh': the
-- caller asked for a fresh answer; '' when the call was not eligible) and,
-- for hits, the cost the cached answer had (cost_saved_usd). Rows written
-- before this migration read '' and 0.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS cache LowCardinality(String) DEFAULT '' AFTER cost_usd;

ALTER TABLE calls ADD COLUMN IF NOT EXISTS cost_saved_usd Float64 DEFAULT 0 AFTER cache;

-- Rollups of the cache per minute, hour and day (UTC) by tenant and target
-- (the provider/model that answered, or whose answer a hit replayed):
-- lookups (eligible calls), hits, the cost hits saved, and the cost paid
-- by the misses. Only model records with a cache status are counted.
-- Cascade as in 0003: calls -> model_cache_1m -> model_cache_1h ->
-- model_cache_1d. Read with sum(...), grouped by any subset of the key.
CREATE TABLE IF NOT EXISTS model_cache_1m
(
    minute         DateTime('UTC'),
    tenant         LowCardinality(String),
    target         LowCardinality(String),
    lookups        SimpleAggregateFunction(sum, UInt64),
    hits           SimpleAggregateFunction(sum, UInt64),
    cost_saved_usd SimpleAggregateFunction(sum, Float64),
    cost_usd       SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, target);

CREATE TABLE IF NOT EXISTS model_cache_1h
(
    hour           DateTime('UTC'),
    tenant         LowCardinality(String),
    target         LowCardinality(String),
    lookups        SimpleAggregateFunction(sum, UInt64),
    hits           SimpleAggregateFunction(sum, UInt64),
    cost_saved_usd SimpleAggregateFunction(sum, Float64),
    cost_usd       SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(hour)
ORDER BY (tenant, hour, target);

CREATE TABLE IF NOT EXISTS model_cache_1d
(
    day            DateTime('UTC'),
    tenant         LowCardinality(String),
    target         LowCardinality(String),
    lookups        SimpleAggregateFunction(sum, UInt64),
    hits           SimpleAggregateFunction(sum, UInt64),
    cost_saved_usd SimpleAggregateFunction(sum, Float64),
    cost_usd       SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
ORDER BY (tenant, day, target);

CREATE MATERIALIZED VIEW IF NOT EXISTS model_cache_1d_mv TO model_cache_1d AS
SELECT
    toStartOfDay(hour)  AS day,
    tenant, target,
    sum(lookups)        AS lookups,
    sum(hits)           AS hits,
    sum(cost_saved_usd) AS cost_saved_usd,
    sum(cost_usd)       AS cost_usd
FROM model_cache_1h
GROUP BY day, tenant, target;

CREATE MATERIALIZED VIEW IF NOT EXISTS model_cache_1h_mv TO model_cache_1h AS
SELECT
    toStartOfHour(minute) AS hour,
    tenant, target,
    sum(lookups)          AS lookups,
    sum(hits)             AS hits,
    sum(cost_saved_usd)   AS cost_saved_usd,
    sum(cost_usd)         AS cost_usd
FROM model_cache_1m
GROUP BY hour, tenant, target;

CREATE MATERIALIZED VIEW IF NOT EXISTS model_cache_1m_mv TO model_cache_1m AS
SELECT
    toStartOfMinute(ts)       AS minute,
    tenant, target,
    count()                   AS lookups,
    countIf(cache = 'hit')    AS hits,
    sum(cost_saved_usd)       AS cost_saved_usd,
    sum(cost_usd)             AS cost_usd
FROM calls
WHERE kind = 'model' AND cache != ''
GROUP BY minute, tenant, target;
