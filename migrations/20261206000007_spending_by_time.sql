-- The usage export reads a person's month a page at a time in the order the runs began: with
-- the time in the index, each page is a range of it, not a sort of the whole month. The index
-- serves the (owner, month) lookups the old one did.
DROP INDEX spending_by_owner_month;
CREATE INDEX spending_by_owner_month_at ON spending (owner, month, at);
