-- Search speed (issue 25): the message index is keyed per owner, so one person's search reads
-- only their own part of it (no join per match to learn whose a message is, and other
-- people's messages cost nothing), and "their newest matches" is a walk of one rowid range.
--
-- Each message's index key (its `doc`) is its owner's number times 2^40 plus the message's
-- rowid: an owner's messages are one contiguous range of keys, in the order they were stored.
-- (2^40 messages per database and 2^23 owners before the key would overflow.) The index keeps
-- no copy of the text: it reads it through `message_search_rows`, a view from keys to
-- messages, for the few snippets a search shows. Owners are numbered as their first
-- conversation is stored; a conversation never changes owner.
--
-- Triggers keep it all in the same transaction as every change, as before.

DROP TRIGGER message_search_added;
DROP TRIGGER message_search_changed;
DROP TRIGGER message_search_removed;
DROP TABLE message_search;

CREATE TABLE search_owners (
    number INTEGER PRIMARY KEY,
    owner  TEXT NOT NULL UNIQUE
);

CREATE TABLE message_search_docs (
    doc     INTEGER PRIMARY KEY,
    -- The message's rowid.
    message INTEGER NOT NULL UNIQUE
);

CREATE VIEW message_search_rows AS
    SELECT d.doc AS doc, m.content AS content
      FROM message_search_docs d JOIN messages m ON m.rowid = d.message;

INSERT INTO search_owners (owner) SELECT DISTINCT owner FROM conversations ORDER BY owner;
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

INSERT INTO message_search (message_search) VALUES ('rebuild');

CREATE TRIGGER search_owner_added AFTER INSERT ON conversations
BEGIN
    INSERT OR IGNORE INTO search_owners (owner) VALUES (NEW.owner);
END;

-- The conversation exists (a foreign key), and so does its owner's number (the trigger above).
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
