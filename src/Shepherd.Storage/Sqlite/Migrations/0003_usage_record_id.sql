-- Records are deduplicated by record_id, the gateway's own id for each request, no longer by request_id: a request
-- id may come from the client (x-request-id) and repeat, and a second request with the same id must still count.
-- SQLite cannot drop a UNIQUE constraint, so the table is rebuilt (existing rows keep their request id as record id).
CREATE TABLE usage_records_v3 (
    id                 INTEGER PRIMARY KEY,
    ts                 INTEGER NOT NULL,
    record_id          TEXT    NOT NULL UNIQUE,
    request_id         TEXT    NOT NULL,
    key_id             TEXT    NOT NULL,
    team               TEXT,
    requested_model    TEXT,
    served_model       TEXT,
    provider           TEXT,
    deployment         TEXT,
    attempts           INTEGER NOT NULL,
    fallback           INTEGER NOT NULL,
    streamed           INTEGER NOT NULL,
    status             INTEGER NOT NULL,
    error_class        TEXT,
    prompt_tokens      INTEGER NOT NULL,
    cached_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_nanos         INTEGER NOT NULL,
    latency_ms         REAL    NOT NULL,
    ttft_ms            REAL,
    tokens_per_s       REAL,
    estimated          INTEGER NOT NULL
);

INSERT INTO usage_records_v3 (id, ts, record_id, request_id, key_id, team, requested_model, served_model, provider, deployment,
  attempts, fallback, streamed, status, error_class, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
  cache_write_tokens, cost_nanos, latency_ms, ttft_ms, tokens_per_s, estimated)
SELECT id, ts, request_id, request_id, key_id, team, requested_model, served_model, provider, deployment,
  attempts, fallback, streamed, status, error_class, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
  cache_write_tokens, cost_nanos, latency_ms, ttft_ms, tokens_per_s, estimated
FROM usage_records;

DROP TABLE usage_records;
ALTER TABLE usage_records_v3 RENAME TO usage_records;

CREATE INDEX usage_records_ts ON usage_records (ts);
CREATE INDEX usage_records_key_ts ON usage_records (key_id, ts);
CREATE INDEX usage_records_request_id ON usage_records (request_id);

-- Reports for one key read only that key's rollups.
CREATE INDEX usage_daily_key_day ON usage_daily (key_id, day);
