-- The hardened turn engine (issue 8):
-- * `interrupted`: a reply the server went down during (shut down or killed), apart from `failed`;
-- * `run`: how many times a reply was generated or continued (a Continue adds to the same row);
-- * `left_out`: earlier messages not sent because they no longer fit the model's context window;
-- * `position`: the message's place in its conversation (1, 2, …), so order never depends on
--   the clock;
-- * at most one streaming reply per conversation, enforced by the database itself.
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt.

CREATE TABLE messages_new (
    id                  TEXT PRIMARY KEY NOT NULL,
    conversation_id     TEXT NOT NULL REFERENCES conversations (id),
    -- Minted by the browser, so a repeated send of the same turn is recognised.
    turn_id             TEXT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content             TEXT NOT NULL,
    status              TEXT NOT NULL
                        CHECK (status IN ('streaming', 'complete', 'stopped', 'failed', 'interrupted')),
    error               TEXT,
    model               TEXT,
    -- Normalised usage (see llm::Usage): cached is part of input, reasoning part of output.
    input_tokens        INTEGER,
    cached_input_tokens INTEGER,
    cache_write_tokens  INTEGER,
    output_tokens       INTEGER,
    reasoning_tokens    INTEGER,
    usage_estimated     INTEGER NOT NULL DEFAULT 0,
    cost_usd            REAL,
    run                 INTEGER NOT NULL DEFAULT 1 CHECK (run >= 1),
    left_out            INTEGER NOT NULL DEFAULT 0 CHECK (left_out >= 0),
    position            INTEGER NOT NULL CHECK (position >= 1),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (turn_id, role)
);

-- Replies the previous version marked failed because the server went down are interrupted, and
-- so are replies it left streaming (it is not running: migrations run before the server serves).
INSERT INTO messages_new (id, conversation_id, turn_id, role, content, status, error, model,
    input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
    usage_estimated, cost_usd, position, created_at, updated_at)
SELECT id, conversation_id, turn_id, role, content,
    CASE WHEN status = 'streaming' THEN 'interrupted'
         WHEN status = 'failed' AND error IN ('the server stopped during this reply',
                                              'the server was shut down during this reply')
         THEN 'interrupted' ELSE status END,
    error, model, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,
    reasoning_tokens, usage_estimated, cost_usd,
    ROW_NUMBER() OVER (PARTITION BY conversation_id ORDER BY created_at, rowid),
    created_at, updated_at
FROM messages;

DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;

CREATE UNIQUE INDEX messages_by_conversation ON messages (conversation_id, position);
CREATE UNIQUE INDEX one_streaming_reply_per_conversation ON messages (conversation_id)
    WHERE status = 'streaming';
