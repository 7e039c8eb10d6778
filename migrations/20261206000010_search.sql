-- Search (issue 25): SQLite FTS5 over conversation titles and message text (questions and
-- answers; a reply's thinking is another column and is not indexed). Both indexes are external
-- content tables: they hold no copy of the text (snippets are read from the rows themselves),
-- only the terms, keyed by the row's rowid (which VACUUM and VACUUM INTO keep: the rows are
-- copied with their rowids). Triggers keep them in the same transaction as every change, so the
-- index cannot drift from the data: a message is found the moment it is stored, a reply's text
-- as each checkpoint saves it, an edit or a purge replaces what was indexed. Deleted
-- conversations stay indexed until purged (Undo brings them back) and are filtered out by the
-- queries, as everywhere else.
--
-- unicode61 with diacritics folded ("resume" finds "résumé"); prefix indexes of 2 and 3
-- characters keep the prefix queries a person types ("pyth*") from scanning the term list.

CREATE VIRTUAL TABLE message_search USING fts5(
    content,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

CREATE VIRTUAL TABLE title_search USING fts5(
    title,
    content = 'conversations',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

INSERT INTO message_search (message_search) VALUES ('rebuild');
INSERT INTO title_search (title_search) VALUES ('rebuild');

CREATE TRIGGER message_search_added AFTER INSERT ON messages
BEGIN
    INSERT INTO message_search (rowid, content) VALUES (NEW.rowid, NEW.content);
END;

-- An external content index is told what it held for the row (the old text) to take it out.
CREATE TRIGGER message_search_changed AFTER UPDATE OF content ON messages
WHEN OLD.content IS NOT NEW.content
BEGIN
    INSERT INTO message_search (message_search, rowid, content)
    VALUES ('delete', OLD.rowid, OLD.content);
    INSERT INTO message_search (rowid, content) VALUES (NEW.rowid, NEW.content);
END;

CREATE TRIGGER message_search_removed AFTER DELETE ON messages
BEGIN
    INSERT INTO message_search (message_search, rowid, content)
    VALUES ('delete', OLD.rowid, OLD.content);
END;

CREATE TRIGGER title_search_added AFTER INSERT ON conversations
BEGIN
    INSERT INTO title_search (rowid, title) VALUES (NEW.rowid, NEW.title);
END;

CREATE TRIGGER title_search_changed AFTER UPDATE OF title ON conversations
WHEN OLD.title IS NOT NEW.title
BEGIN
    INSERT INTO title_search (title_search, rowid, title) VALUES ('delete', OLD.rowid, OLD.title);
    INSERT INTO title_search (rowid, title) VALUES (NEW.rowid, NEW.title);
END;

CREATE TRIGGER title_search_removed AFTER DELETE ON conversations
BEGIN
    INSERT INTO title_search (title_search, rowid, title) VALUES ('delete', OLD.rowid, OLD.title);
END;
