//! Users, site settings and the audit log.

use uuid::Uuid;

use super::{begin_write, now_ms, Db, DbError, Owner};
use crate::model::accounts::{AuditEntry, SiteSettings, UserView};

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
    "id, username, password_hash, is_admin, disabled_at, monthly_budget_usd, session_epoch";

/// What a new user starts with.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: Option<&'a str>,
    pub is_admin: bool,
    pub monthly_budget_usd: Option<f64>,
}

/// Creates a user; `None` if the name is taken (names compare without case).
pub async fn create_user(db: &Db, new: NewUser<'_>) -> Result<Option<User>, DbError> {
    let id = Uuid::new_v4().to_string();
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO users (id, username, password_hash, is_admin, monthly_budget_usd, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(new.username)
    .bind(new.password_hash)
    .bind(new.is_admin)
    .bind(new.monthly_budget_usd)
    .bind(now)
    .bind(now)
    .execute(db.writer())
    .await;
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
    }))
}

pub async fn user_by_id(db: &Db, id: &str) -> Result<Option<User>, DbError> {
    Ok(
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(db.reader())
            .await?,
    )
}

pub async fn user_by_name(db: &Db, username: &str) -> Result<Option<User>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = ?"
    ))
    .bind(username)
    .fetch_optional(db.reader())
    .await?)
}

pub async fn count_users(db: &Db) -> Result<i64, DbError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(db.reader())
        .await?;
    Ok(n)
}

/// Every user with this month's spending, by name.
pub async fn list_users(db: &Db) -> Result<Vec<UserView>, DbError> {
    type Row = (String, String, bool, Option<i64>, Option<f64>, f64);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT u.id, u.username, u.is_admin, u.disabled_at, u.monthly_budget_usd,
                (SELECT TOTAL(m.cost_usd) FROM conversations c
                   JOIN messages m ON m.conversation_id = c.id
                  WHERE c.owner = u.id AND m.role = 'assistant' AND m.created_at >= {})
         FROM users u ORDER BY u.username",
        super::usage::MONTH_START_MS
    ))
    .fetch_all(db.reader())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, username, is_admin, disabled_at, monthly_budget_usd, month_cost_usd)| UserView {
                id,
                username,
                is_admin,
                disabled: disabled_at.is_some(),
                monthly_budget_usd,
                month_cost_usd,
            },
        )
        .collect())
}

/// Sets a new password and ends every session signed in before it. False if no such user.
pub async fn set_password(db: &Db, id: &str, password_hash: &str) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1, updated_at = ?
         WHERE id = ?",
    )
    .bind(password_hash)
    .bind(now_ms())
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A disabled user cannot sign in, and their sessions stop working at once.
pub async fn set_disabled(db: &Db, id: &str, disabled: bool) -> Result<bool, DbError> {
    let now = now_ms();
    let done = sqlx::query("UPDATE users SET disabled_at = ?, updated_at = ? WHERE id = ?")
        .bind(disabled.then_some(now))
        .bind(now)
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_budget(
    db: &Db,
    id: &str,
    monthly_budget_usd: Option<f64>,
) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE users SET monthly_budget_usd = ?, updated_at = ? WHERE id = ?")
        .bind(monthly_budget_usd)
        .bind(now_ms())
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected() == 1)
}

const OPEN_SIGNUP: &str = "open_signup";
const DEFAULT_BUDGET: &str = "default_budget_usd";

pub async fn site_settings(db: &Db) -> Result<SiteSettings, DbError> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM site_settings")
        .fetch_all(db.reader())
        .await?;
    let value = |key: &str| rows.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    Ok(SiteSettings {
        open_signup: value(OPEN_SIGNUP) == Some("true"),
        default_budget_usd: value(DEFAULT_BUDGET).and_then(|v| v.parse().ok()),
    })
}

pub async fn set_site_settings(db: &Db, settings: &SiteSettings) -> Result<(), DbError> {
    let mut tx = begin_write(db).await?;
    let values = [
        (OPEN_SIGNUP, Some(settings.open_signup.to_string())),
        (
            DEFAULT_BUDGET,
            settings.default_budget_usd.map(|b| b.to_string()),
        ),
    ];
    for (key, value) in values {
        match value {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO site_settings (key, value) VALUES (?, ?)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM site_settings WHERE key = ?")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
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
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, address, detail) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(now_ms())
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.target)
    .bind(&entry.address)
    .bind(&entry.detail)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// The latest audit entries, newest first.
pub async fn recent_audit(db: &Db, limit: u32) -> Result<Vec<AuditEntry>, DbError> {
    type Row = (
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT strftime('%Y-%m-%d %H:%M:%S', at / 1000, 'unixepoch'), actor, action, target,
                    address, detail FROM audit_log
             ORDER BY at DESC, id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(at, actor, action, target, address, detail)| AuditEntry {
            at,
            actor,
            action,
            target,
            address,
            detail,
        })
        .collect())
}
