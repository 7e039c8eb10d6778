//! Replies as the turn engine writes them: checkpoints of their text, how they ended, their
//! rendering, interrupting those left streaming, and the details of failures.

use std::time::Duration;

use uuid::Uuid;

use super::batch::Written;
use super::ids::TextUuid;
use super::messages::{owned, owned_and_live, MessageRow, MESSAGE_COLUMNS};
use super::{now_ms, replicas, usage, Conn, Db, DbError, Owner};
use crate::model::{MessageView, Outcome, Usage};

/// A streaming reply's row takes in its pieces (see `reply_pieces`) as it is marked interrupted.
const FOLD_PIECES: &str =
    "content = content || COALESCE((SELECT string_agg(p.content, '' ORDER BY p.id)
                                    FROM reply_pieces p WHERE p.message_id = messages.id), ''),
     thinking = thinking || COALESCE((SELECT string_agg(p.thinking, '' ORDER BY p.id)
                                      FROM reply_pieces p WHERE p.message_id = messages.id), '')";

/// Said of a reply the server stopped during (a crash, a kill) without storing how it ended.
pub const INTERRUPTED_BY_RESTART: &str = "the server stopped during this reply";

/// Marks interrupted every streaming reply no living replica writes, keeping its text as of its
/// last checkpoint, and returns their ids (their runs are settled by the caller). Also forgets
/// replicas dead for a day.
pub async fn interrupt_abandoned(db: &Db, lease: Duration) -> Result<Vec<Uuid>, DbError> {
    let sql = format!(
        "UPDATE messages SET status = 'interrupted', error = $1, updated_at = $2, {}
         WHERE status = 'streaming' AND NOT {}
         RETURNING id",
        FOLD_PIECES,
        replicas::alive(db.engine(), 3)
    );
    let forget = format!(
        "DELETE FROM replicas WHERE heartbeat_at < {} - $1",
        replicas::clock_ms(db.engine())
    );
    let ids = in_transaction!(db, |tx| {
        let ids: Vec<(TextUuid,)> = sqlx::query_as(&sql)
            .bind(INTERRUPTED_BY_RESTART)
            .bind(now_ms())
            .bind(replicas::lease_ms(lease))
            .fetch_all(&mut *tx)
            .await?;
        if !ids.is_empty() {
            // Their pieces were folded into their rows; no streaming reply's are touched.
            sqlx::query(
                "DELETE FROM reply_pieces WHERE NOT EXISTS (
                     SELECT 1 FROM messages m
                      WHERE m.id = reply_pieces.message_id AND m.status = 'streaming')",
            )
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(&forget)
            .bind(replicas::FORGET_AFTER_MS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        ids
    });
    Ok(ids.into_iter().map(|(id,)| id.0).collect())
}

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
        "UPDATE messages SET content = $1, thinking = $2, updated_at = $3
         WHERE id = $4 AND status = 'streaming' AND run = $5 AND {}",
        owned(6)
    );
    in_transaction!(db, |tx| {
        if db.engine() == super::Engine::Postgres {
            // A checkpoint is tried again at the next tick: on Postgres it gives way rather than
            // deadlock with a batch (both lock a person's `storage_used` row and their replies,
            // each in its own order), which would otherwise wait a second for the detector and
            // might lose the batch instead.
            sqlx::query("SET LOCAL lock_timeout = '100ms'")
                .execute(&mut *tx)
                .await?;
        }
        // Postgres runs a reply's ending beside this transaction: the rows are locked first, in
        // one statement, so a piece is never added after an ending took the pieces in (the lock
        // waits for the ending, then finds that reply no longer streaming).
        let ids = checkpoints.iter().map(|c| c.reply.message_id.to_string());
        let streaming = lock_streaming(&mut Conn::from(&mut *tx), ids.collect()).await?;
        let still_streaming = |c: &&Checkpoint| {
            streaming
                .as_ref()
                .is_none_or(|ids| ids.contains(&c.reply.message_id.to_string()))
        };
        let (whole, pieces): (Vec<&Checkpoint>, Vec<&Checkpoint>) = checkpoints
            .iter()
            .filter(still_streaming)
            .partition(|c| c.whole);
        // The tick's pieces [`PIECES_PER_STATEMENT`] to a statement (a statement is a round
        // trip to the database): a reply's whole text, rarer, is one statement each.
        for chunk in pieces.chunks(PIECES_PER_STATEMENT) {
            let sql = append_pieces_sql(chunk.len());
            // A partial statement's text changes with its count: not kept prepared.
            let mut query = sqlx::query(&sql).persistent(chunk.len() == PIECES_PER_STATEMENT);
            for c in chunk {
                query = query
                    .bind(TextUuid(c.reply.message_id))
                    .bind(i64::from(c.reply.run))
                    .bind(&c.reply.owner.0)
                    .bind(&c.text.content)
                    .bind(&c.text.thinking);
            }
            query.execute(&mut *tx).await?;
        }
        for c in whole {
            let written = sqlx::query(&update)
                .bind(&c.text.content)
                .bind(&c.text.thinking)
                .bind(now)
                .bind(TextUuid(c.reply.message_id))
                .bind(i64::from(c.reply.run))
                .bind(&c.reply.owner.0)
                .execute(&mut *tx)
                .await?;
            if written.rows_affected() == 1 {
                drop_pieces(&mut Conn::from(&mut *tx), c.reply.message_id).await?;
            }
        }
        // Pages following these replies through another replica read them now, not at their
        // next look (delivered at the commit).
        replicas::tell_in(&mut Conn::from(&mut *tx), replicas::Signal::Saved).await?;
        tx.commit().await?;
        Ok(())
    })
}

