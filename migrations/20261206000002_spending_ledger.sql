-- Budgets as a ledger (issue 22). One row per run of a reply (a send, a retry, each Continue),
-- dated when the run began, so a Continue bills the month it happens in. A run reserves its worst
-- case (the prompt, generously counted, plus its whole output cap at the model's prices) before
-- any provider request, in the same transaction that checks the month's spending and open
-- reservations against the budget; it is settled to its real cost when it ends, or at an estimate
-- from its saved text after a crash. Budgets, the usage page and the export read this table.

CREATE TABLE spending (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    owner               TEXT NOT NULL,
    message_id          TEXT NOT NULL,
    run                 INTEGER NOT NULL CHECK (run >= 1),
    model               TEXT NOT NULL,
    -- `2026-12`: the calendar month (UTC) the run began in; `at`: when, unix milliseconds.
    month               TEXT NOT NULL,
    at                  INTEGER NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('reserved', 'settled')),
    -- Held against the budget while the run is open.
    reserved_usd        REAL NOT NULL DEFAULT 0 CHECK (reserved_usd >= 0),
    -- What the run cost, once settled (NULL: a model with no price).
    cost_usd            REAL,
    -- How the run ended (the reply's status then).
    status              TEXT,
    -- While reserved: the prompt's generous count; once settled: the run's own figures.
    input_tokens        INTEGER,
    cached_input_tokens INTEGER,
    cache_write_tokens  INTEGER,
    output_tokens       INTEGER,
    reasoning_tokens    INTEGER,
    usage_estimated     INTEGER NOT NULL DEFAULT 0,
    -- Characters of the reply's text and thinking when the run began, so that a crash's estimate
    -- counts only what this run wrote.
    chars_before        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (message_id, run)
);

CREATE INDEX spending_by_owner_month ON spending (owner, month);
CREATE INDEX spending_by_month ON spending (month);
CREATE INDEX spending_open ON spending (state) WHERE state = 'reserved';

-- What was spent before the ledger: one settled row per reply, every run of it together, dated
-- when it was asked (as budgets counted it until now).
INSERT INTO spending (owner, message_id, run, model, month, at, state, cost_usd, status,
    input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
    usage_estimated)
SELECT c.owner, m.id, m.run, COALESCE(m.model, ''),
       strftime('%Y-%m', m.created_at / 1000, 'unixepoch'), m.created_at, 'settled', m.cost_usd,
       m.status, m.input_tokens, m.cached_input_tokens, m.cache_write_tokens, m.output_tokens,
       m.reasoning_tokens, m.usage_estimated
  FROM messages m JOIN conversations c ON c.id = m.conversation_id
 WHERE m.role = 'assistant' AND m.status <> 'streaming';
