-- API keys (issue 29): scripts and tools call `/v1/*` with `Authorization: Bearer <key>`. A key
-- is 244 random bits shown once when made; only its SHA-256 is kept (looked up by it, like share
-- links: the hash of a guess says nothing of any stored key, so no constant-time compare is
-- needed), with its first characters to tell keys apart in the list. A revoked key's row stays,
-- so the usage page still names the key its runs were billed to.
CREATE TABLE api_keys (
    id                 TEXT PRIMARY KEY NOT NULL,
    key_hash           TEXT NOT NULL UNIQUE,
    -- `rill_1a2b3c4d`: the key's first characters, shown in the list.
    prefix             TEXT NOT NULL,
    owner              TEXT NOT NULL,
    name               TEXT NOT NULL,
    -- The key's own limit for a month (USD), on top of its owner's budget.
    monthly_budget_usd REAL CHECK (monthly_budget_usd IS NULL OR monthly_budget_usd >= 0),
    -- Unix milliseconds; NULL: never / not yet.
    expires_at         INTEGER,
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER,
    revoked_at         INTEGER
);

CREATE INDEX api_keys_by_owner ON api_keys (owner, created_at);

-- A run made through a key (`/v1/chat/completions`) names it; its `message_id` is the
-- completion's own id, since no message is stored for it.
ALTER TABLE spending ADD COLUMN api_key_id TEXT;
CREATE INDEX spending_by_key_month ON spending (api_key_id, month) WHERE api_key_id IS NOT NULL;
