-- One row per client request. Time is unix milliseconds (UTC); money is integer nano-dollars, so sums are exact.
CREATE TABLE usage_records (
    id                 INTEGER PRIMARY KEY,
    ts                 INTEGER NOT NULL,
    request_id         TEXT    NOT NULL UNIQUE,
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

CREATE INDEX usage_records_ts ON usage_records (ts);
CREATE INDEX usage_records_key_ts ON usage_records (key_id, ts);

-- Daily rollups, kept for ever (raw records are purged after the retention period). Maintained as records are
-- inserted, in the same transaction, so reports by key/team/model/provider/day never scan raw records.
CREATE TABLE usage_daily (
    day                TEXT    NOT NULL,
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
    PRIMARY KEY (day, key_id, team, model, provider)
) WITHOUT ROWID;
