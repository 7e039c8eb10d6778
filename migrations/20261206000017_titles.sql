-- Titles from the first exchange (issue 25). `title_source` says who wrote a conversation's
-- title: its first words (as stored with the first message), the model (asked once the first
-- reply is complete), or the person (a rename, which nothing overwrites). A model's title is
-- stored only over first words, in one statement, so a rename racing it always wins.
ALTER TABLE conversations ADD COLUMN title_source TEXT NOT NULL DEFAULT 'words'
    CHECK (title_source IN ('words', 'model', 'person'));

-- What a run of the ledger was for: a reply, or a conversation's title. A title's run is keyed
-- by its question's message id (run 1), which no reply's run ever is.
ALTER TABLE spending ADD COLUMN purpose TEXT NOT NULL DEFAULT 'reply'
    CHECK (purpose IN ('reply', 'title'));
