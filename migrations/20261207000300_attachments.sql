-- Attachments (issue 26). The bytes live in the database, content-addressed per person: one
-- `blobs` row per distinct SHA-256 a person uploaded, its bytes in `blob_chunks` of at most
-- 256 KiB each, so an upload is written and a download read a chunk at a time (never whole in
-- memory), `rill backup` (VACUUM INTO) copies them with everything else in one consistent
-- snapshot, and a purge deletes them in the same transaction as the messages that used them.
-- Blobs are never shared between people: two people uploading the same file store it twice,
-- so nothing about one person's files can be learned by another.
CREATE TABLE blobs (
    owner      TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL CHECK (size >= 0),
    -- The type found in the bytes (never the name's): what the blob is served as.
    mime       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner, sha256)
) WITHOUT ROWID;

CREATE TABLE blob_chunks (
    owner  TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    seq    INTEGER NOT NULL CHECK (seq >= 0),
    data   BLOB NOT NULL,
    PRIMARY KEY (owner, sha256, seq),
    FOREIGN KEY (owner, sha256) REFERENCES blobs (owner, sha256) ON DELETE CASCADE
) WITHOUT ROWID;

-- One upload: a name the person gave it and the blob it holds.
CREATE TABLE attachments (
    id         TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    name       TEXT NOT NULL,
    -- image | text | file: what the model is sent (an image, a text block, nothing).
    kind       TEXT NOT NULL CHECK (kind IN ('image', 'text', 'file')),
    created_at INTEGER NOT NULL,
    FOREIGN KEY (owner, sha256) REFERENCES blobs (owner, sha256)
);

CREATE INDEX attachments_by_owner ON attachments (owner, created_at);
CREATE INDEX attachments_by_blob ON attachments (owner, sha256);

-- What a question carries, by its turn (the browser's id, known before the question is
-- stored, so the links are written before the send and a repeated send writes nothing new).
-- Scoped by owner like everything else: a link is read only with its conversation's owner.
-- An edit or a regeneration is a new turn that links the same uploads again.
CREATE TABLE turn_attachments (
    owner         TEXT NOT NULL,
    turn_id       TEXT NOT NULL,
    position      INTEGER NOT NULL CHECK (position >= 0),
    attachment_id TEXT NOT NULL REFERENCES attachments (id),
    PRIMARY KEY (owner, turn_id, position)
) WITHOUT ROWID;

CREATE INDEX turn_attachments_by_attachment ON turn_attachments (attachment_id);
