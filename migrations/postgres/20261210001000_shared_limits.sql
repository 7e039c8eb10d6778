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

-- Sign-in throttles' attempts (see server/db/throttles.rs): one row per attempt counted, at
-- the database's clock in ms, kept while a window may still count it.
CREATE TABLE throttle_hits (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT NOT NULL,
    at  BIGINT NOT NULL
);
CREATE INDEX throttle_hits_by_key ON throttle_hits (key, at);