/// Pieces one statement appends, five parameters each. Few: SQLite finds a parameter by its
/// name with a walk through the statement's list of them, so a statement's binding costs the
/// square of its parameters (500 pieces a statement made SQLite's threads use 2.5× the CPU at
/// 1,000 replies at once). A full statement's text is always the same, so it stays prepared.
const PIECES_PER_STATEMENT: usize = 32;

/// Appends `count` pieces, each given as (message id, run, owner, content, thinking), to the
/// replies that are still streaming that run for that owner; the others are skipped.
fn append_pieces_sql(count: usize) -> String {
    let rows: Vec<String> = (0..count)
        .map(|i| {
            let at = i * 5;
            // Typed for Postgres, which would read an untyped parameter here as text.
            format!(
                "(${}, CAST(${} AS BIGINT), ${}, ${}, ${})",
                at + 1,
                at + 2,
                at + 3,
                at + 4,
                at + 5
            )
        })
        .collect();
    format!(
        "WITH piece (message_id, run, owner, content, thinking) AS (VALUES {})
         INSERT INTO reply_pieces (message_id, content, thinking)
         SELECT messages.id, piece.content, piece.thinking
           FROM piece JOIN messages ON messages.id = piece.message_id
          WHERE messages.status = 'streaming' AND messages.run = piece.run
            AND EXISTS (SELECT 1 FROM conversations c
                         WHERE c.id = messages.conversation_id AND c.owner = piece.owner)",
        rows.join(", ")
    )
}

/// On Postgres, locks the rows of `ids` still streaming and returns those; `None` on SQLite,
/// whose one writer already keeps an ending and a checkpoint apart.
async fn lock_streaming(
    conn: &mut Conn<'_>,
    ids: Vec<String>,
) -> Result<Option<std::collections::HashSet<String>>, DbError> {
    let Conn::Postgres(c) = conn else {
        return Ok(None);
    };
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM messages WHERE id = ANY($1) AND status = 'streaming'
         ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut **c)
    .await?;
    Ok(Some(rows.into_iter().map(|(id,)| id).collect()))
}

/// Deletes a reply's pieces, once its row holds their text.
async fn drop_pieces(conn: &mut Conn<'_>, message_id: Uuid) -> Result<(), DbError> {
    on_conn!(conn, |c| sqlx::query(
        "DELETE FROM reply_pieces WHERE message_id = $1"
    )
    .bind(TextUuid(message_id))
    .execute(c)
    .await
    .map(|_| ()))?;
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
    db.batcher()
        .write(move |mut conn| {
            Box::pin(async move {
                store_ending(&mut conn, &reply, &text, &html, &outcome, charge.as_ref()).await?;
                Ok(Written::Keep(()))
            })
        })
        .await
}

