//! A conversation as a tree of turns: the branch on screen, each question's alternatives, and
//! moving to another branch. See `migrations/…_branches.sql` for the columns.

use uuid::Uuid;

use super::ids::TextUuid;
use super::{Db, DbError, Owner};

/// The turn ids of a branch, from the turn bound first back to the conversation's first: a
/// recursive walk up `parent_turn_id`. Used as `… turn_id IN branch`, in queries whose other
/// parameters are bare `?` too (sqlx numbers bare ones apart from numbered ones).
pub(super) const BRANCH_FROM_TURN: &str = "WITH RECURSIVE branch(turn_id) AS (
        SELECT ?
        UNION ALL
        SELECT m.parent_turn_id FROM messages m JOIN branch b ON m.turn_id = b.turn_id
        WHERE m.role = 'user' AND m.parent_turn_id IS NOT NULL)";

/// Each question's alternatives (itself and its siblings: questions with the same parent), in
/// the order they were asked, by turn id; only questions that have some.
pub(super) async fn alternatives(
    executor: impl sqlx::SqliteExecutor<'_>,
    conversation_id: Uuid,
) -> Result<Vec<(Uuid, Vec<Uuid>)>, DbError> {
    let rows: Vec<(TextUuid, Option<TextUuid>)> = sqlx::query_as(
        "SELECT turn_id, parent_turn_id FROM messages
         WHERE conversation_id = ? AND role = 'user' ORDER BY position",
    )
    .bind(TextUuid(conversation_id))
    .fetch_all(executor)
    .await?;
    let mut families: Vec<(Option<TextUuid>, Vec<Uuid>)> = Vec::new();
    for (TextUuid(turn_id), parent) in rows {
        match families.iter_mut().find(|(p, _)| *p == parent) {
            Some((_, children)) => children.push(turn_id),
            None => families.push((parent, vec![turn_id])),
        }
    }
    Ok(families
        .into_iter()
        .filter(|(_, children)| children.len() > 1)
        .flat_map(|(_, children)| {
            children
                .clone()
                .into_iter()
                .map(move |turn| (turn, children.clone()))
        })
        .collect())
}

pub enum SwitchBranch {
    Switched,
    /// No such turn in a live conversation of this owner.
    NoSuchTurn,
    /// A reply is being written; the branch on screen cannot change under it.
    Busy,
}

/// Shows the branch through `turn_id`: it and, below it, the newest turn at each step.
pub async fn switch_branch(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    turn_id: Uuid,
) -> Result<SwitchBranch, DbError> {
    let mut tx = super::begin_write(db).await?;
    let known = sqlx::query(
        "SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.turn_id = ? AND m.role = 'user' AND c.id = ? AND c.owner = ? AND c.deleted_at IS NULL",
    )
    .bind(TextUuid(turn_id))
    .bind(TextUuid(conversation_id))
    .bind(&owner.0)
    .fetch_optional(&mut *tx)
    .await?;
    if known.is_none() {
        return Ok(SwitchBranch::NoSuchTurn);
    }
    if super::lookups::streaming_reply(&mut tx, conversation_id).await? {
        return Ok(SwitchBranch::Busy);
    }
    let (leaf,): (TextUuid,) = sqlx::query_as(
        "WITH RECURSIVE down(turn_id, depth) AS (
             SELECT ?1, 0
             UNION ALL
             SELECT (SELECT m.turn_id FROM messages m
                     WHERE m.conversation_id = ?2 AND m.role = 'user' AND m.parent_turn_id = d.turn_id
                     ORDER BY m.position DESC LIMIT 1), d.depth + 1
             FROM down d WHERE d.turn_id IS NOT NULL)
         SELECT turn_id FROM down WHERE turn_id IS NOT NULL ORDER BY depth DESC LIMIT 1",
    )
    .bind(TextUuid(turn_id))
    .bind(TextUuid(conversation_id))
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE conversations SET current_turn_id = ? WHERE id = ?")
        .bind(leaf)
        .bind(TextUuid(conversation_id))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(SwitchBranch::Switched)
}
