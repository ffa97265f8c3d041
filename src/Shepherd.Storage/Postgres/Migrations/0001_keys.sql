-- Virtual keys: only a SHA-256 digest of each key is stored, plus a short display form. Money is exact numeric.
CREATE TABLE virtual_keys (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    team            text,
    key_hash        text NOT NULL UNIQUE,
    display         text NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz,
    enabled         boolean NOT NULL DEFAULT true,
    revoked_at      timestamptz,
    allowed_models  jsonb NOT NULL DEFAULT '[]',
    ip_allowlist    jsonb NOT NULL DEFAULT '[]',
    rpm             integer,
    tpm             integer,
    max_parallel    integer,
    daily_budget    numeric,
    monthly_budget  numeric,
    total_budget    numeric,
    credit_balance  numeric,
    metadata        jsonb NOT NULL DEFAULT '{}'
);

-- Spend per key and calendar window: period is 'd:YYYY-MM-DD', 'm:YYYY-MM' or 'total'. Every instance adds its own
-- share (spend += delta), so the rows stay exact however many instances write them.
CREATE TABLE key_spend (
    key_id  text NOT NULL REFERENCES virtual_keys(id),
    period  text NOT NULL,
    spend   numeric NOT NULL,
    PRIMARY KEY (key_id, period)
);
