//! Search over the owner's conversations: titles and message text through the FTS5 indexes the
//! triggers of `migrations/…_search.sql` and `…_search_by_owner.sql` keep in step with the rows. Only live conversations of
//! the owner are found (the same scoping as every other query); the query text is the FTS5
//! expression `server::search::fts_query` built, never what a person typed.
//!
//! On Postgres the same expression becomes a `tsquery` ([`ts_query`]) over the `tsvector`
//! columns Postgres keeps itself (the `rill_search` configuration: `simple` with diacritics
//! removed by `unaccent`, as SQLite's index removes them; GIN indexes); ranked by `ts_rank_cd`
//! where SQLite ranks by bm25, marked by `ts_headline` where SQLite uses FTS5's highlight and
//! snippet. The answers have the same shape; what differs is said at each step.

use uuid::Uuid;

use super::ids::TextUuid;
use sqlx::PgPool;

use super::{Db, DbError, Engine, Owner, Pools};
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
    if db.engine() == Engine::Postgres {
        // Postgres's indexes are not ranged by owner: the queries scope by owner themselves.
        return Ok(Some(OwnerDocs {
            first: 0,
            last: i64::MAX,
        }));
    }
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

/// A matching message's row as either engine's query reads it.
type MatchRow = (TextUuid, String, TextUuid, Role, String);

fn message_matches(rows: Vec<MatchRow>) -> Vec<MessageMatch> {
    rows.into_iter()
        .map(
            |(conversation_id, title, message_id, role, content)| MessageMatch {
                conversation_id: conversation_id.0,
                title,
                message_id: message_id.0,
                role,
                content,
            },
        )
        .collect()
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
    if let Pools::Postgres(pool) = db.pools() {
        return titles_on_postgres(pool, owner, query, limit).await;
    }
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
    if let Pools::Postgres(pool) = db.pools() {
        return messages_on_postgres(pool, owner, query, limit).await;
    }
    let rows: Vec<MatchRow> = sqlx::query_as(
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
    Ok(message_matches(rows))
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
    if let Pools::Postgres(pool) = db.pools() {
        return mark_on_postgres(pool, query, texts).await;
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
    let found: Option<(TextUuid,)> = on_reader!(db, |pool| sqlx::query_as(
        "SELECT m.turn_id FROM messages m
           JOIN conversations c ON c.id = m.conversation_id
          WHERE m.id = $1 AND m.conversation_id = $2 AND c.owner = $3 AND c.deleted_at IS NULL",
    )
    .bind(TextUuid(message_id))
    .bind(TextUuid(conversation_id))
    .bind(&owner.0)
    .fetch_optional(pool)
    .await)?;
    Ok(found.map(|(turn,)| turn.0))
}

/// Whether `turn` is on the branch on screen: a walk up from its end, one lookup per turn.
pub async fn on_branch_on_screen(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    turn: Uuid,
) -> Result<bool, DbError> {
    let (found,): (bool,) = on_reader!(db, |pool| sqlx::query_as(
        "WITH RECURSIVE branch(turn_id) AS (
             SELECT current_turn_id FROM conversations
              WHERE id = $1 AND owner = $2 AND deleted_at IS NULL
             UNION ALL
             SELECT m.parent_turn_id FROM branch b JOIN messages m ON m.turn_id = b.turn_id
              WHERE m.role = 'user' AND m.parent_turn_id IS NOT NULL)
         SELECT EXISTS (SELECT 1 FROM branch WHERE turn_id = $3)",
    )
    .bind(TextUuid(conversation_id))
    .bind(&owner.0)
    .bind(TextUuid(turn))
    .fetch_one(pool)
    .await)?;
    Ok(found)
}

/// The FTS5 expression `server::search::fts_query` builds (terms `"words"`, a prefix `"word"*`,
/// all of which must match) as a Postgres `tsquery`: each term's words in order (`<->`), a
/// prefix's last word with `:*`, the terms joined by `&`. Words are what FTS5's unicode61 keeps
/// (letters and numbers), lower-cased; `to_tsquery('rill_search', …)` then takes their
/// diacritics off as the search columns' configuration does (`cafe` finds `café` and the other
/// way round, as on SQLite). `None`: no word.
pub fn ts_query(fts: &str) -> Option<String> {
    let mut terms = Vec::new();
    let mut rest = fts;
    while let Some(open) = rest.find('"') {
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find('"') else { break };
        let text = after.get(..close).unwrap_or_default();
        rest = after.get(close + 1..).unwrap_or_default();
        let prefix = rest.starts_with('*');
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| format!("'{}'", w.to_lowercase()))
            .collect();
        let Some(last) = words.len().checked_sub(1) else {
            continue;
        };
        let term: Vec<String> = words
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                if prefix && i == last {
                    format!("{w}:*")
                } else {
                    w
                }
            })
            .collect();
        terms.push(format!("({})", term.join(" <-> ")));
    }
    (!terms.is_empty()).then(|| terms.join(" & "))
}

