//! What each owner spent: budgets, the usage page and its CSV export.

use super::{Db, DbError, Owner};
use crate::model::accounts::UsageRow;

/// The first millisecond of this calendar month, UTC, as SQL.
pub(super) const MONTH_START_MS: &str =
    "(CAST(strftime('%s', 'now', 'start of month') AS INTEGER) * 1000)";

/// The owner's recorded cost this calendar month (UTC), in USD. A reply counts in the month it
/// was asked in, with every run of it (Continue adds to the same reply). Deleted conversations
/// count too.
pub async fn month_cost(db: &Db, owner: &Owner) -> Result<f64, DbError> {
    let (cost,): (f64,) = sqlx::query_as(&format!(
        "SELECT TOTAL(m.cost_usd) FROM conversations c
           JOIN messages m ON m.conversation_id = c.id
          WHERE c.owner = ? AND m.role = 'assistant' AND m.created_at >= {MONTH_START_MS}"
    ))
    .bind(&owner.0)
    .fetch_one(db.reader())
    .await?;
    Ok(cost)
}

/// `2026-11`: the month budgets count now.
pub async fn current_month(db: &Db) -> Result<String, DbError> {
    let (month,): (String,) = sqlx::query_as("SELECT strftime('%Y-%m', 'now')")
        .fetch_one(db.reader())
        .await?;
    Ok(month)
}

/// This month's replies by day (newest first) and model.
pub async fn month_usage(db: &Db, owner: &Owner) -> Result<Vec<UsageRow>, DbError> {
    type Row = (String, String, i64, i64, i64, i64, f64, i64);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT date(m.created_at / 1000, 'unixepoch') AS day, COALESCE(m.model, '') AS reply_model,
                COUNT(*), COALESCE(SUM(m.input_tokens), 0), COALESCE(SUM(m.cached_input_tokens), 0),
                COALESCE(SUM(m.output_tokens), 0), TOTAL(m.cost_usd),
                COALESCE(MAX(m.usage_estimated), 0)
           FROM conversations c JOIN messages m ON m.conversation_id = c.id
          WHERE c.owner = ? AND m.role = 'assistant' AND m.created_at >= {MONTH_START_MS}
          GROUP BY day, reply_model ORDER BY day DESC, reply_model"
    ))
    .bind(&owner.0)
    .fetch_all(db.reader())
    .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(
            |(day, model, replies, input, cached, output, cost_usd, estimated)| UsageRow {
                day,
                model,
                replies: u32::try_from(replies).unwrap_or(u32::MAX),
                input_tokens: count(input),
                cached_input_tokens: count(cached),
                output_tokens: count(output),
                cost_usd,
                estimated: estimated != 0,
            },
        )
        .collect())
}

/// One reply's figures, as the CSV export lists them.
#[derive(Debug, sqlx::FromRow)]
pub struct TurnFigures {
    /// `2026-11-27T10:15:02Z`, when the question was asked.
    pub time: String,
    pub conversation_id: String,
    pub turn_id: String,
    pub model: String,
    pub status: String,
    pub input_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub usage_estimated: bool,
}

/// Every reply of the owner, oldest first, with its figures.
pub async fn all_turn_figures(db: &Db, owner: &Owner) -> Result<Vec<TurnFigures>, DbError> {
    Ok(sqlx::query_as(
        "SELECT strftime('%Y-%m-%dT%H:%M:%SZ', m.created_at / 1000, 'unixepoch') AS time,
                m.conversation_id, m.turn_id, COALESCE(m.model, '') AS model, m.status,
                m.input_tokens, m.cached_input_tokens, m.cache_write_tokens, m.output_tokens,
                m.reasoning_tokens, m.cost_usd, m.usage_estimated
           FROM conversations c JOIN messages m ON m.conversation_id = c.id
          WHERE c.owner = ? AND m.role = 'assistant'
          ORDER BY m.created_at, m.conversation_id, m.position",
    )
    .bind(&owner.0)
    .fetch_all(db.reader())
    .await?)
}
