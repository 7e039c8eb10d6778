//! Reads the topics share, kept below them all: a conversation's row as its owner may see it, and
//! whether it has a reply streaming.

use sqlx::SqliteConnection;
use uuid::Uuid;

use super::ids::TextUuid;
use super::{DbError, Owner};

#[derive(sqlx::FromRow)]
pub(super) struct ConversationRow {
    pub(super) title: String,
    pub(super) model: String,
    pub(super) system_prompt: String,
    pub(super) system_prompt_revision: i64,
    /// The last turn of the branch on screen.
    pub(super) current_turn_id: Option<TextUuid>,
}

impl ConversationRow {
    pub(super) fn revision(&self) -> u32 {
        u32::try_from(self.system_prompt_revision).unwrap_or(0)
    }
}

pub(super) async fn conversation_row(
    executor: impl sqlx::SqliteExecutor<'_>,
    owner: &Owner,
    id: Uuid,
) -> Result<Option<ConversationRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT title, model, system_prompt, system_prompt_revision, current_turn_id FROM conversations
         WHERE id = ? AND owner = ? AND deleted_at IS NULL",
    )
    .bind(TextUuid(id))
    .bind(&owner.0)
    .fetch_optional(executor)
    .await?)
}

/// True if the conversation has a reply streaming now.
pub(super) async fn streaming_reply(
    tx: &mut SqliteConnection,
    conversation_id: Uuid,
) -> Result<bool, DbError> {
    Ok(
        sqlx::query("SELECT 1 FROM messages WHERE conversation_id = ? AND status = 'streaming'")
            .bind(TextUuid(conversation_id))
            .fetch_optional(&mut *tx)
            .await?
            .is_some(),
    )
}
