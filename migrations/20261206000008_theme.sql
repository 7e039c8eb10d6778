-- The page's colours each person chose (issue 24): 'system' follows the device. Kept on the
-- account so a new browser gets it at sign-in; the page itself reads a cookie.
ALTER TABLE users ADD COLUMN theme TEXT NOT NULL DEFAULT 'system'
    CHECK (theme IN ('system', 'light', 'dark'));
