-- Search finds words whatever their diacritics (`resume` finds `résumé`), as SQLite's index does
-- (unicode61 with remove_diacritics): a text search configuration `rill_search`, the `simple` one
-- with `unaccent` before it for every kind of word that can carry a mark. db/search.rs queries
-- through it, and the search columns are computed through it.
--
-- `unaccent` ships with Postgres (contrib; Debian's postgresql-15 package has it) and is a
-- trusted extension (Postgres 13 on): the database's owner may create it without being a
-- superuser. A role that owns nothing needs it created once by one that does.
CREATE EXTENSION IF NOT EXISTS unaccent;

CREATE TEXT SEARCH CONFIGURATION rill_search (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION rill_search
    ALTER MAPPING FOR word, numword, hword, numhword, hword_part, hword_numpart
    WITH unaccent, simple;

-- A generated column's expression cannot be changed in place before Postgres 17: each is
-- computed afresh (their GIN indexes go with them and are made again).
ALTER TABLE conversations DROP COLUMN title_search;
ALTER TABLE conversations
    ADD COLUMN title_search tsvector GENERATED ALWAYS AS (to_tsvector('rill_search', title)) STORED;
CREATE INDEX conversations_title_search ON conversations USING GIN (title_search);

ALTER TABLE messages DROP COLUMN content_search;
ALTER TABLE messages
    ADD COLUMN content_search tsvector GENERATED ALWAYS AS (to_tsvector('rill_search', content)) STORED;
CREATE INDEX messages_content_search ON messages USING GIN (content_search);
