-- Figures kept per turn, so that opening a conversation does not sum its whole history: each
-- question's row carries the totals of every message before its turn on its branch (tokens in
-- and out, cost, how many messages had a cost, whether any figure was estimated). A turn's
-- figures only change while it is the end of its branch (a reply being written, continued or
-- settled after a crash), so the totals stored below it never go stale.
ALTER TABLE messages ADD COLUMN prior_input_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN prior_output_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN prior_cost_usd REAL NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN prior_costed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN prior_estimated INTEGER NOT NULL DEFAULT 0;

-- The conversations stored so far: down every branch from each first question.
WITH RECURSIVE walk(conversation_id, turn_id, input, output, cost, costed, estimated) AS (
    SELECT conversation_id, turn_id, 0, 0, 0.0, 0, 0
      FROM messages WHERE role = 'user' AND parent_turn_id IS NULL
    UNION ALL
    SELECT c.conversation_id, c.turn_id,
           w.input + (SELECT COALESCE(SUM(input_tokens), 0) FROM messages WHERE turn_id = w.turn_id),
           w.output + (SELECT COALESCE(SUM(output_tokens), 0) FROM messages WHERE turn_id = w.turn_id),
           w.cost + (SELECT TOTAL(cost_usd) FROM messages WHERE turn_id = w.turn_id),
           w.costed + (SELECT COUNT(cost_usd) FROM messages WHERE turn_id = w.turn_id),
           MAX(w.estimated,
               (SELECT COALESCE(MAX(usage_estimated), 0) FROM messages WHERE turn_id = w.turn_id))
      FROM walk w
      JOIN messages c ON c.conversation_id = w.conversation_id AND c.parent_turn_id = w.turn_id
                     AND c.role = 'user')
UPDATE messages
   SET prior_input_tokens = walk.input, prior_output_tokens = walk.output,
       prior_cost_usd = walk.cost, prior_costed = walk.costed, prior_estimated = walk.estimated
  FROM walk
 WHERE messages.turn_id = walk.turn_id AND messages.role = 'user';
