-- Which groups each run of the ledger counts for (issue 29): the twin of
-- migrations/20261211000200_group_spending.sql (read that one's notes).
CREATE TABLE group_spending (
    group_id    TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    spending_id BIGINT NOT NULL REFERENCES spending (id) ON DELETE CASCADE,
    month       TEXT NOT NULL,
    PRIMARY KEY (group_id, spending_id)
);
CREATE INDEX group_spending_by_month ON group_spending (group_id, month);
-- A run reserved again finds its rows.
CREATE INDEX group_spending_by_spending ON group_spending (spending_id);

INSERT INTO group_spending (group_id, spending_id, month)
SELECT m.group_id, s.id, s.month FROM spending s JOIN group_members m ON m.user_id = s.owner
UNION
SELECT g.id, s.id, s.month FROM spending s
  JOIN user_idp_groups i ON i.user_id = s.owner
  JOIN user_groups g ON g.idp_group = i.name;
