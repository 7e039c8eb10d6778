//! Search over the owner's conversations: titles and message text through the FTS5 indexes the
//! triggers of `migrations/…_search.sql` and `…_search_by_owner.sql` keep in step with the rows. Only live conversations of
//! the owner are found (the same scoping as every other query); the query text is the FTS5
//! expression `server::search::fts_query` built, never what a person typed.

use uuid::Uuid;

use super::ids::TextUuid;
use super::{Db, DbError, Owner};
use crate::model::Role;

/// The keys of one owner's rows in both indexes: their owner number times 2^40 plus the row's
/// rowid (`migrations/…_search_by_owner.sql`), so all of them lie in `first..=last`.
#[derive(Clone, Copy, Debug)]
pub struct OwnerDocs {
    first: i64,
    last: i64,
}

const OWNER_SHIFT: u32 = 40;

/// Where the owner's rows are in the indexes; `None`: they have never stored a conversation.
pub async fn owner_docs(db: &Db, owner: &Owner) -> Result<Option<OwnerDocs>, DbError> {
    let number: Option<i64> =
        sqlx::query_scalar("SELECT number FROM search_owners WHERE owner = ?1")
            .bind(&owner.0)
            .fetch_optional(db.reader()?)
            .await?;
    Ok(number.and_then(|n| {
        let first = n
            .checked_shl(OWNER_SHIFT)
            .filter(|f| f >> OWNER_SHIFT == n)?;
        Some(OwnerDocs {
            first,
            last: first | ((1 << OWNER_SHIFT) - 1),
        })
    }))
}

/// A title that matched: the conversation and its title (unmarked: see [`mark`]).
pub struct TitleMatch {
    pub conversation_id: Uuid,
    pub title: String,
}

/// A message that matched, best first: where it is, and its text (for its snippet).
pub struct MessageMatch {
    pub conversation_id: Uuid,
    pub title: String,
    pub message_id: Uuid,
    pub role: Role,
    pub content: String,
}

/// Titles ranked at most, the owner's newest that match: a word in nearly every title would
/// otherwise be ranked across all of them.
const TITLES_RANKED_MAX: u32 = 500;

/// The owner's live conversations whose titles match, best first (bm25 among the newest
/// [`TITLES_RANKED_MAX`] that match), at most `limit`.
pub async fn titles(
    db: &Db,
    owner: &Owner,
    docs: OwnerDocs,
    query: &str,
    limit: u32,
) -> Result<Vec<TitleMatch>, DbError> {
    let rows: Vec<(TextUuid, String)> = sqlx::query_as(
        "WITH newest AS (
             SELECT rowid AS doc, bm25(title_search) AS score FROM title_search
              WHERE title_search MATCH ?1 AND rowid BETWEEN ?2 AND ?3
              ORDER BY rowid DESC LIMIT ?4)
         SELECT c.id, c.title
           FROM newest n
           JOIN title_search_docs d ON d.doc = n.doc
           JOIN conversations c ON c.rowid = d.conversation
          WHERE c.owner = ?5 AND c.deleted_at IS NULL
          ORDER BY n.score, n.doc DESC LIMIT ?6",
    )
    .bind(query)
    .bind(docs.first)
    .bind(docs.last)
    .bind(TITLES_RANKED_MAX)
    .bind(&owner.0)
    .bind(limit)
    .fetch_all(db.reader()?)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, title)| TitleMatch {
            conversation_id: id.0,
            title,
        })
        .collect())
}

/// Matches ranked at most, the owner's newest: bm25 over every match of a word found in nearly
/// every message (its sizes read and all sorted) took 340 ms (p50) at 200,000 messages
/// (`examples/bench_search`). The newest this many are a walk back from the end of the owner's
/// range of the index, which stops when it has them.
const RANKED_MAX: u32 = 2_000;

