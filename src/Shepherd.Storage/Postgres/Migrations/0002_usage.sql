-- One row per client request. Money is integer nano-dollars, so sums are exact.
CREATE TABLE usage_records (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts                 timestamptz NOT NULL,
    request_id         text    NOT NULL UNIQUE,
    key_id             text    NOT NULL,
    team               text,
    requested_model    text,
    served_model       text,
    provider           text,
    deployment         text,
    attempts           integer NOT NULL,
    fallback           boolean NOT NULL,
    streamed           boolean NOT NULL,
    status             integer NOT NULL,
    error_class        text,
    prompt_tokens      integer NOT NULL,
    cached_tokens      integer NOT NULL,
    completion_tokens  integer NOT NULL,
    reasoning_tokens   integer NOT NULL,
    cache_write_tokens integer NOT NULL,
    cost_nanos         bigint  NOT NULL,
    latency_ms         double precision NOT NULL,
    ttft_ms            double precision,
    tokens_per_s       double precision,
    estimated          boolean NOT NULL
);

CREATE INDEX usage_records_ts ON usage_records (ts);
CREATE INDEX usage_records_key_ts ON usage_records (key_id, ts);

-- Daily rollups (UTC days), kept for ever. Maintained in the same statement that inserts the records, from the rows
-- that were really inserted, so a replayed record is never rolled up twice.
CREATE TABLE usage_daily (
    day                date    NOT NULL,
    key_id             text    NOT NULL,
    team               text    NOT NULL,
    model              text    NOT NULL,
    provider           text    NOT NULL,
    requests           bigint  NOT NULL,
    errors             bigint  NOT NULL,
    prompt_tokens      bigint  NOT NULL,
    cached_tokens      bigint  NOT NULL,
    completion_tokens  bigint  NOT NULL,
    reasoning_tokens   bigint  NOT NULL,
    cache_write_tokens bigint  NOT NULL,
    cost_nanos         bigint  NOT NULL,
    estimated          bigint  NOT NULL,
    PRIMARY KEY (day, key_id, team, model, provider)
);
