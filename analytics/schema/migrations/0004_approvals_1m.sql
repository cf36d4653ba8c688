-- Per-minute rollup of approval decisions by tenant, definition, step,
-- approver role and decision. An approval record's latency_ms is the
-- turnaround (waiting -> decided); labels['roles'] lists the decider's roles
-- (comma separated) and the decision is counted once under each of them.
CREATE TABLE IF NOT EXISTS approvals_1m
(
    minute         DateTime('UTC'),
    tenant         LowCardinality(String),
    definition     LowCardinality(String),
    step_id        LowCardinality(String),
    role           LowCardinality(String),
    decision       LowCardinality(String),
    decisions      SimpleAggregateFunction(sum, UInt64),
    turnaround_sum SimpleAggregateFunction(sum, Float64),
    turnaround_max SimpleAggregateFunction(max, Float64),
    turnaround_q   AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, role, definition, step_id, decision);

CREATE MATERIALIZED VIEW IF NOT EXISTS approvals_1m_mv TO approvals_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    tenant,
    definition,
    step_id,
    arrayJoin(if(labels['roles'] = '', [''], splitByChar(',', labels['roles']))) AS role,
    if(labels['decision'] != '', labels['decision'], toString(outcome)) AS decision,
    count()                                     AS decisions,
    sum(latency_ms)                             AS turnaround_sum,
    max(latency_ms)                             AS turnaround_max,
    quantilesState(0.5, 0.95, 0.99)(latency_ms) AS turnaround_q
FROM calls
WHERE kind = 'approval'
GROUP BY minute, tenant, definition, step_id, role, decision;
