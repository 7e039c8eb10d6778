//! Replies as the turn engine writes them: checkpoints of their text, how they ended, their
//! rendering, interrupting those left streaming, and the details of failures.

use sqlx::SqliteConnection;
use uuid::Uuid;

use super::batch::Written;
use super::ids::TextUuid;
use super::messages::{MessageRow, MESSAGE_COLUMNS, OWNED, OWNED_AND_LIVE};
use super::{begin_write, now_ms, usage, Db, DbError, Owner};
use crate::model::{MessageView, Outcome, Usage};

/// A streaming reply's row takes in its pieces (see `reply_pieces`) as it is marked interrupted.
const FOLD_PIECES: &str =
    "content = content || COALESCE((SELECT group_concat(p.content, '' ORDER BY p.id)
                                    FROM reply_pieces p WHERE p.message_id = messages.id), ''),
     thinking = thinking || COALESCE((SELECT group_concat(p.thinking, '' ORDER BY p.id)
                                      FROM reply_pieces p WHERE p.message_id = messages.id), '')";

/// Replies left `streaming` by a crash or kill: keep their text, mark them interrupted.
pub async fn interrupt_streaming(db: &Db) -> Result<u64, DbError> {
    let mut tx = begin_write(db).await?;
    let done = sqlx::query(&format!(
        "UPDATE messages SET status = 'interrupted', error = ?, updated_at = ?, {FOLD_PIECES}
         WHERE status = 'streaming'"
    ))
    .bind(INTERRUPTED_BY_RESTART)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    // Nothing streams now: every piece was taken in.
    sqlx::query("DELETE FROM reply_pieces")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Said of a reply the server stopped during (a crash, a kill) without storing how it ended.
pub const INTERRUPTED_BY_RESTART: &str = "the server stopped during this reply";

/// Addresses one run of a reply the turn engine is writing.
#[derive(Clone, Debug)]
pub struct ReplyRef {
    pub owner: Owner,
    pub message_id: Uuid,
    pub run: u32,
}

/// Text of a running reply, saved so that a crash loses only what came after it.
pub struct Checkpoint {
    pub reply: ReplyRef,
    pub text: ReplyText,
    /// `text` is the whole reply, to be written into its row; else it is what came since the
    /// last checkpoint, a piece appended beside the row.
    pub whole: bool,
}

/// What a reply has written: its answer and, apart, its thinking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyText {
    pub content: String,
    pub thinking: String,
}

