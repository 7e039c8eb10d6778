//! Share links: a pinned snapshot of a conversation's branch (see
//! `migrations/…_shares.sql`), listed and revoked by its owner, read by anyone holding the
//! token's key.

use uuid::Uuid;

use super::branches;
use super::ids::TextUuid;
use super::lookups::streaming_reply;
use super::messages::{MessageRow, MESSAGE_COLUMNS};
use super::{now_ms, Db, DbError, Owner};
use crate::model::shares::{SharedLink, MAX_SHARES};
use crate::model::{MessageStatus, Role};

/// A new link: its id, the token in its address and the key it is looked up by.
pub struct NewShare<'a> {
    pub id: Uuid,
    pub token: &'a str,
    pub key_hash: &'a str,
}

/// Why a conversation could not be shared.
#[derive(Debug, PartialEq)]
pub enum CannotShare {
    NoSuchConversation,
    /// It has no message yet.
    Empty,
    /// A reply is being written: what would the link show?
    Busy,
    /// The owner has [`MAX_SHARES`] links already.
    TooMany,
}

/// Pins the branch on screen of the owner's conversation as a new link.
pub async fn create_share(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    new: &NewShare<'_>,
) -> Result<Result<SharedLink, CannotShare>, DbError> {
    in_transaction!(db, |tx| {
        let row: Option<(String, Option<TextUuid>)> = sqlx::query_as(
            "SELECT title, current_turn_id FROM conversations
              WHERE id = $1 AND owner = $2 AND deleted_at IS NULL",
        )
        .bind(TextUuid(conversation_id))
        .bind(&owner.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((title, end)) = row else {
            return Ok(Err(CannotShare::NoSuchConversation));
        };
        let Some(TextUuid(end_turn_id)) = end else {
            return Ok(Err(CannotShare::Empty));
        };
        if streaming_reply(&mut super::Conn::from(&mut *tx), conversation_id).await? {
            return Ok(Err(CannotShare::Busy));
        }
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM shares WHERE owner = $1")
            .bind(&owner.0)
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_SHARES {
            return Ok(Err(CannotShare::TooMany));
        }
        let (end_chars,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(MAX(length(content)), 0) AS BIGINT) FROM messages
              WHERE turn_id = $1 AND role = 'assistant'",
        )
        .bind(TextUuid(end_turn_id))
        .fetch_one(&mut *tx)
        .await?;
        let created_at = now_ms();
        sqlx::query(
            "INSERT INTO shares (id, key_hash, token, owner, conversation_id, end_turn_id, end_chars,
                 title, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(TextUuid(new.id))
        .bind(new.key_hash)
        .bind(new.token)
        .bind(&owner.0)
        .bind(TextUuid(conversation_id))
        .bind(TextUuid(end_turn_id))
        .bind(end_chars)
        .bind(&title)
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(SharedLink {
            id: new.id,
            conversation_id,
            title,
            path: share_path(new.token),
            created_at,
        }))
    })
}

/// The owner's links, newest first (of one conversation, or all of them).
pub async fn list_shares(
    db: &Db,
    owner: &Owner,
    conversation_id: Option<Uuid>,
) -> Result<Vec<SharedLink>, DbError> {
    let rows: Vec<(TextUuid, TextUuid, String, String, i64)> =
        on_reader!(db, |pool| sqlx::query_as(
            "SELECT s.id, s.conversation_id, s.title, s.token, s.created_at
           FROM shares s JOIN conversations c ON c.id = s.conversation_id
          WHERE s.owner = $1 AND c.deleted_at IS NULL
            AND ($2 IS NULL OR s.conversation_id = $2)
          ORDER BY s.created_at DESC, s.id LIMIT $3",
        )
        .bind(&owner.0)
        .bind(conversation_id.map(TextUuid))
        .bind(i64::try_from(MAX_SHARES).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, conversation_id, title, token, created_at)| SharedLink {
                id: id.0,
                conversation_id: conversation_id.0,
                title,
                path: share_path(&token),
                created_at,
            },
        )
        .collect())
}

