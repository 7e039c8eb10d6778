-- Sessions are stored under SHA-256 of their id from now on (issue 22: the table held the
-- cookie's value itself, so anyone who could read the file could take over a session). Rows
-- stored under the id itself can no longer be found; they are removed, and people sign in once
-- more.
DELETE FROM tower_sessions;
