-- Webhook events as received (raw body kept byte for byte), one per (source, event id): duplicates are refused.
-- Time is unix milliseconds (UTC); money is integer nano-dollars.
CREATE TABLE webhook_events (
    id           INTEGER PRIMARY KEY,
    source       TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    received_at  INTEGER NOT NULL,
    UNIQUE (source, event_id)
);

-- The queue: one 'process' job per event, and a 'deliver' job once a result is to be delivered.
-- status: waiting | leased | completed | failed (retrying) | dead | skipped.
-- available_at: when the job is due (waiting, failed) or when its lease runs out (leased).
-- attempts: every attempt ever (fences state changes, part of the request id); tries: since queued or replayed.
CREATE TABLE webhook_jobs (
    id           INTEGER PRIMARY KEY,
    event        INTEGER NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    tries        INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,
    enqueued_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_error   TEXT,
    UNIQUE (event, kind)
);

CREATE INDEX webhook_jobs_due ON webhook_jobs (available_at) WHERE status IN ('waiting', 'failed', 'leased');
CREATE INDEX webhook_jobs_stats ON webhook_jobs (source, kind, status);

-- Every attempt, for inspection.
CREATE TABLE webhook_attempts (
    job          INTEGER NOT NULL REFERENCES webhook_jobs(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    duration_ms  REAL    NOT NULL,
    outcome      TEXT    NOT NULL,
    status       INTEGER,
    error        TEXT,
    request_id   TEXT,
    PRIMARY KEY (job, attempt)
) WITHOUT ROWID;

-- One result per event: the first stored wins, so a job processed twice (a lease that ran out) has one effect.
CREATE TABLE webhook_results (
    source            TEXT    NOT NULL,
    event_id          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    text              TEXT    NOT NULL,
    finish_reason     TEXT,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_nanos        INTEGER NOT NULL,
    latency_ms        REAL    NOT NULL,
    request_id        TEXT    NOT NULL,
    completed_at      INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)
) WITHOUT ROWID;
