-- The webhook queue shared by every instance (the same tables as SQLite's 0004_webhooks.sql). Money is integer
-- nano-dollars.

-- Events as received (raw body kept byte for byte), one per (source, event id): duplicates are refused.
CREATE TABLE webhook_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text        NOT NULL,
    event_id     text        NOT NULL,
    event_type   text        NOT NULL,
    payload      bytea       NOT NULL,
    received_at  timestamptz NOT NULL,
    UNIQUE (source, event_id)
);

-- The queue: one 'process' job per event, and a 'deliver' job once a result is to be delivered.
-- status: waiting | leased | completed | failed (retrying) | dead | skipped.
-- available_at: when the job is due (waiting, failed) or when its lease runs out (leased).
-- attempts: every attempt ever (fences state changes, part of the request id); tries: since queued or replayed.
CREATE TABLE webhook_jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event        bigint      NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    kind         text        NOT NULL,
    source       text        NOT NULL,
    status       text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    tries        integer     NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL,
    enqueued_at  timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    last_error   text,
    UNIQUE (event, kind)
);

-- What the lease query scans: only unfinished jobs, in due order.
CREATE INDEX webhook_jobs_due ON webhook_jobs (available_at, id) WHERE status IN ('waiting', 'failed', 'leased');
CREATE INDEX webhook_jobs_stats ON webhook_jobs (source, kind, status);

-- Every attempt, for inspection.
CREATE TABLE webhook_attempts (
    job          bigint           NOT NULL REFERENCES webhook_jobs(id) ON DELETE CASCADE,
    attempt      integer          NOT NULL,
    started_at   timestamptz      NOT NULL,
    duration_ms  double precision NOT NULL,
    outcome      text             NOT NULL,
    status       integer,
    error        text,
    request_id   text,
    PRIMARY KEY (job, attempt)
);

-- One result per event: the first stored wins, so a job processed twice (a lease that ran out, on this instance or
-- another) has one effect.
CREATE TABLE webhook_results (
    source            text             NOT NULL,
    event_id          text             NOT NULL,
    model             text             NOT NULL,
    text              text             NOT NULL,
    finish_reason     text,
    prompt_tokens     integer          NOT NULL,
    completion_tokens integer          NOT NULL,
    cost_nanos        bigint           NOT NULL,
    latency_ms        double precision NOT NULL,
    request_id        text             NOT NULL,
    completed_at      timestamptz      NOT NULL,
    PRIMARY KEY (source, event_id)
);
