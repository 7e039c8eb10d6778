-- Each reply's HTML is rendered once, when its run ends, and kept (issue 22): opening a
-- conversation no longer renders every reply again. `html_version` names the renderer that
-- wrote it (a hash of its source); a reply rendered by another is rendered again when next shown.
ALTER TABLE messages ADD COLUMN html TEXT;
ALTER TABLE messages ADD COLUMN html_version INTEGER;
