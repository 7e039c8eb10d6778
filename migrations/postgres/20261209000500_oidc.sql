-- OpenID Connect sign-in (issue 29). A user who signs in through the identity provider is
-- found by the provider's issuer and subject (never by name or address, which people can
-- change at the provider); both NULL for password and proxy accounts.
ALTER TABLE users ADD COLUMN oidc_issuer TEXT;
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_by_oidc ON users (oidc_issuer, oidc_subject)
    WHERE oidc_subject IS NOT NULL;

-- The groups the provider's group claim named at the user's latest sign-in, replaced whole at
-- each one: what Rill's groups map from.
CREATE TABLE user_idp_groups (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);
