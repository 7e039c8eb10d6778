-- A conversation's own settings (issue 12).
-- * Every change of the system prompt is a revision, kept, and each reply records the revision
--   that produced it, so a person can see what behaviour was in effect. 0: no prompt was set.
-- * Deleting is soft (`deleted_at`, already there) so it can be undone; after a configured time
--   the text is purged (`purged_at`): titles, prompts and messages are emptied while tokens and
--   costs stay, because spending limits are counted from them.

ALTER TABLE conversations ADD COLUMN system_prompt_revision INTEGER NOT NULL DEFAULT 0
    CHECK (system_prompt_revision >= 0);
ALTER TABLE conversations ADD COLUMN purged_at INTEGER;

CREATE TABLE system_prompts (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    revision        INTEGER NOT NULL CHECK (revision >= 1),
    text            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, revision)
);

-- On replies: the revision in effect when it was written. NULL: written before revisions were kept.
ALTER TABLE messages ADD COLUMN system_prompt_revision INTEGER;

INSERT INTO system_prompts (conversation_id, revision, text, created_at)
SELECT id, 1, system_prompt, updated_at FROM conversations WHERE system_prompt <> '';
UPDATE conversations SET system_prompt_revision = 1 WHERE system_prompt <> '';

CREATE INDEX conversations_to_purge ON conversations (deleted_at)
    WHERE deleted_at IS NOT NULL AND purged_at IS NULL;
