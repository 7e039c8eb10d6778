-- API keys (issue 29): the twin of migrations/20261209000100_api_keys.sql (read that one's notes).
CREATE TABLE api_keys (
    id                 TEXT PRIMARY KEY NOT NULL,
    key_hash           TEXT NOT NULL UNIQUE,
    prefix             TEXT NOT NULL,
    owner              TEXT NOT NULL,
    name               TEXT NOT NULL,
    monthly_budget_usd DOUBLE PRECISION CHECK (monthly_budget_usd IS NULL OR monthly_budget_usd >= 0),
    expires_at         BIGINT,
    created_at         BIGINT NOT NULL,
    last_used_at       BIGINT,
    revoked_at         BIGINT
);

CREATE INDEX api_keys_by_owner ON api_keys (owner, created_at);

ALTER TABLE spending ADD COLUMN api_key_id TEXT;
CREATE INDEX spending_by_key_month ON spending (api_key_id, month) WHERE api_key_id IS NOT NULL;
