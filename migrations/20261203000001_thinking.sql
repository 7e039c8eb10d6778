-- Thinking (issue 12): the reasoning a model streams before its answer, stored apart from the
-- answer's text so that it is shown apart and never sent back to a model as history.

ALTER TABLE messages ADD COLUMN thinking TEXT NOT NULL DEFAULT '';
