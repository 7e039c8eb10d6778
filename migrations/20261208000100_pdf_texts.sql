-- A PDF's text (issue 26), read once when it is uploaded (attachments/pdf.rs) and sent to the
-- model as a text block with the file's name. Kept per blob, so it goes with the blob: an empty
-- text is a PDF with none to read (a scan), which the model and the person are told.
CREATE TABLE pdf_texts (
    owner  TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    text   TEXT NOT NULL,
    -- 1: the text went on past what is kept (attachments/pdf.rs, MAX_TEXT_BYTES).
    cut    INTEGER NOT NULL CHECK (cut IN (0, 1)),
    PRIMARY KEY (owner, sha256),
    FOREIGN KEY (owner, sha256) REFERENCES blobs (owner, sha256) ON DELETE CASCADE
) WITHOUT ROWID;
