//! API keys (see `migrations/…_api_keys.sql`): made, listed and revoked by their owner, looked
//! up by the SHA-256 of what a client presents, and what each has spent this month. The same
//! text serves both engines.

use uuid::Uuid;

use super::ids::TextUuid;
use super::usage::SPENT;
use super::{Db, DbError, Owner};
use crate::model::api_keys::{ApiKeyView, MAX_API_KEYS};

/// A key about to be stored: everything but the key itself, of which only the hash is kept.
pub struct NewKey<'a> {
    pub id: Uuid,
    pub key_hash: &'a str,
    pub prefix: &'a str,
    pub name: &'a str,
    pub monthly_budget_usd: Option<f64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

/// A key as a request through it needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredKey {
    pub id: Uuid,
    pub owner: Owner,
    pub name: String,
    pub monthly_budget_usd: Option<f64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// Stores a new key of `owner`, unless they hold [`MAX_API_KEYS`] unrevoked keys already
/// (`Ok(None)`).
pub async fn create_key(
    db: &Db,
    owner: &Owner,
    new: &NewKey<'_>,
) -> Result<Option<ApiKeyView>, DbError> {
    in_transaction!(db, |tx| {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM api_keys WHERE owner = $1 AND revoked_at IS NULL")
                .bind(&owner.0)
                .fetch_one(&mut *tx)
                .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_API_KEYS {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO api_keys (id, key_hash, prefix, owner, name, monthly_budget_usd,
                 expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(TextUuid(new.id))
        .bind(new.key_hash)
        .bind(new.prefix)
        .bind(&owner.0)
        .bind(new.name)
        .bind(new.monthly_budget_usd)
        .bind(new.expires_at)
        .bind(new.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ApiKeyView {
            id: new.id,
            name: new.name.to_owned(),
            prefix: new.prefix.to_owned(),
            monthly_budget_usd: new.monthly_budget_usd,
            month_spent_usd: 0.0,
            expires_at: new.expires_at,
            created_at: new.created_at,
            last_used_at: None,
        }))
    })
}

/// The owner's unrevoked keys, newest first, with what each spent in `month`.
pub async fn list_keys(db: &Db, owner: &Owner, month: &str) -> Result<Vec<ApiKeyView>, DbError> {
    type Row = (
        TextUuid,
        String,
        String,
        Option<f64>,
        f64,
        Option<i64>,
        i64,
        Option<i64>,
    );
    let sql = format!(
        "SELECT k.id, k.name, k.prefix, k.monthly_budget_usd,
                (SELECT {SPENT} FROM spending WHERE api_key_id = k.id AND month = $2),
                k.expires_at, k.created_at, k.last_used_at
           FROM api_keys k
          WHERE k.owner = $1 AND k.revoked_at IS NULL
          ORDER BY k.created_at DESC, k.id LIMIT $3"
    );
    let rows: Vec<Row> = on_reader!(db, |pool| sqlx::query_as(&sql)
        .bind(&owner.0)
        .bind(month)
        .bind(i64::try_from(MAX_API_KEYS).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, name, prefix, budget, spent, expires_at, created_at, last_used_at)| ApiKeyView {
                id: id.0,
                name,
                prefix,
                monthly_budget_usd: budget,
                month_spent_usd: spent,
                expires_at,
                created_at,
                last_used_at,
            },
        )
        .collect())
}

/// Revokes one of the owner's keys; `false` if they have no such key (or it was revoked).
pub async fn revoke_key(db: &Db, owner: &Owner, id: Uuid, now_ms: i64) -> Result<bool, DbError> {
    let done = on_writer!(db, |pool| sqlx::query(
        "UPDATE api_keys SET revoked_at = $1
          WHERE id = $2 AND owner = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms)
    .bind(TextUuid(id))
    .bind(&owner.0)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(done == 1)
}

/// The key whose SHA-256 is `key_hash`, revoked or not.
pub async fn key_by_hash(db: &Db, key_hash: &str) -> Result<Option<StoredKey>, DbError> {
    type Row = (
        TextUuid,
        String,
        String,
        Option<f64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let row: Option<Row> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT id, owner, name, monthly_budget_usd, expires_at, revoked_at, last_used_at
           FROM api_keys WHERE key_hash = $1",
    )
    .bind(key_hash)
    .fetch_optional(pool)
    .await)?;
    Ok(row.map(
        |(id, owner, name, budget, expires_at, revoked_at, last_used_at)| StoredKey {
            id: id.0,
            owner: Owner(owner),
            name,
            monthly_budget_usd: budget,
            expires_at,
            revoked_at,
            last_used_at,
        },
    ))
}

/// Notes that the key was used at `now_ms`, if its note is older than `every_ms`: the list shows
/// the last use to a minute, so a busy key writes once a minute, not once a request.
pub async fn mark_used(db: &Db, id: Uuid, now_ms: i64, every_ms: i64) -> Result<(), DbError> {
    on_writer!(db, |pool| sqlx::query(
        "UPDATE api_keys SET last_used_at = $1
          WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(now_ms)
    .bind(TextUuid(id))
    .bind(now_ms.saturating_sub(every_ms))
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(())
}
