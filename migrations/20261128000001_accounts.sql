-- Accounts, sessions, budgets and the audit log (issue 10).
-- A user's id is the `owner` of their conversations. In single-user mode no user row exists and
-- the owner is the configured name (`RILL_OWNER`, default `local`).

CREATE TABLE users (
    id                 TEXT PRIMARY KEY NOT NULL,
    username           TEXT NOT NULL UNIQUE COLLATE NOCASE,
    -- argon2id, PHC string. NULL: signs in only through the trusted proxy's header.
    password_hash      TEXT,
    is_admin           INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    disabled_at        INTEGER,
    -- Spending limit per calendar month (UTC), in USD. NULL: no limit.
    monthly_budget_usd REAL CHECK (monthly_budget_usd IS NULL OR monthly_budget_usd >= 0),
    -- Raised by a password change or reset: sessions signed in before it end.
    session_epoch      INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- Settings an admin changes in the page (open sign-up, the default budget of new users).
CREATE TABLE site_settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- Sign-ins, sign-in failures and admin actions, for admins to read.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    -- Username of who acted (NULL: nobody signed in, e.g. a failed sign-in).
    actor   TEXT,
    action  TEXT NOT NULL,
    -- Username acted upon.
    target  TEXT,
    -- The client's address, as far as the server can tell.
    address TEXT,
    detail  TEXT
);

CREATE INDEX audit_log_by_time ON audit_log (at DESC);

-- The whole story of a failure (upstream status, body excerpt, URL), shown to admins only; the
-- `error` column holds what everyone sees.
ALTER TABLE messages ADD COLUMN error_detail TEXT;

-- tower-sessions' SQLite store, in its own schema; rows are deleted as they expire.
CREATE TABLE tower_sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    data        BLOB NOT NULL,
    expiry_date INTEGER NOT NULL
);

