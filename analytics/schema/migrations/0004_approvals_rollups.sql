-- Rollups of approval decisions per minute, hour and day (UTC) by tenant,
-- approver role, definition, step and decision. An approval record's
-- latency_ms is the turnaround (waiting -> decided); labels['roles'] lists
-- the decider's roles (comma separated) and the decision is counted once
-- under each of them. Cascade and t-digest as in 0003.
CREATE TABLE IF NOT EXISTS approvals_1m
(
    minute         DateTime('UTC'),
    tenant         LowCardinality(String),
    role           LowCardinality(String),
    definition     LowCardinality(String),
    step_id        LowCardinality(String),
    decision       LowCardinality(String),
    decisions      SimpleAggregateFunction(sum, UInt64),
    turnaround_sum SimpleAggregateFunction(sum, Float64),
    turnaround_max SimpleAggregateFunction(max, Float64),
    turnaround_q   AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, role, definition, step_id, decision);

CREATE TABLE IF NOT EXISTS approvals_1h
(
    hour           DateTime('UTC'),
    tenant         LowCardinality(String),
    role           LowCardinality(String),
    definition     LowCardinality(String),
    step_id        LowCardinality(String),
    decision       LowCardinality(String),
    decisions      SimpleAggregateFunction(sum, UInt64),
    turnaround_sum SimpleAggregateFunction(sum, Float64),
    turnaround_max SimpleAggregateFunction(max, Float64),
    turnaround_q   AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(hour)
ORDER BY (tenant, hour, role, definition, step_id, decision);

CREATE TABLE IF NOT EXISTS approvals_1d
(
    day            DateTime('UTC'),
    tenant         LowCardinality(String),
    role           LowCardinality(String),
    definition     LowCardinality(String),
    step_id        LowCardinality(String),
    decision       LowCardinality(String),
    decisions      SimpleAggregateFunction(sum, UInt64),
    turnaround_sum SimpleAggregateFunction(sum, Float64),
    turnaround_max SimpleAggregateFunction(max, Float64),
    turnaround_q   AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
ORDER BY (tenant, day, role, definition, step_id, decision);

CREATE MATERIALIZED VIEW IF NOT EXISTS approvals_1d_mv TO approvals_1d AS
SELECT
    toStartOfDay(hour)  AS day,
    tenant, role, definition, step_id, decision,
    sum(decisions)      AS decisions,
    sum(turnaround_sum) AS turnaround_sum,
    max(turnaround_max) AS turnaround_max,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(turnaround_q) AS turnaround_q
FROM approvals_1h
GROUP BY day, tenant, role, definition, step_id, decision;

CREATE MATERIALIZED VIEW IF NOT EXISTS approvals_1h_mv TO approvals_1h AS
SELECT
    toStartOfHour(minute) AS hour,
    tenant, role, definition, step_id, decision,
    sum(decisions)      AS decisions,
    sum(turnaround_sum) AS turnaround_sum,
    max(turnaround_max) AS turnaround_max,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(turnaround_q) AS turnaround_q
FROM approvals_1m
GROUP BY hour, tenant, role, definition, step_id, decision;

CREATE MATERIALIZED VIEW IF NOT EXISTS approvals_1m_mv TO approvals_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    tenant,
    arrayJoin(if(labels['roles'] = '', [''], splitByChar(',', labels['roles']))) AS role,
    definition,
    step_id,
    if(labels['decision'] != '', labels['decision'], toString(outcome)) AS decision,
    count()                                           AS decisions,
    sum(latency_ms)                                   AS turnaround_sum,
    max(latency_ms)                                   AS turnaround_max,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms) AS turnaround_q
FROM calls
WHERE kind = 'approval'
GROUP BY minute, tenant, definition, step_id, role, decision;
