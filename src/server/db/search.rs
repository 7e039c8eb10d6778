//! Search over the owner's conversations: titles and message text through the FTS5 indexes the
//! triggers of `migrations/…_search.sql` and `…_search_by_owner.sql` keep in step with the rows. Only live conversations of
//! the owner are found (the same scoping as every other query); the query text is the FTS5
//! expression `server::search::fts_query` built, never what a person typed.

use std::collections::HashMap;

use uuid::Uuid;

use super::ids::TextUuid;
use super::{Db, DbError, Owner};
use crate::model::Role;

/// A title that matched: the conversation and its title with the index's markers.
pub struct TitleMatch {
    pub conversation_id: Uuid,
    pub title: String,
}

/// A message that matched, best first: where it is, and its key in the index (for its snippet).
pub struct MessageMatch {
    pub doc: i64,
    pub conversation_id: Uuid,
    pub title: String,
    pub message_id: Uuid,
    pub role: Role,
}

/// Words of context a snippet holds around its matches.
const SNIPPET_TOKENS: u32 = 14;

/// The owner's live conversations whose titles match, best first (bm25). The index yields them
/// in rank order (no sort after), so only those returned get a highlighted title.
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

/// An owner's messages are the index keys from their number times 2^40 on
/// (`migrations/…_search_by_owner.sql`).
const OWNER_SHIFT: u32 = 40;

/// The range of index keys that holds the owner's messages; `None`: they have never stored a
/// conversation.
async fn owner_docs(db: &Db, owner: &Owner) -> Result<Option<(i64, i64)>, DbError> {
    let number: Option<i64> =
        sqlx::query_scalar("SELECT number FROM search_owners WHERE owner = ?1")
            .bind(&owner.0)
            .fetch_optional(db.reader())
            .await?;
    Ok(number.and_then(|n| {
        let first = n.checked_shl(OWNER_SHIFT)?;
        Some((first, first | ((1 << OWNER_SHIFT) - 1)))
    }))
}

/// Matches ranked at most, the owner's newest: bm25 over every match of a word found in nearly
/// every message (its sizes read and all sorted) took 340 ms (p50) at 200,000 messages
/// (`examples/bench_search`). The newest this many are a walk back from the end of the owner's
/// range of the index, which stops when it has them.
const RANKED_MAX: u32 = 2_000;

/// The owner's messages (in live conversations) that match, best first (bm25) among the newest
/// [`RANKED_MAX`] that match, at most `limit`. No snippets: [`snippets`] makes them for those
/// shown.
pub async fn messages(
    db: &Db,
    owner: &Owner,
    query: &str,
    limit: u32,
) -> Result<Vec<MessageMatch>, DbError> {
    let Some((first, last)) = owner_docs(db, owner).await? else {
        return Ok(Vec::new());
    };
    // The newest are ranked as they are found (bm25 per row, its statistics once per query);
    // only the best are joined to their rows. The owner is checked again there (the range is
    // theirs by construction) and deleted conversations are left out.
    type Row = (i64, TextUuid, String, TextUuid, Role);
    let rows: Vec<Row> = sqlx::query_as(
        "WITH newest AS (
             SELECT rowid AS doc, bm25(message_search) AS score FROM message_search
              WHERE message_search MATCH ?1 AND rowid BETWEEN ?2 AND ?3
              ORDER BY rowid DESC LIMIT ?4)
         SELECT n.doc, c.id, c.title, m.id, m.role
           FROM newest n
           JOIN message_search_docs d ON d.doc = n.doc
           JOIN messages m ON m.rowid = d.message
           JOIN conversations c ON c.id = m.conversation_id
          WHERE c.owner = ?5 AND c.deleted_at IS NULL
          ORDER BY n.score, n.doc DESC LIMIT ?6",
    )
    .bind(query)
    .bind(first)
    .bind(last)
    .bind(RANKED_MAX)
    .bind(&owner.0)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(doc, conversation_id, title, message_id, role)| MessageMatch {
                doc,
                conversation_id: conversation_id.0,
                title,
                message_id: message_id.0,
                role,
            },
        )
        .collect())
}

/// Snippets of messages `docs` (keys [`messages`] gave) around what `query` matches, with the
/// index's markers, by key. One walk of the index between the first and last of them: the
/// query is set up once (a prefix the index keeps no table for gathers every word it begins,
/// and that should not happen once per snippet).
pub async fn snippets(
    db: &Db,
    query: &str,
    docs: &[i64],
) -> Result<HashMap<i64, String>, DbError> {
    let (Some(&low), Some(&high)) = (docs.iter().min(), docs.iter().max()) else {
        return Ok(HashMap::new());
    };
    let wanted: Vec<String> = docs.iter().map(i64::to_string).collect();
    // `+rowid`: the list filters the walk; as keys it would set the query up once per key.
    let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
        "SELECT rowid, snippet(message_search, 0, char(2), char(3), '…', {SNIPPET_TOKENS})
           FROM message_search
          WHERE message_search MATCH ?1 AND rowid BETWEEN ?2 AND ?3
            AND +rowid IN (SELECT value FROM json_each(?4))"
    ))
    .bind(query)
    .bind(low)
    .bind(high)
    .bind(format!("[{}]", wanted.join(",")))
    .fetch_all(db.reader())
    .await?;
    Ok(rows.into_iter().collect())
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
