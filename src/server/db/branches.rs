//! A conversation as a tree of turns: the branch on screen, each question's alternatives, and
//! moving to another branch. See `migrations/…_branches.sql` for the columns.

use uuid::Uuid;

use super::ids::TextUuid;
use super::messages::MessageRow;
use super::{Conn, Db, DbError, Owner};

/// The messages of a branch's newest turns, newest first: the turn `last` and those before it,
/// at most `turns` turns, and none before `stop_at` once that is met; `columns` as in
/// `messages.rs` (a prompt reads no thinking or HTML). Each step is one lookup of
/// a question by its turn id, so the cost is that of the turns read, whatever the branch's
/// length.
pub(super) async fn newest_turns(
    conn: &mut Conn<'_>,
    conversation_id: Uuid,
    last: Uuid,
    stop_at: Option<Uuid>,
    turns: u32,
    columns: &str,
) -> Result<Vec<MessageRow>, DbError> {
    // `CROSS JOIN` keeps the walk's few turns the outer loop, and `+` keeps the conversation's
    // index out of the inner one: each message is found by its turn id. (Without the `+`,
    // SQLite scanned the conversation's messages once per turn walked: 28 ms at 5,000 turns.)
    // Postgres's planner needs neither hint (and has no `CROSS JOIN … ON`, nor `+` on text).
    let (join, plus) = match conn {
        Conn::Sqlite(_) => ("CROSS JOIN", "+"),
        Conn::Postgres(_) => ("JOIN", ""),
    };
    let sql = format!(
        "WITH RECURSIVE branch(tid, depth) AS (
             SELECT CAST($1 AS TEXT), 1
             UNION ALL
             SELECT m.parent_turn_id, b.depth + 1 FROM branch b JOIN messages m ON m.turn_id = b.tid
              WHERE m.role = 'user' AND m.parent_turn_id IS NOT NULL
                AND b.tid IS DISTINCT FROM $2 AND b.depth < $3)
         SELECT {columns} FROM branch {join} messages ON messages.turn_id = branch.tid
          WHERE {plus}messages.conversation_id = $4
          ORDER BY messages.position DESC"
    );
    Ok(on_conn!(conn, |c| sqlx::query_as(&sql)
        .bind(TextUuid(last))
        .bind(stop_at.map(TextUuid))
        .bind(i64::from(turns))
        .bind(TextUuid(conversation_id))
        .fetch_all(c)
        .await)?)
}

/// The turn before the one holding the message at `position` (`None`: that is the first turn,
/// or there is no such message).
pub(super) async fn turn_before_position(
    conn: &mut Conn<'_>,
    conversation_id: Uuid,
    position: u32,
) -> Result<Option<Uuid>, DbError> {
    let found: Option<(Option<TextUuid>,)> = on_conn!(conn, |c| sqlx::query_as(
        "SELECT q.parent_turn_id FROM messages a
           JOIN messages q ON q.turn_id = a.turn_id AND q.role = 'user'
          WHERE a.conversation_id = $1 AND a.position = $2",
    )
    .bind(TextUuid(conversation_id))
    .bind(i64::from(position))
    .fetch_optional(c)
    .await)?;
    Ok(found.and_then(|(parent,)| parent).map(|p| p.0))
}

/// The alternatives of questions whose parents are `parents` (`None`: the first turn): each
/// question and its siblings, in the order they were asked, by turn id; only questions that
/// have some. Read through the index of questions by parent, so a page's worth costs the same
/// in any conversation.
pub(super) async fn alternatives(
    conn: &mut Conn<'_>,
    conversation_id: Uuid,
    parents: &[Option<Uuid>],
) -> Result<Vec<(Uuid, Vec<Uuid>)>, DbError> {
    let known: Vec<Uuid> = parents.iter().flatten().copied().collect();
    let first = parents.iter().any(Option::is_none);
    // Two lookups of the index, not one query with `OR` (which SQLite answered by scanning the
    // conversation's questions), put in the order they were asked here.
    let query = format!(
        "SELECT turn_id, parent_turn_id, position FROM messages
          WHERE conversation_id = $1 AND role = 'user' AND parent_turn_id IN ({})
         UNION ALL
         SELECT turn_id, parent_turn_id, position FROM messages
          WHERE conversation_id = $1 AND role = 'user' AND parent_turn_id IS NULL AND $2",
        // (`IN ()` is SQLite's alone; `IN (NULL)` matches nothing on both.)
        if known.is_empty() {
            "NULL".to_owned()
        } else {
            (3..3 + known.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let mut rows = on_conn!(conn, |c| {
        let mut rows = sqlx::query_as::<_, (TextUuid, Option<TextUuid>, i64)>(&query)
            .bind(TextUuid(conversation_id))
            .bind(first);
        for parent in &known {
            rows = rows.bind(TextUuid(*parent));
        }
        rows.fetch_all(c).await
    })?;
    rows.sort_by_key(|(_, _, position)| *position);
    let mut families: Vec<(Option<TextUuid>, Vec<Uuid>)> = Vec::new();
    for (TextUuid(turn_id), parent, _) in rows {
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
    in_transaction!(db, |tx| {
        let known = sqlx::query(
            "SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.turn_id = $1 AND m.role = 'user' AND c.id = $2 AND c.owner = $3
               AND c.deleted_at IS NULL",
        )
        .bind(TextUuid(turn_id))
        .bind(TextUuid(conversation_id))
        .bind(&owner.0)
        .fetch_optional(&mut *tx)
        .await?;
        if known.is_none() {
            return Ok(SwitchBranch::NoSuchTurn);
        }
        if super::lookups::streaming_reply(&mut Conn::from(&mut *tx), conversation_id).await? {
            return Ok(SwitchBranch::Busy);
        }
        let (leaf,): (TextUuid,) = sqlx::query_as(
            "WITH RECURSIVE down(turn_id, depth) AS (
                 SELECT CAST($1 AS TEXT), 0
                 UNION ALL
                 SELECT (SELECT m.turn_id FROM messages m
                         WHERE m.conversation_id = $2 AND m.role = 'user'
                           AND m.parent_turn_id = d.turn_id
                         ORDER BY m.position DESC LIMIT 1), d.depth + 1
                 FROM down d WHERE d.turn_id IS NOT NULL)
             SELECT turn_id FROM down WHERE turn_id IS NOT NULL ORDER BY depth DESC LIMIT 1",
        )
        .bind(TextUuid(turn_id))
        .bind(TextUuid(conversation_id))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE conversations SET current_turn_id = $1 WHERE id = $2")
            .bind(leaf)
            .bind(TextUuid(conversation_id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(SwitchBranch::Switched)
    })
}