/// [`titles`] on Postgres: the newest [`TITLES_RANKED_MAX`] matching titles, ranked by
/// `ts_rank_cd` (cover density, where SQLite ranks by bm25), newest first among equals.
async fn titles_on_postgres(
    pool: &PgPool,
    owner: &Owner,
    query: &str,
    limit: u32,
) -> Result<Vec<TitleMatch>, DbError> {
    let Some(ts) = ts_query(query) else {
        return Ok(Vec::new());
    };
    let rows: Vec<(TextUuid, String)> = (sqlx::query_as(
        "WITH newest AS (
             SELECT id, title, title_search, seq FROM conversations
              WHERE owner = $1 AND deleted_at IS NULL
                AND title_search @@ to_tsquery('rill_search', $2)
              ORDER BY seq DESC LIMIT $3)
         SELECT id, title FROM newest
          ORDER BY ts_rank_cd(title_search, to_tsquery('rill_search', $2)) DESC, seq DESC LIMIT $4",
    )
    .bind(&owner.0)
    .bind(&ts)
    .bind(i64::from(TITLES_RANKED_MAX))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(id, title)| TitleMatch {
            conversation_id: id.0,
            title,
        })
        .collect())
}

/// [`messages`] on Postgres: the newest [`RANKED_MAX`] matching messages of the owner's live
/// conversations (through the GIN index), ranked by `ts_rank_cd`.
async fn messages_on_postgres(
    pool: &PgPool,
    owner: &Owner,
    query: &str,
    limit: u32,
) -> Result<Vec<MessageMatch>, DbError> {
    let Some(ts) = ts_query(query) else {
        return Ok(Vec::new());
    };
    let rows: Vec<MatchRow> = (sqlx::query_as(
        "WITH newest AS (
             SELECT m.conversation_id, c.title, m.id, m.role, m.content, m.content_search,
                    m.created_at, m.position
               FROM messages m JOIN conversations c ON c.id = m.conversation_id
              WHERE c.owner = $1 AND c.deleted_at IS NULL
                AND m.content_search @@ to_tsquery('rill_search', $2)
              ORDER BY m.created_at DESC, m.position DESC LIMIT $3)
         SELECT conversation_id, title, id, role, content FROM newest
          ORDER BY ts_rank_cd(content_search, to_tsquery('rill_search', $2)) DESC,
                   created_at DESC, position DESC
          LIMIT $4",
    )
    .bind(&owner.0)
    .bind(&ts)
    .bind(i64::from(RANKED_MAX))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await)?;
    Ok(message_matches(rows))
}

/// [`mark`] on Postgres: `ts_headline` with the same markers, a title whole, a message as one
/// fragment of about [`SNIPPET_TOKENS`] words (without FTS5's `…` at a cut end); `None` where
/// the text no longer matches.
async fn mark_on_postgres(
    pool: &PgPool,
    query: &str,
    texts: &[(&str, Marking)],
) -> Result<Vec<Option<String>>, DbError> {
    let Some(ts) = ts_query(query) else {
        return Ok(vec![None; texts.len()]);
    };
    let bodies: Vec<String> = texts.iter().map(|(text, _)| (*text).to_owned()).collect();
    let whole: Vec<bool> = texts
        .iter()
        .map(|(_, marking)| *marking == Marking::Whole)
        .collect();
    let options = |more: &str| format!("StartSel=\u{2}, StopSel=\u{3}, {more}");
    let rows: Vec<(i64, Option<String>)> = (sqlx::query_as(
        "SELECT t.n,
                CASE WHEN to_tsvector('rill_search', t.body) @@ q.q THEN
                     ts_headline('rill_search', t.body, q.q, CASE WHEN t.whole THEN $4 ELSE $5 END)
                END
           FROM unnest($1::text[], $2::boolean[]) WITH ORDINALITY AS t(body, whole, n),
                (SELECT to_tsquery('rill_search', $3) AS q) q
          ORDER BY t.n",
    )
    .bind(&bodies)
    .bind(&whole)
    .bind(&ts)
    .bind(options("HighlightAll=true"))
    .bind(options(&format!(
        "MaxWords={SNIPPET_TOKENS}, MinWords={}, ShortWord=0, MaxFragments=1",
        SNIPPET_TOKENS / 2
    )))
    .fetch_all(pool)
    .await)?;
    let mut marked = vec![None; texts.len()];
    for (n, text) in rows {
        let slot = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| marked.get_mut(i));
        if let Some(slot) = slot {
            *slot = text;
        }
    }
    Ok(marked)
}