/// Saves the text of every running reply in one transaction. A reply that has meanwhile ended
/// (or moved on to a later run) is left alone.
pub async fn save_checkpoints(db: &Db, checkpoints: &[Checkpoint]) -> Result<(), DbError> {
    if checkpoints.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let update = format!(
        "UPDATE messages SET content = ?, thinking = ?, updated_at = ?
         WHERE id = ? AND status = 'streaming' AND run = ? AND {OWNED}"
    );
    let append = format!(
        "INSERT INTO reply_pieces (message_id, content, thinking)
         SELECT id, ?, ? FROM messages WHERE id = ? AND status = 'streaming' AND run = ? AND {OWNED}"
    );
    let mut tx = begin_write(db).await?;
    for c in checkpoints {
        let text = if c.whole { &update } else { &append };
        let mut query = sqlx::query(text)
            .bind(&c.text.content)
            .bind(&c.text.thinking);
        if c.whole {
            query = query.bind(now);
        }
        let written = query
            .bind(TextUuid(c.reply.message_id))
            .bind(c.reply.run)
            .bind(&c.reply.owner.0)
            .execute(&mut *tx)
            .await?;
        if c.whole && written.rows_affected() == 1 {
            drop_pieces(&mut tx, c.reply.message_id).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes a reply's pieces, once its row holds their text.
async fn drop_pieces(tx: &mut SqliteConnection, message_id: Uuid) -> Result<(), DbError> {
    sqlx::query("DELETE FROM reply_pieces WHERE message_id = ?")
        .bind(TextUuid(message_id))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Stores how a reply ended, with its whole text, and settles this run's reservation to what
/// it cost (`charge`), in one transaction. Without a charge the reservation stays open, for
/// `budget::settle_open_runs` to bill at an estimate.
/// Committed with the other writes of the moment (see `batch`).
pub async fn finish_reply(
    db: &Db,
    reply: &ReplyRef,
    text: &ReplyText,
    html: &str,
    outcome: &Outcome,
    charge: Option<&usage::Charge>,
) -> Result<(), DbError> {
    let reply = reply.clone();
    let text = text.clone();
    let html = html.to_owned();
    let outcome = outcome.clone();
    let charge = charge.cloned();
    db.batcher()?
        .write(move |conn| {
            Box::pin(async move {
                store_ending(conn, &reply, &text, &html, &outcome, charge.as_ref()).await?;
                Ok(Written::Keep(()))
            })
        })
        .await
}

/// [`finish_reply`]'s statements, on the batch's connection.
async fn store_ending(
    tx: &mut SqliteConnection,
    reply: &ReplyRef,
    text: &ReplyText,
    html: &str,
    outcome: &Outcome,
    charge: Option<&usage::Charge>,
) -> Result<(), DbError> {
    let figures = outcome.usage;
    let field = |f: fn(&Usage) -> u32| figures.as_ref().map(|u| i64::from(f(u)));
    sqlx::query(&format!(
        "UPDATE messages SET content = ?, thinking = ?, html = ?, html_version = ?,
            status = ?, error = ?, error_detail = ?,
            input_tokens = ?, cached_input_tokens = ?, cache_write_tokens = ?, output_tokens = ?,
            reasoning_tokens = ?, usage_estimated = ?, cost_usd = ?, left_out = ?,
            cut_at_limit = ?, updated_at = ?
         WHERE id = ? AND run = ? AND {OWNED}"
    ))
    .bind(&text.content)
    .bind(&text.thinking)
    .bind(Some(html).filter(|h| !h.is_empty()))
    .bind(crate::server::render::RENDERER_VERSION)
    .bind(outcome.status)
    .bind(&outcome.error)
    .bind(&outcome.error_detail)
    .bind(field(|u| u.input_tokens))
    .bind(field(|u| u.cached_input_tokens))
    .bind(field(|u| u.cache_write_tokens))
    .bind(field(|u| u.output_tokens))
    .bind(field(|u| u.reasoning_tokens))
    .bind(outcome.usage_estimated)
    .bind(outcome.cost_usd)
    .bind(outcome.left_out)
    .bind(outcome.cut_at_limit)
    .bind(now_ms())
    .bind(TextUuid(reply.message_id))
    .bind(reply.run)
    .bind(&reply.owner.0)
    .execute(&mut *tx)
    .await?;
    drop_pieces(&mut *tx, reply.message_id).await?;
    if let Some(charge) = charge {
        usage::settle(&mut *tx, reply.message_id, reply.run, charge).await?;
    }
    Ok(())
}

/// Keeps the rendering of a finished reply's run (made when it was first shown after the
/// renderer changed, or before renderings were kept).
pub async fn store_html(db: &Db, message_id: Uuid, run: u32, html: &str) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE messages SET html = ?, html_version = ?
         WHERE id = ? AND run = ? AND status <> 'streaming'",
    )
    .bind(html)
    .bind(crate::server::render::RENDERER_VERSION)
    .bind(TextUuid(message_id))
    .bind(run)
    .execute(db.writer()?)
    .await?;
    Ok(())
}

/// Marks a reply interrupted that the database holds as streaming but no turn in this process
/// is writing (its end could not be stored). Returns whether it was such a reply.
pub async fn interrupt_reply(db: &Db, reply: &ReplyRef) -> Result<bool, DbError> {
    let mut tx = begin_write(db).await?;
    let done = sqlx::query(&format!(
        "UPDATE messages SET status = 'interrupted', error = ?, updated_at = ?, {FOLD_PIECES}
         WHERE id = ? AND run = ? AND status = 'streaming'
           AND {OWNED}"
    ))
    .bind(INTERRUPTED_BY_RESTART)
    .bind(now_ms())
    .bind(TextUuid(reply.message_id))
    .bind(reply.run)
    .bind(&reply.owner.0)
    .execute(&mut *tx)
    .await?;
    let interrupted = done.rows_affected() == 1;
    if interrupted {
        drop_pieces(&mut tx, reply.message_id).await?;
    }
    tx.commit().await?;
    Ok(interrupted)
}

/// The reply streaming in a conversation, if any.
pub async fn streaming_reply_of(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
) -> Result<Option<MessageView>, DbError> {
    let row: Option<MessageRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE conversation_id = ? AND status = 'streaming'
           AND {OWNED_AND_LIVE}"
    ))
    .bind(TextUuid(conversation_id))
    .bind(&owner.0)
    .fetch_optional(db.reader()?)
    .await?;
    Ok(row.map(MessageView::from))
}

/// The stored detail of each failed reply among `messages` (those a page was sent) of a
/// conversation, for an admin's view.
pub async fn error_details(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    messages: &[Uuid],
) -> Result<Vec<(Uuid, String)>, DbError> {
    let query = format!(
        "SELECT id, error_detail FROM messages
         WHERE id IN ({}) AND conversation_id = ? AND error_detail IS NOT NULL
           AND {OWNED_AND_LIVE}",
        vec!["?"; messages.len()].join(", ")
    );
    let mut rows = sqlx::query_as::<_, (TextUuid, String)>(&query);
    for id in messages {
        rows = rows.bind(TextUuid(*id));
    }
    let rows = rows
        .bind(TextUuid(conversation_id))
        .bind(&owner.0)
        .fetch_all(db.reader()?)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, detail)| (id.0, detail))
        .collect())
}
