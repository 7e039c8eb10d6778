-- How many messages before each question on its branch a prompt could send (questions, and
-- replies with text that did not fail: `turns::prompt`'s rule), kept like the other `prior_*`
-- figures, so that a send in a long conversation reads only the turns that can fit its model's
-- window and still says how many earlier messages were left out.
ALTER TABLE messages ADD COLUMN prior_sendable INTEGER NOT NULL DEFAULT 0;

WITH RECURSIVE walk(conversation_id, turn_id, sendable) AS (
    SELECT conversation_id, turn_id, 0
      FROM messages WHERE role = 'user' AND parent_turn_id IS NULL
    UNION ALL
    SELECT c.conversation_id, c.turn_id,
           w.sendable + (SELECT COUNT(*) FROM messages
                          WHERE turn_id = w.turn_id
                            AND (role = 'user' OR (content <> '' AND status <> 'failed')))
      FROM walk w
      JOIN messages c ON c.conversation_id = w.conversation_id AND c.parent_turn_id = w.turn_id
                     AND c.role = 'user')
UPDATE messages
   SET prior_sendable = walk.sendable
  FROM walk
 WHERE messages.turn_id = walk.turn_id AND messages.role = 'user';