/// The owner's messages (in live conversations) that match, best first (bm25) among the newest
/// [`RANKED_MAX`] that match, at most `limit`.
pub async fn messages(
    db: &Db,
    owner: &Owner,
    docs: OwnerDocs,
    query: &str,
    limit: u32,
) -> Result<Vec<MessageMatch>, DbError> {
    // The newest are ranked as they are found (bm25 per row, its statistics once per query);
    // only the best few times `limit` are joined to their rows. The owner is checked again
    // there (the range is theirs by construction) and deleted conversations are left out.
    type Row = (TextUuid, String, TextUuid, Role, String);
    let rows: Vec<Row> = sqlx::query_as(
        "WITH newest AS (
             SELECT rowid AS doc, bm25(message_search) AS score FROM message_search
              WHERE message_search MATCH ?1 AND rowid BETWEEN ?2 AND ?3
              ORDER BY rowid DESC LIMIT ?4),
         best AS (SELECT doc, score FROM newest ORDER BY score, doc DESC LIMIT ?6 * 4)
         SELECT c.id, c.title, m.id, m.role, m.content
           FROM best n
           JOIN message_search_docs d ON d.doc = n.doc
           JOIN messages m ON m.rowid = d.message
           JOIN conversations c ON c.id = m.conversation_id
          WHERE c.owner = ?5 AND c.deleted_at IS NULL
          ORDER BY n.score, n.doc DESC LIMIT ?6",
    )
    .bind(query)
    .bind(docs.first)
    .bind(docs.last)
    .bind(RANKED_MAX)
    .bind(&owner.0)
    .bind(limit)
    .fetch_all(db.reader()?)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(conversation_id, title, message_id, role, content)| MessageMatch {
                conversation_id: conversation_id.0,
                title,
                message_id: message_id.0,
                role,
                content,
            },
        )
        .collect())
}

/// Words of context a snippet holds around its matches.
const SNIPPET_TOKENS: u32 = 14;

/// What to mark in a text found: a title is marked whole, a message as a snippet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marking {
    Whole,
    Snippet,
}

/// Each text with what `query` matches in it marked with the index's markers (`None`: the
/// query does not match it), made by FTS5 itself, the same tokenizer as the indexes', in an
/// index of these texts alone: a connection's own temporary table, filled in a transaction
/// that is rolled back. Asking the big indexes instead costs a prefix query's setup again (a
/// prefix they keep no table for gathers every word it begins, in every row).
pub async fn mark(
    db: &Db,
    query: &str,
    texts: &[(&str, Marking)],
) -> Result<Vec<Option<String>>, DbError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let mut connection = db.reader()?.acquire().await?;
    sqlx::query(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_marks USING fts5(
             text, whole UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')",
    )
    .execute(&mut *connection)
    .await?;
    // All in one statement: [[text, whole], …], numbered from 0.
    let rows_in = serde_json::to_string(
        &texts
            .iter()
            .map(|(text, marking)| (text, *marking == Marking::Whole))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let mut tx = sqlx::Connection::begin(&mut *connection).await?;
    sqlx::query(
        "INSERT INTO temp.search_marks (rowid, text, whole)
         SELECT key, value ->> 0, value ->> 1 FROM json_each(?1)",
    )
    .bind(rows_in)
    .execute(&mut *tx)
    .await?;
    let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
        "SELECT rowid, CASE WHEN whole THEN highlight(search_marks, 0, char(2), char(3))
                ELSE snippet(search_marks, 0, char(2), char(3), '…', {SNIPPET_TOKENS}) END
           FROM temp.search_marks WHERE search_marks MATCH ?1"
    ))
    .bind(query)
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    let mut marked = vec![None; texts.len()];
    for (i, text) in rows {
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| marked.get_mut(i)) {
            *slot = Some(text);
        }
    }
    Ok(marked)
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
    .fetch_optional(db.reader()?)
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
    .fetch_one(db.reader()?)
    .await?;
    Ok(found)
}
