-- Limits counted in the database across replicas (see server/db/limits.rs): the replies each
-- replica is running per person, and each person's turn starts per minute.
CREATE TABLE replica_running (
    replica TEXT NOT NULL,
    owner   TEXT NOT NULL,
    running BIGINT NOT NULL,
    PRIMARY KEY (replica, owner)
);

CREATE TABLE turn_starts (
    owner  TEXT NOT NULL,
    -- Minutes since the epoch, by the database's clock.
    minute BIGINT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (owner, minute)
);
