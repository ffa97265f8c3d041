-- Virtual keys: only a SHA-256 digest of each key is stored, plus a short display form.
CREATE TABLE virtual_keys (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    team            TEXT,
    key_hash        TEXT NOT NULL UNIQUE,
    display         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT,
    enabled         INTEGER NOT NULL DEFAULT 1,
    revoked_at      TEXT,
    allowed_models  TEXT NOT NULL DEFAULT '[]',
    ip_allowlist    TEXT NOT NULL DEFAULT '[]',
    rpm             INTEGER,
    tpm             INTEGER,
    max_parallel    INTEGER,
    daily_budget    TEXT,
    monthly_budget  TEXT,
    total_budget    TEXT,
    credit_balance  TEXT,
    metadata        TEXT NOT NULL DEFAULT '{}'
);

-- Spend per key and calendar window: period is 'd:YYYY-MM-DD', 'm:YYYY-MM' or 'total'. Money is exact decimal text.
CREATE TABLE key_spend (
    key_id  TEXT NOT NULL REFERENCES virtual_keys(id),
    period  TEXT NOT NULL,
    spend   TEXT NOT NULL,
    PRIMARY KEY (key_id, period)
) WITHOUT ROWID;
