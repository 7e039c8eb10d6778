-- Branches (issue 12): editing a question or regenerating an answer adds a sibling turn, so a
-- conversation is a tree of turns. `parent_turn_id` (on the question's row) is the turn before it
-- on its branch (NULL: the first); `current_turn_id` is the last turn of the branch on screen,
-- the one the next message follows and the history sent to a provider walks back from.
-- Positions stay unique and in creation order, so a branch read in position order is in order.

ALTER TABLE messages ADD COLUMN parent_turn_id TEXT;
ALTER TABLE conversations ADD COLUMN current_turn_id TEXT;

UPDATE messages SET parent_turn_id = (
    SELECT p.turn_id FROM messages p
    WHERE p.conversation_id = messages.conversation_id AND p.role = 'user'
      AND p.position < messages.position
    ORDER BY p.position DESC LIMIT 1)
WHERE role = 'user';

UPDATE conversations SET current_turn_id = (
    SELECT m.turn_id FROM messages m WHERE m.conversation_id = conversations.id
    ORDER BY m.position DESC LIMIT 1);

CREATE INDEX questions_by_parent ON messages (conversation_id, parent_turn_id) WHERE role = 'user';
