-- Pinned conversations (issue 25): listed apart, above the others, most recently pinned first.
-- NULL: not pinned. Pinning is not a change of the conversation (its `updated_at` stays).
ALTER TABLE conversations ADD COLUMN pinned_at INTEGER;

CREATE INDEX conversations_pinned ON conversations (owner, pinned_at DESC)
    WHERE pinned_at IS NOT NULL;
