-- Service accounts (issue 29): the twin of migrations/20261211000100_service_accounts.sql.
ALTER TABLE users ADD COLUMN service BOOLEAN NOT NULL DEFAULT FALSE;
