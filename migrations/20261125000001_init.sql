-- Conversations and their messages. Ids are UUID text; times are unix milliseconds.

CREATE TABLE conversations (
    id            TEXT PRIMARY KEY NOT NULL,
    -- Every query is scoped by owner; until accounts exist it is the configured single owner.
    owner         TEXT NOT NULL,
    title         TEXT NOT NULL,
    -- `provider/model` used for the next turn.
    model         TEXT NOT NULL,
    -- Conversation metadata, sent to the provider as its system prompt; never a message row.
    system_prompt TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    deleted_at    INTEGER
);

CREATE INDEX conversations_by_owner ON conversations (owner, updated_at DESC);

-- One row per user message and per assistant reply; a turn is the pair sharing `turn_id`.
CREATE TABLE messages (
    id                  TEXT PRIMARY KEY NOT NULL,
    conversation_id     TEXT NOT NULL REFERENCES conversations (id),
    -- Minted by the browser, so a repeated send of the same turn is recognised.
    turn_id             TEXT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content             TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('streaming', 'complete', 'stopped', 'failed')),
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
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (turn_id, role)
);

CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at);
