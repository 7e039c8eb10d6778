-- Limits counted in the database, for replicas on Postgres (see server/db/limits.rs); on SQLite
-- one process counts them in memory, and these tables stay empty.
CREATE TABLE replica_running (
    replica TEXT NOT NULL,
    owner   TEXT NOT NULL,
    running INTEGER NOT NULL,
    PRIMARY KEY (replica, owner)
);

CREATE TABLE turn_starts (
    owner  TEXT NOT NULL,
    -- Minutes since the epoch, by the database's clock.
    minute INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (owner, minute)
);
