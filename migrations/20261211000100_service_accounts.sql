-- Service accounts (issue 29): accounts for scripts and tools, not people. An admin makes one and
-- its API keys; it never signs in (no password, no identity provider, refused by the trusted
-- proxy's header), and has a budget and groups like anyone.
ALTER TABLE users ADD COLUMN service INTEGER NOT NULL DEFAULT 0 CHECK (service IN (0, 1));
