-- Search speed (issue 25): both indexes are keyed per owner, so one person's search reads
-- only their own part of them (no join per match to learn whose a row is, and other people's
-- rows cost nothing), and "their newest matches" is a walk back through one rowid range.
--
-- A row's index key (its `doc`) is its owner's number times 2^40 plus the row's own rowid: an
-- owner's messages (and titles) are one contiguous range of keys, in the order they were
-- stored. (2^40 rows per table and 2^23 owners before a key would overflow.) The indexes keep
-- no copy of the text, as before: they read it through a view from keys to rows, for the few
-- snippets a search shows. Owners are numbered as their first conversation is stored; a
-- conversation never changes owner.
--
-- Triggers keep it all in the same transaction as every change, as before.

DROP TRIGGER message_search_added;
DROP TRIGGER message_search_changed;
DROP TRIGGER message_search_removed;
DROP TABLE message_search;
DROP TRIGGER title_search_added;
DROP TRIGGER title_search_changed;
DROP TRIGGER title_search_removed;
DROP TABLE title_search;

CREATE TABLE search_owners (
    number INTEGER PRIMARY KEY,
    owner  TEXT NOT NULL UNIQUE
);

CREATE TABLE message_search_docs (
    doc     INTEGER PRIMARY KEY,
    -- The message's rowid.
    message INTEGER NOT NULL UNIQUE
);

CREATE TABLE title_search_docs (
    doc          INTEGER PRIMARY KEY,
    -- The conversation's rowid.
    conversation INTEGER NOT NULL UNIQUE
);

CREATE VIEW message_search_rows AS
    SELECT d.doc AS doc, m.content AS content
      FROM message_search_docs d JOIN messages m ON m.rowid = d.message;

CREATE VIEW title_search_rows AS
    SELECT d.doc AS doc, c.title AS title
      FROM title_search_docs d JOIN conversations c ON c.rowid = d.conversation;

INSERT INTO search_owners (owner) SELECT DISTINCT owner FROM conversations ORDER BY owner;
INSERT INTO title_search_docs (doc, conversation)
    SELECT (o.number << 40) | c.rowid, c.rowid
      FROM conversations c JOIN search_owners o ON o.owner = c.owner;
INSERT INTO message_search_docs (doc, message)
    SELECT (o.number << 40) | m.rowid, m.rowid
      FROM messages m
      JOIN conversations c ON c.id = m.conversation_id
      JOIN search_owners o ON o.owner = c.owner;

CREATE VIRTUAL TABLE message_search USING fts5(
    content,
    content = 'message_search_rows',
    content_rowid = 'doc',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

CREATE VIRTUAL TABLE title_search USING fts5(
    title,
    content = 'title_search_rows',
    content_rowid = 'doc',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

INSERT INTO message_search (message_search) VALUES ('rebuild');
INSERT INTO title_search (title_search) VALUES ('rebuild');

-- One trigger, its steps in order: the owner's number, the title's key, the title.
CREATE TRIGGER title_search_added AFTER INSERT ON conversations
BEGIN
    INSERT OR IGNORE INTO search_owners (owner) VALUES (NEW.owner);
    INSERT INTO title_search_docs (doc, conversation)
    SELECT (number << 40) | NEW.rowid, NEW.rowid FROM search_owners WHERE owner = NEW.owner;
    INSERT INTO title_search (rowid, title)
    SELECT doc, NEW.title FROM title_search_docs WHERE conversation = NEW.rowid;
END;

CREATE TRIGGER title_search_changed AFTER UPDATE OF title ON conversations
WHEN OLD.title IS NOT NEW.title
BEGIN
    INSERT INTO title_search (title_search, rowid, title)
    SELECT 'delete', doc, OLD.title FROM title_search_docs WHERE conversation = OLD.rowid;
    INSERT INTO title_search (rowid, title)
    SELECT doc, NEW.title FROM title_search_docs WHERE conversation = NEW.rowid;
END;

CREATE TRIGGER title_search_removed AFTER DELETE ON conversations
BEGIN
    INSERT INTO title_search (title_search, rowid, title)
    SELECT 'delete', doc, OLD.title FROM title_search_docs WHERE conversation = OLD.rowid;
    DELETE FROM title_search_docs WHERE conversation = OLD.rowid;
END;

-- The conversation exists (a foreign key), and so does its owner's number (stored with it).
CREATE TRIGGER message_search_added AFTER INSERT ON messages
BEGIN
    INSERT INTO message_search_docs (doc, message)
    SELECT (o.number << 40) | NEW.rowid, NEW.rowid
      FROM conversations c JOIN search_owners o ON o.owner = c.owner
     WHERE c.id = NEW.conversation_id;
    INSERT INTO message_search (rowid, content)
    SELECT doc, NEW.content FROM message_search_docs WHERE message = NEW.rowid;
END;

-- An external content index is told what it held for the row (the old text) to take it out.
CREATE TRIGGER message_search_changed AFTER UPDATE OF content ON messages
WHEN OLD.content IS NOT NEW.content
BEGIN
    INSERT INTO message_search (message_search, rowid, content)
    SELECT 'delete', doc, OLD.content FROM message_search_docs WHERE message = OLD.rowid;
    INSERT INTO message_search (rowid, content)
    SELECT doc, NEW.content FROM message_search_docs WHERE message = NEW.rowid;
END;

CREATE TRIGGER message_search_removed AFTER DELETE ON messages
BEGIN
    INSERT INTO message_search (message_search, rowid, content)
    SELECT 'delete', doc, OLD.content FROM message_search_docs WHERE message = OLD.rowid;
    DELETE FROM message_search_docs WHERE message = OLD.rowid;
END;
