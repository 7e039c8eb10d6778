//! A conversation's system prompt and the revisions of it that replies were written with.

use sqlx::SqliteConnection;
use uuid::Uuid;

use super::ids::TextUuid;
use super::lookups::conversation_row;
use super::{begin_write, now_ms, Db, DbError, Owner};

/// System prompt revisions kept beside those replies were written with: the newest few.
pub const UNUSED_PROMPT_REVISIONS_KEPT: u32 = 10;

/// Makes `system_prompt` the conversation's prompt from its next reply on, as a new revision
/// (the same text again changes nothing). Revisions no reply used are forgotten once
/// [`UNUSED_PROMPT_REVISIONS_KEPT`] newer ones exist. The revision now in effect; `None` if the
/// conversation does not exist for this owner.
pub async fn set_system_prompt(
    db: &Db,
    owner: &Owner,
    id: Uuid,
    system_prompt: &str,
) -> Result<Option<u32>, DbError> {
    let mut tx = begin_write(db).await?;
    let Some(row) = conversation_row(&mut *tx, owner, id).await? else {
        return Ok(None);
    };
    if row.system_prompt == system_prompt {
        return Ok(Some(row.revision()));
    }
    let revision = row.revision().saturating_add(1);
    let now = now_ms();
    insert_revision(&mut tx, id, revision, system_prompt, now).await?;
    // Revisions no reply was written with are kept only while they are among the latest few.
    sqlx::query(
        "DELETE FROM system_prompts
         WHERE conversation_id = ?1 AND revision <= ?2
           AND revision NOT IN (SELECT system_prompt_revision FROM messages
                                 WHERE conversation_id = ?1
                                   AND system_prompt_revision IS NOT NULL)",
    )
    .bind(TextUuid(id))
    .bind(i64::from(revision) - i64::from(UNUSED_PROMPT_REVISIONS_KEPT))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE conversations SET system_prompt = ?, system_prompt_revision = ?, updated_at = ?
         WHERE id = ?",
    )
    .bind(system_prompt)
    .bind(revision)
    .bind(now)
    .bind(TextUuid(id))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(revision))
}

pub(super) async fn insert_revision(
    tx: &mut SqliteConnection,
    conversation_id: Uuid,
    revision: u32,
    text: &str,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO system_prompts (conversation_id, revision, text, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(TextUuid(conversation_id))
    .bind(revision)
    .bind(text)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
