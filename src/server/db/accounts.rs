//! Users, site settings, the audit log and known devices, on both engines. The engines differ
//! in two ways here: names compare without case (SQLite: the column's NOCASE; Postgres:
//! `lower()`, which its unique index is on), and so do LIKE filters (SQLite's LIKE ignores ASCII
//! case; Postgres's ILIKE).

use uuid::Uuid;

use super::usage::MONTHLY_CAP;
use super::{now_ms, Db, DbError, Engine, Owner};
use crate::model::accounts::{AuditEntry, SiteSettings, Theme, UserView};

/// A user as stored.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub disabled_at: Option<i64>,
    pub monthly_budget_usd: Option<f64>,
    pub session_epoch: i64,
    /// The page's colours: `model::accounts::Theme` as text.
    pub theme: String,
    /// A service account: API keys only, never signed in.
    pub service: bool,
}

impl User {
    /// Whose data this user's requests touch.
    pub fn owner(&self) -> Owner {
        Owner(self.id.clone())
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

const USER_COLUMNS: &str =
    "id, username, password_hash, is_admin, disabled_at, monthly_budget_usd, session_epoch, theme, \
     service";

/// What a new user starts with.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: Option<&'a str>,
    pub is_admin: bool,
    pub monthly_budget_usd: Option<f64>,
    /// A service account (no password then).
    pub service: bool,
}

/// Creates a user; `None` if the name is taken (names compare without case).
pub async fn create_user(db: &Db, new: NewUser<'_>) -> Result<Option<User>, DbError> {
    insert_user(db, new, None).await
}

/// Creates a user who signs in through the identity provider `issuer` as `subject`; `None` if
/// the name is taken or that subject already has a user.
pub async fn create_oidc_user(
    db: &Db,
    new: NewUser<'_>,
    issuer: &str,
    subject: &str,
) -> Result<Option<User>, DbError> {
    insert_user(db, new, Some((issuer, subject))).await
}

/// `identity`: the provider's issuer and subject, for a user who signs in through it.
async fn insert_user(
    db: &Db,
    new: NewUser<'_>,
    identity: Option<(&str, &str)>,
) -> Result<Option<User>, DbError> {
    let id = Uuid::new_v4().to_string();
    let now = now_ms();
    let (issuer, subject) = identity.unzip();
    let inserted = on_writer!(db, |pool| {
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, is_admin, monthly_budget_usd,
                                created_at, updated_at, oidc_issuer, oidc_subject, service)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(new.username)
        .bind(new.password_hash)
        .bind(new.is_admin)
        .bind(new.monthly_budget_usd)
        .bind(now)
        .bind(now)
        .bind(issuer)
        .bind(subject)
        .bind(new.service)
        .execute(pool)
        .await
        .map(|_| ())
    });
    match inserted {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
        other => other?,
    };
    Ok(Some(User {
        id,
        username: new.username.to_owned(),
        password_hash: new.password_hash.map(str::to_owned),
        is_admin: new.is_admin,
        disabled_at: None,
        monthly_budget_usd: new.monthly_budget_usd,
        session_epoch: 0,
        theme: Theme::System.as_str().to_owned(),
        service: new.service,
    }))
}

/// The user who signs in through the identity provider `issuer` as `subject`.
pub async fn user_by_oidc(db: &Db, issuer: &str, subject: &str) -> Result<Option<User>, DbError> {
    let sql =
        format!("SELECT {USER_COLUMNS} FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2");
    Ok(on_reader!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(issuer)
            .bind(subject)
            .fetch_optional(pool)
            .await
    })?)
}

