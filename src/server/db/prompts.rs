//! A conversation's system prompt and the revisions of it that replies were written with.

use uuid::Uuid;

use super::ids::TextUuid;
use super::lookups::conversation_row;
use super::{now_ms, Conn, Db, DbError, Owner};

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
    in_transaction!(db, |tx| {
        let Some(row) = conversation_row(&mut Conn::from(&mut *tx), owner, id).await? else {
            return Ok(None);
        };
        if row.system_prompt == system_prompt {
            return Ok(Some(row.revision()));
        }
        let revision = row.revision().saturating_add(1);
        let now = now_ms();
        insert_revision(&mut Conn::from(&mut *tx), id, revision, system_prompt, now).await?;
        // Revisions no reply was written with are kept only while they are among the latest few.
        sqlx::query(
            "DELETE FROM system_prompts
             WHERE conversation_id = $1 AND revision <= $2
               AND revision NOT IN (SELECT system_prompt_revision FROM messages
                                     WHERE conversation_id = $1
                                       AND system_prompt_revision IS NOT NULL)",
        )
        .bind(TextUuid(id))
        .bind(i64::from(revision) - i64::from(UNUSED_PROMPT_REVISIONS_KEPT))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE conversations SET system_prompt = $1, system_prompt_revision = $2, updated_at = $3
             WHERE id = $4",
        )
        .bind(system_prompt)
        .bind(i64::from(revision))
        .bind(now)
        .bind(TextUuid(id))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(revision))
    })
}

pub(super) async fn insert_revision(
    conn: &mut Conn<'_>,
    conversation_id: Uuid,
    revision: u32,
    text: &str,
    now: i64,
) -> Result<(), DbError> {
    on_conn!(conn, |c| sqlx::query(
        "INSERT INTO system_prompts (conversation_id, revision, text, created_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(TextUuid(conversation_id))
    .bind(i64::from(revision))
    .bind(text)
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))?;
    Ok(())
}
