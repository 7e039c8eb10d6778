//! Conversations: the owner's list, one opened as the page shows it, and renaming, deleting,
//! restoring and purging them.

use std::time::Duration;

use uuid::Uuid;

use super::branches;
use super::ids::TextUuid;
use super::lookups::{conversation_row, ConversationRow};
use super::messages::{MessageRow, MESSAGE_COLUMNS};
use super::totals;
use super::{now_ms, Conn, Db, DbError, Engine, Owner};
use crate::model::{
    ConversationCursor, ConversationSummary, ConversationView, MessageView, PromptRevision, Role,
    Totals, CONVERSATIONS_PAGE,
};

/// A page of the owner's conversations (those not pinned), most recently changed first: the
/// first [`CONVERSATIONS_PAGE`], or those after `after`.
pub async fn list_conversations(
    db: &Db,
    owner: &Owner,
    after: Option<ConversationCursor>,
) -> Result<Vec<ConversationSummary>, DbError> {
    conversations_between(db, owner, after, None, CONVERSATIONS_PAGE).await
}

/// At most `limit` of the owner's conversations (those not pinned), most recently changed
/// first: those after `after` (from the newest without it), down to the one at `through`
/// (included; without it, as many as `limit` allows).
pub async fn conversations_between(
    db: &Db,
    owner: &Owner,
    after: Option<ConversationCursor>,
    through: Option<ConversationCursor>,
    limit: usize,
) -> Result<Vec<ConversationSummary>, DbError> {
    // No cursor is the id '' (the query's own test), so ids are bound as text here. The bounds
    // on `updated_at` alone let the index start at the cursor, rather than walk every
    // conversation listed before it.
    let (after_at, after_id) = after.map_or((i64::MAX, String::new()), |c| {
        (c.updated_at, c.id.to_string())
    });
    let (through_at, through_id) = through.map_or((i64::MIN, String::new()), |c| {
        (c.updated_at, c.id.to_string())
    });
    // Ids compare byte by byte on both engines (Postgres would otherwise use its locale).
    let id = match db.engine() {
        Engine::Sqlite => "id",
        Engine::Postgres => "id COLLATE \"C\"",
    };
    let sql = format!(
        "SELECT id, title, updated_at FROM conversations
         WHERE owner = $1 AND updated_at <= $2 AND updated_at >= $4
           AND deleted_at IS NULL AND pinned_at IS NULL
           AND (updated_at < $2 OR {id} < $3 OR $3 = '')
           AND (updated_at > $4 OR {id} >= $5 OR $5 = '')
         ORDER BY updated_at DESC, {id} DESC LIMIT $6"
    );
    let rows: Vec<(TextUuid, String, i64)> = on_reader!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(&owner.0)
            .bind(after_at)
            .bind(&after_id)
            .bind(through_at)
            .bind(&through_id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
    })?;
    Ok(summaries(rows))
}

/// The list's rows as the page reads them.
fn summaries(rows: Vec<(TextUuid, String, i64)>) -> Vec<ConversationSummary> {
    rows.into_iter()
        .map(|(id, title, updated_at)| ConversationSummary {
            id: id.0,
            title,
            updated_at,
        })
        .collect()
}

/// Pinned conversations at most: a short list by nature, read whole.
pub const PINNED_MAX: u32 = 100;

/// The owner's pinned conversations, most recently pinned first (at most [`PINNED_MAX`]).
pub async fn pinned_conversations(
    db: &Db,
    owner: &Owner,
) -> Result<Vec<ConversationSummary>, DbError> {
    let id = match db.engine() {
        Engine::Sqlite => "id",
        Engine::Postgres => "id COLLATE \"C\"",
    };
    let sql = format!(
        "SELECT id, title, updated_at FROM conversations
         WHERE owner = $1 AND deleted_at IS NULL AND pinned_at IS NOT NULL
         ORDER BY pinned_at DESC, {id} DESC LIMIT $2"
    );
    let rows: Vec<(TextUuid, String, i64)> = on_reader!(db, |pool| {
        sqlx::query_as(&sql)
            .bind(&owner.0)
            .bind(i64::from(PINNED_MAX))
            .fetch_all(pool)
            .await
    })?;
    Ok(summaries(rows))
}