/// Makes the user an admin or not (the identity provider's admin group decides for its users).
pub async fn set_admin(db: &Db, id: &str, is_admin: bool) -> Result<(), DbError> {
    on_writer!(db, |pool| {
        sqlx::query("UPDATE users SET is_admin = $1, updated_at = $2 WHERE id = $3")
            .bind(is_admin)
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// Replaces the groups the identity provider named for the user.
pub async fn set_idp_groups(db: &Db, user_id: &str, groups: &[String]) -> Result<(), DbError> {
    in_transaction!(db, |tx| {
        sqlx::query("DELETE FROM user_idp_groups WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for name in groups {
            sqlx::query(
                "INSERT INTO user_idp_groups (user_id, name) VALUES ($1, $2)
                 ON CONFLICT (user_id, name) DO NOTHING",
            )
            .bind(user_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

/// The groups the identity provider named for the user at their latest sign-in, by name.
pub async fn idp_groups(db: &Db, user_id: &str) -> Result<Vec<String>, DbError> {
    Ok(on_reader!(db, |pool| {
        sqlx::query_scalar("SELECT name FROM user_idp_groups WHERE user_id = $1 ORDER BY name")
            .bind(user_id)
            .fetch_all(pool)
            .await
    })?)
}

pub async fn user_by_id(db: &Db, id: &str) -> Result<Option<User>, DbError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(on_reader!(db, |pool| {
        sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
    })?)
}

/// The user of that name, whatever its case.
pub async fn user_by_name(db: &Db, username: &str) -> Result<Option<User>, DbError> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {}",
        match db.engine() {
            Engine::Sqlite => "username = $1",
            Engine::Postgres => "lower(username) = lower($1)",
        }
    );
    Ok(on_reader!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(username)
            .fetch_optional(pool)
            .await
    })?)
}

pub async fn count_users(db: &Db) -> Result<i64, DbError> {
    Ok(on_reader!(db, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(pool)
            .await
    })?)
}

/// A page of users by name with their spending in `month` (`2026-12`): at most `limit` after
/// the name `after`, those whose name holds `filter`.
pub async fn list_users(
    db: &Db,
    month: &str,
    filter: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<UserView>, DbError> {
    type Row = (String, String, bool, bool, Option<i64>, Option<f64>, f64);
    // Ordered as SQLite's NOCASE orders: lower case, then byte by byte (not the server's
    // locale, which would set punctuation aside).
    let (name, like) = match db.engine() {
        Engine::Sqlite => ("u.username", "LIKE"),
        Engine::Postgres => ("lower(u.username) COLLATE \"C\"", "ILIKE"),
    };
    let sql = format!(
        "SELECT u.id, u.username, u.is_admin, u.service, u.disabled_at, u.monthly_budget_usd,
                (SELECT {spent} FROM spending WHERE owner = u.id AND month = $1)
         FROM users u
         WHERE ($2 IS NULL OR {name} > {after}) AND u.username {like} $3 ESCAPE '\\'
         ORDER BY {name} LIMIT $4",
        spent = super::usage::SPENT,
        after = match db.engine() {
            Engine::Sqlite => "$2",
            Engine::Postgres => "lower($2) COLLATE \"C\"",
        },
    );
    let pattern = contains_pattern(filter);
    let rows: Vec<Row> = on_reader!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(month)
            .bind(after)
            .bind(&pattern)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(id, username, is_admin, service, disabled_at, monthly_budget_usd, month_cost_usd)| {
                UserView {
                    id,
                    username,
                    is_admin,
                    service,
                    disabled: disabled_at.is_some(),
                    monthly_budget_usd,
                    month_cost_usd,
                }
            },
        )
        .collect())
}

/// A LIKE pattern for text holding `filter`, LIKE's own wildcards in it matched as themselves
/// (with `ESCAPE '\'`).
fn contains_pattern(filter: &str) -> String {
    format!(
        "%{}%",
        filter
            .trim()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// Sets a new password and ends every session signed in before it; the browsers known to the
/// account are forgotten (they sign in with the new password to be known again). False if no
/// such user.
pub async fn set_password(db: &Db, id: &str, password_hash: &str) -> Result<bool, DbError> {
    in_transaction!(db, |tx| {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $1, session_epoch = session_epoch + 1,
                              updated_at = $2
             WHERE id = $3",
        )
        .bind(password_hash)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(FORGET_DEVICES)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    })
}

/// A disabled user cannot sign in, their sessions stop working at once, and the browsers known
/// to the account are forgotten.
pub async fn set_disabled(db: &Db, id: &str, disabled: bool) -> Result<bool, DbError> {
    let now = now_ms();
    in_transaction!(db, |tx| {
        let done = sqlx::query("UPDATE users SET disabled_at = $1, updated_at = $2 WHERE id = $3")
            .bind(disabled.then_some(now))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if disabled {
            sqlx::query(FORGET_DEVICES)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    })
}

/// Forgets every browser known to the account `$1`.
const FORGET_DEVICES: &str = "DELETE FROM known_devices WHERE user_id = $1";

/// Keeps the page's colours with the account.
pub async fn set_theme(db: &Db, id: &str, theme: Theme) -> Result<(), DbError> {
    on_writer!(db, |pool| {
        sqlx::query("UPDATE users SET theme = $1, updated_at = $2 WHERE id = $3")
            .bind(theme.as_str())
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

pub async fn set_budget(
    db: &Db,
    id: &str,
    monthly_budget_usd: Option<f64>,
) -> Result<bool, DbError> {
    let done = on_writer!(db, |pool| {
        sqlx::query("UPDATE users SET monthly_budget_usd = $1, updated_at = $2 WHERE id = $3")
            .bind(monthly_budget_usd)
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(done == 1)
}

const OPEN_SIGNUP: &str = "open_signup";
const DEFAULT_BUDGET: &str = "default_budget_usd";
/// Stored only when off (`"off"`): sharing is on unless an admin turned it off.
const SHARING: &str = "sharing";

pub async fn site_settings(db: &Db) -> Result<SiteSettings, DbError> {
    let rows: Vec<(String, String)> = on_reader!(db, |pool| {
        sqlx::query_as("SELECT key, value FROM site_settings")
            .fetch_all(pool)
            .await
    })?;
    let value = |key: &str| rows.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    Ok(SiteSettings {
        open_signup: value(OPEN_SIGNUP) == Some("true"),
        default_budget_usd: value(DEFAULT_BUDGET).and_then(|v| v.parse().ok()),
        monthly_cap_usd: value(MONTHLY_CAP).and_then(|v| v.parse().ok()),
        sharing: value(SHARING) != Some("off"),
    })
}

pub async fn set_site_settings(db: &Db, settings: &SiteSettings) -> Result<(), DbError> {
    let values = [
        (OPEN_SIGNUP, Some(settings.open_signup.to_string())),
        (
            DEFAULT_BUDGET,
            settings.default_budget_usd.map(|b| b.to_string()),
        ),
        (MONTHLY_CAP, settings.monthly_cap_usd.map(|b| b.to_string())),
        (SHARING, (!settings.sharing).then(|| "off".to_owned())),
    ];
    in_transaction!(db, |tx| {
        for (key, value) in &values {
            match value {
                Some(value) => {
                    sqlx::query(
                        "INSERT INTO site_settings (key, value) VALUES ($1, $2)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(*key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM site_settings WHERE key = $1")
                        .bind(*key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    })
}

/// An event for the audit log, stamped when it is written.
pub struct NewAuditEntry<'a> {
    pub actor: Option<&'a str>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub address: Option<String>,
    pub detail: Option<String>,
}

/// Records an event in the audit log.
pub async fn audit(db: &Db, entry: &NewAuditEntry<'_>) -> Result<(), DbError> {
    on_writer!(db, |pool| {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, address, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now_ms())
        .bind(entry.actor)
        .bind(entry.action)
        .bind(entry.target)
        .bind(&entry.address)
        .bind(&entry.detail)
        .execute(pool)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Records a failed sign-in: the hour's entry for this account and address counts one more,
/// or a new entry begins.
pub async fn audit_failure(db: &Db, target: &str, address: Option<&str>) -> Result<(), DbError> {
    const ACTION: &str = "sign-in failed";
    let now = now_ms();
    in_transaction!(db, |tx| {
        let counted = sqlx::query(
            "UPDATE audit_log SET count = count + 1, at = $1
             WHERE id = (SELECT id FROM audit_log
                          WHERE action = $2 AND target = $3 AND address IS NOT DISTINCT FROM $4
                            AND at >= $5
                          ORDER BY id DESC LIMIT 1)",
        )
        .bind(now)
        .bind(ACTION)
        .bind(target)
        .bind(address)
        .bind(now.saturating_sub(3_600_000))
        .execute(&mut *tx)
        .await?;
        if counted.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, target, address, detail)
                 VALUES ($1, NULL, $2, $3, $4, NULL)",
            )
            .bind(now)
            .bind(ACTION)
            .bind(target)
            .bind(address)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

/// Audit entries, newest first: `limit` of them before the entry `before` (an id; `None`: the
/// newest), those whose who, what, whom, address or detail contain `filter` (any case).
pub async fn audit_page(
    db: &Db,
    filter: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditEntry>, DbError> {
    type Row = (
        i64,
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
    );
    let pattern = contains_pattern(filter);
    let (at, like) = match db.engine() {
        Engine::Sqlite => (
            "strftime('%Y-%m-%d %H:%M:%S', at / 1000, 'unixepoch')",
            "LIKE",
        ),
        Engine::Postgres => (
            "to_char(to_timestamp(at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
            "ILIKE",
        ),
    };
    let sql = format!(
        "SELECT id, {at}, actor, action, target, address, detail, count FROM audit_log
          WHERE ($1 IS NULL OR id < $1)
            AND ($2 = '%%' OR actor {like} $2 ESCAPE '\\' OR action {like} $2 ESCAPE '\\'
                 OR target {like} $2 ESCAPE '\\' OR address {like} $2 ESCAPE '\\'
                 OR detail {like} $2 ESCAPE '\\')
          ORDER BY id DESC LIMIT $3"
    );
    let rows: Vec<Row> = on_reader!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(before)
            .bind(&pattern)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(id, at, actor, action, target, address, detail, count)| AuditEntry {
                id,
                at,
                actor,
                action,
                target,
                address,
                detail,
                count: u32::try_from(count).unwrap_or(u32::MAX),
            },
        )
        .collect())
}

/// Browsers an account keeps known, newest first; older ones are forgotten.
const DEVICES_PER_USER: i64 = 20;

/// The user a known browser's token digest belongs to.
pub async fn device_user(db: &Db, token_digest: &str) -> Result<Option<String>, DbError> {
    Ok(on_reader!(db, |pool| {
        sqlx::query_scalar("SELECT user_id FROM known_devices WHERE token_digest = $1")
            .bind(token_digest)
            .fetch_optional(pool)
            .await
    })?)
}

/// Remembers (or refreshes) a browser `user_id` signed in from; keeps the newest few.
pub async fn remember_device(db: &Db, user_id: &str, token_digest: &str) -> Result<(), DbError> {
    let now = now_ms();
    in_transaction!(db, |tx| {
        sqlx::query(
            "INSERT INTO known_devices (token_digest, user_id, created_at, last_seen_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (token_digest) DO UPDATE SET last_seen_at = excluded.last_seen_at
             WHERE known_devices.user_id = excluded.user_id",
        )
        .bind(token_digest)
        .bind(user_id)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM known_devices WHERE user_id = $1 AND token_digest NOT IN
                (SELECT token_digest FROM known_devices WHERE user_id = $1
                  ORDER BY last_seen_at DESC LIMIT $2)",
        )
        .bind(user_id)
        .bind(DEVICES_PER_USER)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    })
}
