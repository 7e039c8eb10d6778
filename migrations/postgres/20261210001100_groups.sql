-- Groups (issue 29): the twin of migrations/20261210001100_groups.sql (read that one's notes).
CREATE TABLE user_groups (
    id                 TEXT PRIMARY KEY NOT NULL,
    name               TEXT NOT NULL UNIQUE,
    monthly_budget_usd DOUBLE PRECISION CHECK (monthly_budget_usd IS NULL OR monthly_budget_usd >= 0),
    idp_group          TEXT,
    created_at         BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_by_user ON group_members (user_id);

CREATE TABLE group_models (
    group_id TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    model    TEXT NOT NULL,
    PRIMARY KEY (group_id, model)
);

CREATE TABLE budget_alerts (
    scope     TEXT NOT NULL,
    scope_id  TEXT NOT NULL,
    month     TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    sent_at   BIGINT,
    attempts  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, scope_id, month, threshold)
);
