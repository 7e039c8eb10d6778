-- Write amplification (issue 27): a running reply's checkpoints append only the text that came
-- since the last one, as a piece here, instead of rewriting the whole reply (and reindexing it
-- for search) every 250 ms. The reply's row is rewritten whole only now and then (each time its
-- text has doubled since the last whole write, when it goes quiet, and at its end), and each
-- whole write deletes the pieces it took in: the row's text followed by its pieces, in order, is
-- what is saved. Readers join them (db/messages.rs); a crash's recovery folds them into the row.
-- Pieces belong to a reply that is streaming; none outlive its end.
CREATE TABLE reply_pieces (
    id          INTEGER PRIMARY KEY,
    message_id  TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    content     TEXT NOT NULL,
    thinking    TEXT NOT NULL
);

CREATE INDEX reply_pieces_by_message ON reply_pieces (message_id);
