-- Insert deduplication on every table an insert into calls reaches, so that
-- the sink can retry an insert whose outcome is unknown (ClickHouse died
-- mid-insert) with the same insert_deduplication_token: each table keeps
-- the blocks it already committed and takes the ones it missed. A killed
-- server can commit the raw part (and the offset mark) without a rollup's
-- part; without this the retry would skip the batch as stored and the
-- rollup would stay short. The window is in blocks (one per insert and
-- partition); MergeTree's replicated tables have it on by default.
ALTER TABLE calls MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE calls_kafka_offsets MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE calls_1m MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE calls_1h MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE calls_1d MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE approvals_1m MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE approvals_1h MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE approvals_1d MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE model_cache_1m MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE model_cache_1h MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE model_cache_1d MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE triggers_1m MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE triggers_1h MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE triggers_1d MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE api_calls_1m MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE api_calls_1h MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE api_calls_1d MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE proxy_1m MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE proxy_1h MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE proxy_1d MODIFY SETTING non_replicated_deduplication_window = 1000;
