-- Import and export (issue 25). A reply brought in from another app (or another Rill) is marked:
-- its figures were not spent here, so no `spending` row exists for it and its cost reads
-- "imported". A conversation remembers where it came from (`chatgpt:<id>`, `claude:<uuid>`,
-- `rill:<id>`), so that importing the same file again skips what is already here.
ALTER TABLE messages ADD COLUMN imported INTEGER NOT NULL DEFAULT 0 CHECK (imported IN (0, 1));
ALTER TABLE conversations ADD COLUMN imported_from TEXT;
CREATE INDEX conversations_imported ON conversations (owner, imported_from)
    WHERE imported_from IS NOT NULL;
