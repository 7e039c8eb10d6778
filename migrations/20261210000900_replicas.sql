-- Which server process writes each streaming reply (issue 28). On SQLite one server holds the
-- file, so the column only names the process; the lease table is Postgres's (see
-- server/db/replicas.rs), created here too so both engines have the same tables.
ALTER TABLE messages ADD COLUMN replica TEXT;

CREATE TABLE replicas (
    id           TEXT PRIMARY KEY NOT NULL,
    started_at   INTEGER NOT NULL,
    -- The database's own clock, in ms: a replica is alive while this is within the lease.
    heartbeat_at INTEGER NOT NULL
);