/// [`finish_reply`]'s statements, on the batch's connection.
async fn store_ending(
    conn: &mut Conn<'_>,
    reply: &ReplyRef,
    text: &ReplyText,
    html: &str,
    outcome: &Outcome,
    charge: Option<&usage::Charge>,
) -> Result<(), DbError> {
    let figures = outcome.usage;
    let field = |f: fn(&Usage) -> u32| figures.as_ref().map(|u| i64::from(f(u)));
    let sql = format!(
        "UPDATE messages SET content = $1, thinking = $2, html = $3, html_version = $4,
            status = $5, error = $6, error_detail = $7,
            input_tokens = $8, cached_input_tokens = $9, cache_write_tokens = $10,
            output_tokens = $11, reasoning_tokens = $12, usage_estimated = $13, cost_usd = $14,
            left_out = $15, cut_at_limit = $16, updated_at = $17
         WHERE id = $18 AND run = $19 AND {}",
        owned(20)
    );
    on_conn!(conn, |c| sqlx::query(&sql)
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
        .bind(i64::from(outcome.left_out))
        .bind(outcome.cut_at_limit)
        .bind(now_ms())
        .bind(TextUuid(reply.message_id))
        .bind(i64::from(reply.run))
        .bind(&reply.owner.0)
        .execute(c)
        .await
        .map(|_| ()))?;
    drop_pieces(conn, reply.message_id).await?;
    // Pages following this reply through another replica see its end at the commit.
    replicas::tell_in(conn, replicas::Signal::Saved).await?;
    if let Some(charge) = charge {
        usage::settle(conn, reply.message_id, reply.run, charge).await?;
    }
    Ok(())
}

/// Keeps the rendering of a finished reply's run (made when it was first shown after the
/// renderer changed, or before renderings were kept).
pub async fn store_html(db: &Db, message_id: Uuid, run: u32, html: &str) -> Result<(), DbError> {
    on_writer!(db, |pool| sqlx::query(
        "UPDATE messages SET html = $1, html_version = $2
         WHERE id = $3 AND run = $4 AND status <> 'streaming'",
    )
    .bind(html)
    .bind(crate::server::render::RENDERER_VERSION)
    .bind(TextUuid(message_id))
    .bind(i64::from(run))
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Marks a reply interrupted that the database holds as streaming but no turn in this process
/// is writing (its end could not be stored), unless another living replica writes it. Returns
/// whether it was such a reply.
pub async fn interrupt_reply(db: &Db, reply: &ReplyRef) -> Result<bool, DbError> {
    let sql = format!(
        "UPDATE messages SET status = 'interrupted', error = $1, updated_at = $2, {FOLD_PIECES}
         WHERE id = $3 AND run = $4 AND status = 'streaming'
           AND {} AND {}",
        owned(5),
        replicas::not_written_elsewhere(db.engine(), 6, 7)
    );
    in_transaction!(db, |tx| {
        let done = sqlx::query(&sql)
            .bind(INTERRUPTED_BY_RESTART)
            .bind(now_ms())
            .bind(TextUuid(reply.message_id))
            .bind(i64::from(reply.run))
            .bind(&reply.owner.0)
            .bind(db.replica())
            .bind(replicas::lease_ms(replicas::LEASE))
            .execute(&mut *tx)
            .await?;
        let interrupted = done.rows_affected() == 1;
        if interrupted {
            drop_pieces(&mut Conn::from(&mut *tx), reply.message_id).await?;
        }
        tx.commit().await?;
        Ok(interrupted)
    })
}

/// The reply streaming in a conversation, if any.
pub async fn streaming_reply_of(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
) -> Result<Option<MessageView>, DbError> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE conversation_id = $1 AND status = 'streaming'
           AND {}",
        owned_and_live(2)
    );
    let row: Option<MessageRow> = on_reader!(db, |pool| sqlx::query_as(&sql)
        .bind(TextUuid(conversation_id))
        .bind(&owner.0)
        .fetch_optional(pool)
        .await)?;
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
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let query = format!(
        "SELECT id, error_detail FROM messages
         WHERE id IN ({}) AND conversation_id = $1 AND error_detail IS NOT NULL
           AND {}",
        (3..3 + messages.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", "),
        owned_and_live(2)
    );
    let rows = on_reader!(db, |pool| {
        let mut rows = sqlx::query_as::<_, (TextUuid, String)>(&query)
            .bind(TextUuid(conversation_id))
            .bind(&owner.0);
        for id in messages {
            rows = rows.bind(TextUuid(*id));
        }
        rows.fetch_all(pool).await
    })?;
    Ok(rows
        .into_iter()
        .map(|(id, detail)| (id.0, detail))
        .collect())
}
