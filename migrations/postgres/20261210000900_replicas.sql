-- Which replica writes each streaming reply, and each replica's lease (issue 28; see
-- server/db/replicas.rs). A reply whose replica stopped renewing its lease is interrupted by
-- any other replica.
ALTER TABLE messages ADD COLUMN replica TEXT;

CREATE TABLE replicas (
    id           TEXT PRIMARY KEY NOT NULL,
    started_at   BIGINT NOT NULL,
    -- The database's own clock, in ms, so replicas' clocks need not agree.
    heartbeat_at BIGINT NOT NULL
);
