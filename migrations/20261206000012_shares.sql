-- Share links (issue 25). A share pins a snapshot of the branch on screen when it was made: the
-- turn that ended it, and how many characters that turn's reply had (a later Continue appends
-- to the same reply; the page shows only what was there). Branching never deletes or changes an
-- earlier turn, so walking back from the pinned turn reads the same messages for good; nothing
-- is copied, and the person's storage is not spent twice.
--
-- The link's token is looked up by its SHA-256 (`key_hash`), so the lookup's timing tells a
-- guesser nothing about any stored token's characters. The token itself is kept for its owner's
-- list of links: whoever can read this table can read the conversations themselves.
CREATE TABLE shares (
    id              TEXT PRIMARY KEY NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,
    token           TEXT NOT NULL,
    owner           TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    end_turn_id     TEXT NOT NULL,
    -- Characters of the end turn's reply when shared.
    end_chars       INTEGER NOT NULL CHECK (end_chars >= 0),
    -- The title when shared (a rename later does not reach the link).
    title           TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE INDEX shares_by_owner ON shares (owner, created_at);
CREATE INDEX shares_by_conversation ON shares (conversation_id);
