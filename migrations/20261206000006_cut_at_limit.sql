-- A reply that ended at its output cap says so, and can be continued (issue 22): the
-- provider's finish reason is kept rather than dropped.
ALTER TABLE messages ADD COLUMN cut_at_limit INTEGER NOT NULL DEFAULT 0 CHECK (cut_at_limit IN (0, 1));
