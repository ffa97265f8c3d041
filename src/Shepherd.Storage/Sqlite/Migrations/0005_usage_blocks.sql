-- Raw usage records move from one row per record (24 columns, four indexes: 3.7 µs of the writer's CPU per request)
-- to one row per written batch: the batch's records as a JSON array of arrays. Reports never read raw records except
-- for the minutes at either end of a range that does not start or end on a whole hour; everything else comes from
-- the hourly and daily rollups. Each record id is kept once in usage_record_ids, so a replay still never doubles.

-- One row per batch written and UTC hour: every block's records lie within one clock hour (a batch that spans an
-- hour boundary is written as two blocks), so the minutes a report reads from raw records — never more than part of
-- an hour at either end of its range — are found by ts_min alone, however many blocks the retention period holds.
-- data: [[ts, record_id, request_id (null: the record id), key_id, team, requested_model, served_model, provider,
-- deployment, attempts, fallback, streamed, status, error_class, prompt, cached, completion, reasoning and cache-write
-- tokens, cost_nanos, latency, ttft (both in microseconds), tokens_per_s (thousandths), estimated], ...]
CREATE TABLE usage_blocks (
    id       INTEGER PRIMARY KEY,
    ts_min   INTEGER NOT NULL,
    ts_max   INTEGER NOT NULL,
    records  INTEGER NOT NULL,
    data     TEXT    NOT NULL
);

CREATE INDEX usage_blocks_ts ON usage_blocks (ts_min);

-- Every stored record's id: what the writer deduplicates on (INSERT OR IGNORE). Purged with its block.
CREATE TABLE usage_record_ids (
    record_id TEXT PRIMARY KEY
) WITHOUT ROWID;

-- Hourly rollups, kept as long as raw records (usage.retention_days); daily rollups are kept for ever.
CREATE TABLE usage_hourly (
    hour               TEXT    NOT NULL,
    key_id             TEXT    NOT NULL,
    team               TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    provider           TEXT    NOT NULL,
    requests           INTEGER NOT NULL,
    errors             INTEGER NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    cached_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_nanos         INTEGER NOT NULL,
    estimated          INTEGER NOT NULL,
    PRIMARY KEY (hour, key_id, team, model, provider)
) WITHOUT ROWID;

CREATE INDEX usage_hourly_key_hour ON usage_hourly (key_id, hour);

-- Existing records: one block per hour and at most 65,536 records (the view numbers records block id << 20 + index),
-- their ids, their hourly rollups.
INSERT INTO usage_blocks (ts_min, ts_max, records, data)
SELECT min(ts), max(ts), count(*), json_group_array(json_array(ts, record_id,
         CASE WHEN request_id = record_id THEN NULL ELSE request_id END, key_id, team, requested_model, served_model,
         provider, deployment, attempts, fallback, streamed, status, error_class, prompt_tokens, cached_tokens,
         completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, CAST(round(latency_ms * 1000) AS INTEGER),
         CAST(round(ttft_ms * 1000) AS INTEGER), CAST(round(tokens_per_s * 1000) AS INTEGER), estimated) ORDER BY id)
FROM usage_records
GROUP BY ts / 3600000, id / 65536;

INSERT INTO usage_record_ids (record_id) SELECT record_id FROM usage_records;

INSERT INTO usage_hourly (hour, key_id, team, model, provider, requests, errors, prompt_tokens, cached_tokens,
  completion_tokens, reasoning_tokens, cache_write_tokens, cost_nanos, estimated)
SELECT strftime('%Y-%m-%dT%H:00:00Z', ts / 1000, 'unixepoch'), key_id, COALESCE(team, ''),
  COALESCE(served_model, requested_model, ''), COALESCE(provider, ''), count(*), sum(error_class IS NOT NULL),
  sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens), sum(reasoning_tokens), sum(cache_write_tokens),
  sum(cost_nanos), sum(estimated)
FROM usage_records
GROUP BY 1, 2, 3, 4, 5;

DROP TABLE usage_records;

-- The raw records as a table again: the one mapping from a block's JSON to columns, for reports and ad-hoc SQL.
-- block_ts_min/block_ts_max are the record's block's bounds: a time-bounded read filters on them first, so SQLite finds
-- the blocks by their index and reads the JSON of those only.
CREATE VIEW usage_records (id, ts, record_id, request_id, key_id, team, requested_model, served_model, provider, deployment,
  attempts, fallback, streamed, status, error_class, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
  cache_write_tokens, cost_nanos, latency_ms, ttft_ms, tokens_per_s, estimated, block_ts_min, block_ts_max) AS
SELECT (b.id << 20) + r.key, r.value ->> 0, r.value ->> 1, COALESCE(r.value ->> 2, r.value ->> 1), r.value ->> 3,
  r.value ->> 4, r.value ->> 5, r.value ->> 6, r.value ->> 7, r.value ->> 8, r.value ->> 9, r.value ->> 10,
  r.value ->> 11, r.value ->> 12, r.value ->> 13, r.value ->> 14, r.value ->> 15, r.value ->> 16, r.value ->> 17,
  r.value ->> 18, r.value ->> 19, (r.value ->> 20) / 1000.0, (r.value ->> 21) / 1000.0, (r.value ->> 22) / 1000.0,
  r.value ->> 23, b.ts_min, b.ts_max
FROM usage_blocks b, json_each(b.data) r;