/// Revokes one of the owner's links; false if they have no such link.
pub async fn revoke_share(db: &Db, owner: &Owner, id: Uuid) -> Result<bool, DbError> {
    let done = on_writer!(db, |pool| sqlx::query(
        "DELETE FROM shares WHERE id = $1 AND owner = $2"
    )
    .bind(TextUuid(id))
    .bind(&owner.0)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(done == 1)
}

fn share_path(token: &str) -> String {
    format!("/s/{token}")
}

/// Turns a shared page shows at most (the newest of the snapshot).
pub const SHARED_TURNS: u32 = 100;
/// Bytes of text and HTML a shared page holds at most, unless its newest turn alone is more.
pub const SHARED_BYTES: usize = 2 << 20;

/// A snapshot as its page shows it.
pub struct SharedSnapshot {
    /// Whose it is (what its questions' files are looked up under; never shown).
    pub owner: Owner,
    pub title: String,
    pub created_at: i64,
    /// Oldest first; only what was on screen when it was shared.
    pub messages: Vec<SharedMessage>,
    /// Earlier turns of the snapshot the page leaves out (its bound).
    pub turns_left_out: bool,
}

pub struct SharedMessage {
    pub turn_id: Uuid,
    pub role: Role,
    pub content: String,
    /// The stored rendering, when it is of exactly `content`.
    pub html: Option<String>,
    pub status: MessageStatus,
    pub error: Option<String>,
}

/// The snapshot behind a link's key: `None` when there is no such link, its conversation is
/// deleted, or its owner's account is disabled (all answer alike).
pub async fn shared_snapshot(db: &Db, key_hash: &str) -> Result<Option<SharedSnapshot>, DbError> {
    let found: Option<(TextUuid, TextUuid, i64, String, i64, String)> =
        on_reader!(db, |pool| sqlx::query_as(
            "SELECT s.conversation_id, s.end_turn_id, s.end_chars, s.title, s.created_at, s.owner
           FROM shares s
           JOIN conversations c ON c.id = s.conversation_id AND c.owner = s.owner
          WHERE s.key_hash = $1 AND c.deleted_at IS NULL AND c.purged_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.owner
                             AND u.disabled_at IS NOT NULL)",
        )
        .bind(key_hash)
        .fetch_optional(pool)
        .await)?;
    let Some((conversation_id, end_turn, end_chars, title, created_at, owner)) = found else {
        return Ok(None);
    };
    // One turn more than shown, to know whether earlier ones exist.
    let mut rows: Vec<MessageRow> = branches::newest_turns(
        &mut db.read().await?.conn(),
        conversation_id.0,
        end_turn.0,
        None,
        SHARED_TURNS + 1,
        MESSAGE_COLUMNS,
    )
    .await?;
    let end_chars = usize::try_from(end_chars).unwrap_or(0);
    let mut turns_left_out = false;
    let mut kept = 0;
    let mut bytes = 0usize;
    let mut turns = 0u32;
    for (i, message) in rows.iter().enumerate() {
        bytes = bytes.saturating_add(message.content.len());
        bytes = bytes.saturating_add(message.html.as_ref().map_or(0, String::len));
        if message.role == Role::User {
            turns = turns.saturating_add(1);
            if turns > SHARED_TURNS || (kept > 0 && bytes > SHARED_BYTES) {
                turns_left_out = true;
                break;
            }
            kept = i + 1;
        }
    }
    rows.truncate(kept);
    rows.reverse();
    let messages = rows
        .into_iter()
        .map(|row| {
            let mut content = row.content;
            let mut html = row.html;
            // The end turn's reply as it was: a Continue after the link appended to it.
            if row.turn_id.0 == end_turn.0 && row.role == Role::Assistant {
                if let Some((cut, _)) = content.char_indices().nth(end_chars) {
                    content.truncate(cut);
                    html = None;
                }
            }
            SharedMessage {
                turn_id: row.turn_id.0,
                role: row.role,
                content,
                html,
                status: row.status,
                error: row.error,
            }
        })
        .collect();
    Ok(Some(SharedSnapshot {
        owner: Owner(owner),
        title,
        created_at,
        messages,
        turns_left_out,
    }))
}
