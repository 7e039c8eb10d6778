-- What each person stores, kept by the database itself (issue 22), so a per-person quota can be
-- checked before anything is written. Counted in bytes: the text and thinking of finished
-- messages (a reply being written counts from when it ends: checkpoints cost nothing extra),
-- conversation titles and system prompt revisions, of conversations not deleted. Triggers keep
-- the count in the same transaction as the change, so it can never drift from the data.

CREATE TABLE storage_used (
    owner TEXT PRIMARY KEY NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0
);

INSERT INTO storage_used (owner, bytes)
SELECT c.owner,
       SUM(octet_length(c.title)
           + COALESCE((SELECT SUM(CASE WHEN m.status = 'streaming' THEN 0
                                       ELSE octet_length(m.content) + octet_length(m.thinking) END)
                         FROM messages m WHERE m.conversation_id = c.id), 0)
           + COALESCE((SELECT SUM(octet_length(p.text))
                         FROM system_prompts p WHERE p.conversation_id = c.id), 0))
  FROM conversations c
 WHERE c.deleted_at IS NULL
 GROUP BY c.owner;

CREATE TRIGGER storage_message_added AFTER INSERT ON messages
WHEN NEW.status <> 'streaming'
 AND (SELECT deleted_at FROM conversations WHERE id = NEW.conversation_id) IS NULL
BEGIN
    INSERT INTO storage_used (owner, bytes)
    SELECT owner, octet_length(NEW.content) + octet_length(NEW.thinking)
      FROM conversations WHERE id = NEW.conversation_id
    ON CONFLICT (owner) DO UPDATE SET bytes = bytes + excluded.bytes;
END;

-- Checkpoints (streaming before and after) change nothing and do not reach the body.
CREATE TRIGGER storage_message_changed AFTER UPDATE OF content, thinking, status ON messages
WHEN (OLD.status <> 'streaming' OR NEW.status <> 'streaming')
 AND (SELECT deleted_at FROM conversations WHERE id = NEW.conversation_id) IS NULL
BEGIN
    INSERT INTO storage_used (owner, bytes)
    SELECT owner,
           (CASE WHEN NEW.status = 'streaming' THEN 0
                 ELSE octet_length(NEW.content) + octet_length(NEW.thinking) END)
         - (CASE WHEN OLD.status = 'streaming' THEN 0
                 ELSE octet_length(OLD.content) + octet_length(OLD.thinking) END)
      FROM conversations WHERE id = NEW.conversation_id
    ON CONFLICT (owner) DO UPDATE SET bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER storage_prompt_added AFTER INSERT ON system_prompts
WHEN (SELECT deleted_at FROM conversations WHERE id = NEW.conversation_id) IS NULL
BEGIN
    INSERT INTO storage_used (owner, bytes)
    SELECT owner, octet_length(NEW.text) FROM conversations WHERE id = NEW.conversation_id
    ON CONFLICT (owner) DO UPDATE SET bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER storage_prompt_removed AFTER DELETE ON system_prompts
WHEN (SELECT deleted_at FROM conversations WHERE id = OLD.conversation_id) IS NULL
BEGIN
    UPDATE storage_used SET bytes = bytes - octet_length(OLD.text)
     WHERE owner = (SELECT owner FROM conversations WHERE id = OLD.conversation_id);
END;

CREATE TRIGGER storage_conversation_added AFTER INSERT ON conversations
BEGIN
    INSERT INTO storage_used (owner, bytes) VALUES (NEW.owner, octet_length(NEW.title))
    ON CONFLICT (owner) DO UPDATE SET bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER storage_conversation_renamed AFTER UPDATE OF title ON conversations
WHEN NEW.deleted_at IS NULL AND OLD.deleted_at IS NULL
BEGIN
    UPDATE storage_used SET bytes = bytes + octet_length(NEW.title) - octet_length(OLD.title)
     WHERE owner = NEW.owner;
END;

-- Deleting a conversation frees its bytes at once (purging it later changes nothing here);
-- Undo counts them again.
CREATE TRIGGER storage_conversation_deleted AFTER UPDATE OF deleted_at ON conversations
WHEN (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)
BEGIN
    UPDATE storage_used
       SET bytes = bytes + (CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END) * (
               octet_length(NEW.title)
             + COALESCE((SELECT SUM(CASE WHEN m.status = 'streaming' THEN 0
                                         ELSE octet_length(m.content) + octet_length(m.thinking) END)
                           FROM messages m WHERE m.conversation_id = NEW.id), 0)
             + COALESCE((SELECT SUM(octet_length(p.text))
                           FROM system_prompts p WHERE p.conversation_id = NEW.id), 0))
     WHERE owner = NEW.owner;
END;
