-- A PDF's text (issue 26), as migrations/20261208000100_pdf_texts.sql keeps it on SQLite: read
-- once at upload (attachments/pdf.rs), kept per blob and deleted with it; empty text is a scan.
CREATE TABLE pdf_texts (
    owner  TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    text   TEXT NOT NULL,
    -- The text went on past what is kept (attachments/pdf.rs, MAX_TEXT_BYTES).
    cut    BOOLEAN NOT NULL,
    PRIMARY KEY (owner, sha256),
    FOREIGN KEY (owner, sha256) REFERENCES blobs (owner, sha256) ON DELETE CASCADE
);
