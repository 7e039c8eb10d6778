-- Which groups each run of the ledger counts for (issue 29): the groups its owner was in when it
-- was reserved. A group's month is the sum of its rows, so someone who joins mid-month brings
-- none of what they spent before, and someone who leaves takes none of what they spent in it: a
-- group's budget cannot be passed by moving people out and in again.
CREATE TABLE group_spending (
    group_id    TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    spending_id INTEGER NOT NULL REFERENCES spending (id) ON DELETE CASCADE,
    -- The run's month, copied so that a group's month is read from this table's index.
    month       TEXT NOT NULL,
    PRIMARY KEY (group_id, spending_id)
);
CREATE INDEX group_spending_by_month ON group_spending (group_id, month);
-- A run reserved again finds its rows.
CREATE INDEX group_spending_by_spending ON group_spending (spending_id);

-- What was spent before this table, counted for the groups its owner is in now (as it was).
INSERT INTO group_spending (group_id, spending_id, month)
SELECT m.group_id, s.id, s.month FROM spending s JOIN group_members m ON m.user_id = s.owner
UNION
SELECT g.id, s.id, s.month FROM spending s
  JOIN user_idp_groups i ON i.user_id = s.owner
  JOIN user_groups g ON g.idp_group = i.name;
