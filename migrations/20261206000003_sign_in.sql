-- Sign-in that cannot be turned against people (issue 22).
-- * Browsers an account has signed in from with its password, by the SHA-256 of a random token
--   in a long-lived cookie: the account's lockout after many failed guesses does not apply to
--   them, so a guesser elsewhere cannot lock the rightful person out.
-- * Failed sign-ins are one audit row per account and address an hour, with a count.

CREATE TABLE known_devices (
    token_digest TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);

CREATE INDEX known_devices_by_user ON known_devices (user_id, last_seen_at DESC);

ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);

CREATE INDEX audit_log_failures ON audit_log (action, target, at);
