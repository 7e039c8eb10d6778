//! Figures kept per turn: each question's row carries the totals of every message before its
//! turn on its branch (`prior_*`, see `migrations/…_turn_totals.sql`), so the totals of what a
//! page has not loaded are one row's read at any length.

use uuid::Uuid;

use super::ids::TextUuid;
use super::{Conn, DbError};
use crate::model::Totals;

/// A message `m` a prompt could send: `turns::prompt`'s rule (every question; a reply with text
/// that did not fail), so that `prior_sendable` counts what a prompt leaves out unread.
const SENDABLE: &str = "(m.role = 'user' OR (m.content <> '' AND m.status <> 'failed'))";

/// Gives the question of `turn_id` the totals before it: those before `parent`, and `parent`'s
/// own messages. Called as the turn is stored; `parent` is finished by then (no turn begins
/// while a reply is written), and a turn's figures change only while it ends its branch.
pub(super) async fn record_prior(
    conn: &mut Conn<'_>,
    turn_id: Uuid,
    parent: Uuid,
) -> Result<(), DbError> {
    // Sums of integers are cast back (Postgres sums BIGINT as NUMERIC); an estimate anywhere
    // before makes the totals estimated (SQLite keeps flags as 0/1 and takes the larger).
    let estimated = match conn {
        Conn::Sqlite(_) => "MAX(p.prior_estimated, COALESCE(MAX(m.usage_estimated), 0))",
        Conn::Postgres(_) => "p.prior_estimated OR COALESCE(bool_or(m.usage_estimated), FALSE)",
    };
    let sql = format!(
        "UPDATE messages SET (prior_input_tokens, prior_output_tokens, prior_cost_usd,
                              prior_costed, prior_estimated, prior_sendable) = (
             SELECT p.prior_input_tokens + CAST(COALESCE(SUM(m.input_tokens), 0) AS BIGINT),
                    p.prior_output_tokens + CAST(COALESCE(SUM(m.output_tokens), 0) AS BIGINT),
                    p.prior_cost_usd + COALESCE(SUM(m.cost_usd), 0.0),
                    p.prior_costed + COUNT(m.cost_usd),
                    {estimated},
                    p.prior_sendable + COUNT(CASE WHEN {SENDABLE} THEN 1 END)
               FROM messages p JOIN messages m ON m.turn_id = p.turn_id
              WHERE p.turn_id = $1 AND p.role = 'user'
              GROUP BY p.prior_input_tokens, p.prior_output_tokens, p.prior_cost_usd,
                       p.prior_costed, p.prior_estimated, p.prior_sendable)
         WHERE turn_id = $2 AND role = 'user'",
    );
    on_conn!(conn, |c| sqlx::query(&sql)
        .bind(TextUuid(parent))
        .bind(TextUuid(turn_id))
        .execute(c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The totals of every message before `turn_id` on its branch.
pub(super) async fn prior(conn: &mut Conn<'_>, turn_id: Uuid) -> Result<Totals, DbError> {
    let found: Option<(i64, i64, f64, i64, bool)> = on_conn!(conn, |c| sqlx::query_as(
        "SELECT prior_input_tokens, prior_output_tokens, prior_cost_usd, prior_costed,
                prior_estimated
           FROM messages WHERE turn_id = $1 AND role = 'user'",
    )
    .bind(TextUuid(turn_id))
    .fetch_optional(c)
    .await)?;
    let Some((input, output, cost, costed, estimated)) = found else {
        return Ok(Totals::default());
    };
    Ok(Totals {
        input_tokens: u64::try_from(input).unwrap_or(0),
        output_tokens: u64::try_from(output).unwrap_or(0),
        cost_usd: (costed > 0).then_some(cost),
        estimated,
    })
}

/// How many messages before `turn_id` on its branch a prompt could send.
pub(super) async fn prior_sendable(conn: &mut Conn<'_>, turn_id: Uuid) -> Result<u32, DbError> {
    let found: Option<(i64,)> = on_conn!(conn, |c| sqlx::query_as(
        "SELECT prior_sendable FROM messages WHERE turn_id = $1 AND role = 'user'"
    )
    .bind(TextUuid(turn_id))
    .fetch_optional(c)
    .await)?;
    Ok(found.map_or(0, |(n,)| u32::try_from(n).unwrap_or(0)))
}