/// Pins or unpins a live conversation. False if there is no such conversation for this owner.
pub async fn set_pinned(db: &Db, owner: &Owner, id: Uuid, pinned: bool) -> Result<bool, DbError> {
    let done = on_writer!(db, |pool| {
        sqlx::query(
            "UPDATE conversations SET pinned_at = $1
             WHERE id = $2 AND owner = $3 AND deleted_at IS NULL",
        )
        .bind(pinned.then(now_ms))
        .bind(TextUuid(id))
        .bind(&owner.0)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(done == 1)
}

/// Whether the conversation exists for this owner.
pub async fn conversation_exists(db: &Db, owner: &Owner, id: Uuid) -> Result<bool, DbError> {
    Ok(conversation_row(&mut db.read().await?.conn(), owner, id)
        .await?
        .is_some())
}

/// Messages a conversation is opened with at most (the newest; older ones on request).
pub const WINDOW_MESSAGES: i64 = 40;
/// Bytes of text, thinking and HTML a window holds at most, unless one turn alone is more.
pub const WINDOW_BYTES: usize = 1 << 20;
/// Turns read for a window: one more than it holds, to know whether older ones exist.
const WINDOW_TURNS: u32 = (WINDOW_MESSAGES / 2 + 1) as u32;

/// The conversation as the page shows it: its branch on screen, the newest
/// [`WINDOW_MESSAGES`] messages up to [`WINDOW_BYTES`] (at least one turn) before the message at
/// `before` (a position; `None`: from the end), and the system prompt revisions those replies
/// were written with.
pub async fn get_conversation(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    before: Option<u32>,
) -> Result<Option<ConversationView>, DbError> {
    let mut held = db.read().await?;
    let conn = &mut held.conn();
    let Some(row) = conversation_row(conn, owner, id).await? else {
        return Ok(None);
    };
    // The branch on screen, newest first: from the current turn (or the turn before the
    // window the page has) back, one turn more than a window holds (to know of older ones).
    let last = match before {
        None => row.current_turn_id.map(|t| t.0),
        Some(position) => branches::turn_before_position(conn, id, position).await?,
    };
    let mut rows: Vec<MessageRow> = match last {
        Some(last) => {
            branches::newest_turns(conn, id, last, None, WINDOW_TURNS, MESSAGE_COLUMNS).await?
        }
        None => Vec::new(),
    };
    let mut older = rows.len() > usize::try_from(WINDOW_MESSAGES).unwrap_or(usize::MAX);
    let mut bytes = 0usize;
    let mut kept = 0;
    for (i, message) in rows.iter().enumerate() {
        if i >= usize::try_from(WINDOW_MESSAGES).unwrap_or(usize::MAX) {
            break;
        }
        // Whole turns only: the window ends at a question.
        let at_question = message.role == Role::User;
        bytes = bytes.saturating_add(message.size());
        if at_question {
            kept = i + 1;
            if bytes >= WINDOW_BYTES {
                break;
            }
        }
    }
    if kept < rows.len() {
        older = true;
        rows.truncate(kept);
    }
    view_of(conn, id, row, rows, older).await.map(Some)
}

/// Turns read at most to open a conversation at a message (a search result): from the end of
/// its branch back to that message's turn.
pub const THROUGH_TURNS: u32 = 1000;

/// The conversation as the page shows it, from the end of the branch on screen back to the turn
/// `turn` (a message a search found), whatever the window's usual size, so the page opens with
/// that message in its list. `None`: no such conversation, or that turn is not on the branch on
/// screen within [`THROUGH_TURNS`] turns of its end.
pub async fn get_conversation_through(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    turn: Uuid,
) -> Result<Option<ConversationView>, DbError> {
    let mut held = db.read().await?;
    let conn = &mut held.conn();
    let Some(row) = conversation_row(conn, owner, id).await? else {
        return Ok(None);
    };
    let Some(last) = row.current_turn_id.map(|t| t.0) else {
        return Ok(None);
    };
    let rows =
        branches::newest_turns(conn, id, last, Some(turn), THROUGH_TURNS, MESSAGE_COLUMNS).await?;
    // Newest first: the oldest read is the found turn's question, if the walk reached it.
    let Some(first) = rows.last().filter(|m| m.turn_id.0 == turn) else {
        return Ok(None);
    };
    let older = first.parent_turn_id.is_some();
    view_of(conn, id, row, rows, older).await.map(Some)
}

/// The page's view of `rows` (a branch's messages, newest first, whole turns); `older`: the
/// branch goes on before them.
async fn view_of(
    conn: &mut Conn<'_>,
    id: Uuid,
    row: ConversationRow,
    mut rows: Vec<MessageRow>,
    older: bool,
) -> Result<ConversationView, DbError> {
    rows.reverse();
    let older_before = older
        .then(|| rows.first().map(|m| u32::try_from(m.position).unwrap_or(0)))
        .flatten();
    let older_totals = match rows.first().filter(|_| older_before.is_some()) {
        Some(first) => totals::prior(conn, first.turn_id.0).await?,
        None => Totals::default(),
    };
    let parents: Vec<Option<Uuid>> = rows
        .iter()
        .filter(|m| m.role == Role::User)
        .map(|m| m.parent_turn_id.map(|p| p.0))
        .collect();
    let alternatives = branches::alternatives(conn, id, &parents).await?;
    // The revisions the window's replies were written with, and the one in effect.
    let used: std::collections::BTreeSet<i64> = rows
        .iter()
        .filter_map(|m| m.system_prompt_revision)
        .chain([i64::from(row.revision())])
        .collect();
    let query = format!(
        "SELECT revision, text FROM system_prompts
          WHERE conversation_id = $1 AND revision IN ({}) ORDER BY revision",
        (2..2 + used.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let revisions = on_conn!(conn, |c| {
        let mut revisions = sqlx::query_as::<_, (i64, String)>(&query).bind(TextUuid(id));
        for revision in &used {
            revisions = revisions.bind(revision);
        }
        revisions.fetch_all(c).await
    })?;
    let messages = rows;
    Ok(ConversationView {
        id,
        older_before,
        older_totals,
        system_prompt_revision: row.revision(),
        system_prompts: revisions
            .into_iter()
            .map(|(revision, text)| PromptRevision {
                revision: u32::try_from(revision).unwrap_or(0),
                text,
            })
            .collect(),
        title: row.title,
        model: row.model,
        system_prompt: row.system_prompt,
        messages: messages
            .into_iter()
            .map(|row| {
                let mut message = MessageView::from(row);
                if message.role == Role::User {
                    message.alternatives = alternatives
                        .iter()
                        .find(|(turn, _)| *turn == message.turn_id)
                        .map(|(_, all)| all.clone())
                        .unwrap_or_default();
                }
                message
            })
            .collect(),
    })
}

/// Renames a live conversation; it keeps its place in the list, and its title is the person's
/// from now on (no model's title replaces it). False if there is no such conversation for this
/// owner.
pub async fn rename_conversation(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    title: &str,
) -> Result<bool, DbError> {
    let done = on_writer!(db, |pool| sqlx::query(
        "UPDATE conversations SET title = $1, title_source = 'person'
          WHERE id = $2 AND owner = $3 AND deleted_at IS NULL",
    )
    .bind(title)
    .bind(TextUuid(id))
    .bind(&owner.0)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(done == 1)
}

/// Deletes a conversation for its owner: from now on it is found nowhere, until
/// [`restore_conversation`] undoes it or [`purge_deleted`] empties it.
pub async fn delete_conversation(db: &Db, owner: &Owner, id: Uuid) -> Result<bool, DbError> {
    let done = on_writer!(db, |pool| {
        sqlx::query(
        "UPDATE conversations SET deleted_at = $1 WHERE id = $2 AND owner = $3 AND deleted_at IS NULL",
    )
    .bind(now_ms())
    .bind(TextUuid(id))
    .bind(&owner.0)
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
    })?;
    Ok(done == 1)
}

/// Undoes a delete made at most `within` ago; false once that is too late (or never was).
pub async fn restore_conversation(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    within: Duration,
) -> Result<bool, DbError> {
    let since = now_ms().saturating_sub(i64::try_from(within.as_millis()).unwrap_or(i64::MAX));
    let done = on_writer!(db, |pool| sqlx::query(
        "UPDATE conversations SET deleted_at = NULL
         WHERE id = $1 AND owner = $2 AND deleted_at >= $3 AND purged_at IS NULL",
    )
    .bind(TextUuid(id))
    .bind(&owner.0)
    .bind(since)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(done == 1)
}

/// Empties the text of conversations deleted before `before_ms` (every owner's): title, system
/// prompts, messages (thinking and renderings included), error details and share links. Tokens and costs stay, since
/// spending limits count them. How many conversations were purged.
pub async fn purge_deleted(db: &Db, before_ms: i64) -> Result<u64, DbError> {
    in_transaction!(db, |tx| {
        let doomed = "SELECT id FROM conversations
                      WHERE deleted_at IS NOT NULL AND deleted_at < $1 AND purged_at IS NULL";
        sqlx::query(&format!(
            "UPDATE messages SET content = '', thinking = '', html = NULL, html_version = NULL,
                 error = NULL, error_detail = NULL
             WHERE conversation_id IN ({doomed})"
        ))
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        // Its share links go for good (deleting it alone already made them answer 404).
        sqlx::query(&format!(
            "DELETE FROM shares WHERE conversation_id IN ({doomed})"
        ))
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "DELETE FROM system_prompts WHERE conversation_id IN ({doomed})"
        ))
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        // Files its questions carried, and their bytes once nobody else's question holds them.
        super::attachments::purge_in(&mut Conn::from(&mut *tx), doomed, before_ms).await?;
        let purged = sqlx::query(
            "UPDATE conversations SET title = '', system_prompt = '', purged_at = $2
             WHERE deleted_at IS NOT NULL AND deleted_at < $1 AND purged_at IS NULL",
        )
        .bind(before_ms)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(purged.rows_affected())
    })
}

/// Returns false if the conversation does not exist for this owner.
pub async fn set_conversation_model(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    model: &str,
) -> Result<bool, DbError> {
    set_metadata(db, owner, id, "model", model).await
}

/// Sets one metadata column of a live conversation; `column` is one of the callers' constants.
async fn set_metadata(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    column: &'static str,
    value: &str,
) -> Result<bool, DbError> {
    let done = on_writer!(db, |pool| {
        sqlx::query(&format!(
        "UPDATE conversations SET {column} = $1, updated_at = $2 WHERE id = $3 AND owner = $4 AND deleted_at IS NULL"
    ))
    .bind(value)
    .bind(now_ms())
    .bind(TextUuid(id))
    .bind(&owner.0)
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
    })?;
    Ok(done == 1)
}
