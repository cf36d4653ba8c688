-- Traces (docs/TRACING.md): the W3C trace and span id of each call, so that
-- an analyst goes from a slow row to its trace in the tracing backend, and
-- finds every record of one request (ingress, activities, model calls) by
-- its trace id. Empty for calls outside a trace and for rows stored before;
-- ADD COLUMN is a metadata change, old parts read the default. The bloom
-- filter index lets `WHERE trace_id = ...` skip granules without it.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS trace_id String DEFAULT '' CODEC(ZSTD(3)) AFTER retries;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS span_id String DEFAULT '' CODEC(ZSTD(3)) AFTER trace_id;
ALTER TABLE calls ADD INDEX IF NOT EXISTS trace_id_bf trace_id TYPE bloom_filter(0.01) GRANULARITY 4;
