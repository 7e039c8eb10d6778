//! Search over the owner's conversations: titles and message text through the FTS5 indexes the
//! triggers of `migrations/…_search.sql` keep in step with the rows. Only live conversations of
//! the owner are found (the same scoping as every other query); the query text is the FTS5
//! expression `server::search::fts_query` built, never what a person typed.

use uuid::Uuid;

use super::ids::TextUuid;
use super::{Db, DbError, Owner};
use crate::model::Role;

/// A title that matched: the conversation and its title with the index's markers.
pub struct TitleMatch {
    pub conversation_id: Uuid,
    pub title: String,
}

/// A message that matched, best first: where it is and a snippet with the index's markers.
pub struct MessageMatch {
    pub conversation_id: Uuid,
    pub title: String,
    pub message_id: Uuid,
    pub role: Role,
    pub snippet: String,
}

/// Words of context a snippet holds around its matches.
const SNIPPET_TOKENS: u32 = 14;

/// The owner's live conversations whose titles match, best first (bm25).
pub async fn titles(
    db: &Db,
    owner: &Owner,
    query: &str,
    limit: u32,
) -> Result<Vec<TitleMatch>, DbError> {
    let rows: Vec<(TextUuid, String)> = sqlx::query_as(
        "SELECT c.id, highlight(title_search, 0, char(2), char(3))
           FROM title_search JOIN conversations c ON c.rowid = title_search.rowid
          WHERE title_search MATCH ?1 AND c.owner = ?2 AND c.deleted_at IS NULL
          ORDER BY title_search.rank LIMIT ?3",
    )
    .bind(query)
    .bind(&owner.0)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, title)| TitleMatch {
            conversation_id: id.0,
            title,
        })
        .collect())
}

/// Matches ranked at most, the owner's newest: ranking a word found in nearly every message
/// (bm25 reads each match's sizes, then all are sorted) took 340 ms (p50) at 200,000 messages
/// (`examples/bench_search`). Finding where the newest this many end is a walk of the index in
/// row order, with no ranking.
const RANKED_MAX: u32 = 2_000;

/// The owner's messages (in live conversations) that match, best first (bm25) among the newest
/// [`RANKED_MAX`] that match. The best are chosen first and only they get a snippet: making one
/// for every match would cost as much as the matches are many.
pub async fn messages(
    db: &Db,
    owner: &Owner,
    query: &str,
    limit: u32,
) -> Result<Vec<MessageMatch>, DbError> {
    // Rows are numbered as they are stored, so the newest matches are those from here on.
    let oldest_ranked: Option<i64> = sqlx::query_scalar(
        "SELECT message_search.rowid FROM message_search
           JOIN messages m ON m.rowid = message_search.rowid
           JOIN conversations c ON c.id = m.conversation_id
          WHERE message_search MATCH ?1 AND c.owner = ?2 AND c.deleted_at IS NULL
          ORDER BY message_search.rowid DESC LIMIT 1 OFFSET ?3",
    )
    .bind(query)
    .bind(&owner.0)
    .bind(RANKED_MAX.saturating_sub(1))
    .fetch_optional(db.reader())
    .await?;
    type Row = (TextUuid, String, TextUuid, Role, String);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "WITH best AS (
             SELECT message_search.rowid AS found, message_search.rank AS score
               FROM message_search
               JOIN messages m ON m.rowid = message_search.rowid
               JOIN conversations c ON c.id = m.conversation_id
              WHERE message_search MATCH ?1 AND c.owner = ?2 AND c.deleted_at IS NULL
                AND message_search.rowid >= ?4
              ORDER BY message_search.rank LIMIT ?3)
         SELECT c.id, c.title, m.id, m.role,
                snippet(message_search, 0, char(2), char(3), '…', {SNIPPET_TOKENS})
           FROM best
           JOIN message_search ON message_search.rowid = best.found
           JOIN messages m ON m.rowid = best.found
           JOIN conversations c ON c.id = m.conversation_id
          WHERE message_search MATCH ?1
          ORDER BY best.score"
    ))
    .bind(query)
    .bind(&owner.0)
    .bind(limit)
    .bind(oldest_ranked.unwrap_or(i64::MIN))
    .fetch_all(db.reader())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(conversation_id, title, message_id, role, snippet)| MessageMatch {
                conversation_id: conversation_id.0,
                title,
                message_id: message_id.0,
                role,
                snippet,
            },
        )
        .collect())
}

/// The turn of a message of the owner's (in a live conversation), for opening it there.
/// `None`: no such message for this owner.
pub async fn turn_of(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    message_id: Uuid,
) -> Result<Option<Uuid>, DbError> {
    let found: Option<(TextUuid,)> = sqlx::query_as(
        "SELECT m.turn_id FROM messages m
           JOIN conversations c ON c.id = m.conversation_id
          WHERE m.id = ?1 AND m.conversation_id = ?2 AND c.owner = ?3 AND c.deleted_at IS NULL",
    )
    .bind(TextUuid(message_id))
    .bind(TextUuid(conversation_id))
    .bind(&owner.0)
    .fetch_optional(db.reader())
    .await?;
    Ok(found.map(|(turn,)| turn.0))
}

/// Whether `turn` is on the branch on screen: a walk up from its end, one lookup per turn.
pub async fn on_branch_on_screen(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    turn: Uuid,
) -> Result<bool, DbError> {
    let (found,): (bool,) = sqlx::query_as(
        "WITH RECURSIVE branch(turn_id) AS (
             SELECT current_turn_id FROM conversations
              WHERE id = ?1 AND owner = ?2 AND deleted_at IS NULL
             UNION ALL
             SELECT m.parent_turn_id FROM branch b JOIN messages m ON m.turn_id = b.turn_id
              WHERE m.role = 'user' AND m.parent_turn_id IS NOT NULL)
         SELECT EXISTS (SELECT 1 FROM branch WHERE turn_id = ?3)",
    )
    .bind(TextUuid(conversation_id))
    .bind(&owner.0)
    .bind(TextUuid(turn))
    .fetch_one(db.reader())
    .await?;
    Ok(found)
}
