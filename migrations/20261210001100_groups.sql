-- Groups (issue 29): people belong to groups; a group may have a monthly budget in USD shared by
-- its members (on top of each person's own), and may limit which models its members use.
-- A group's members are those added by hand and, when it is linked to an identity provider's
-- group (`idp_group`), everyone whose latest sign-in named that group (`user_idp_groups`): so
-- members follow the provider at each sign-in with nothing to copy.
CREATE TABLE user_groups (
    id                 TEXT PRIMARY KEY NOT NULL,
    name               TEXT NOT NULL UNIQUE,
    monthly_budget_usd REAL CHECK (monthly_budget_usd IS NULL OR monthly_budget_usd >= 0),
    idp_group          TEXT,
    created_at         INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_by_user ON group_members (user_id);

-- The models a group's members may use; none: every model.
CREATE TABLE group_models (
    group_id TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    model    TEXT NOT NULL,
    PRIMARY KEY (group_id, model)
);

-- Budget warnings sent to `RILL_BUDGET_WEBHOOK`: one row per budget (`scope` user, group or
-- key, and its id), month and threshold (80 or 90 %), claimed by the insert, so a restart or a
-- second replica never sends one twice.
CREATE TABLE budget_alerts (
    scope     TEXT NOT NULL,
    scope_id  TEXT NOT NULL,
    month     TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    -- When the receiver took it; NULL while trying, or after every try failed.
    sent_at   INTEGER,
    attempts  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, scope_id, month, threshold)
);
