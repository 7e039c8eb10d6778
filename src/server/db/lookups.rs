//! Reads the topics share, kept below them all: a conversation's row as its owner may see it, and
//! whether it has a reply streaming.

use uuid::Uuid;

use super::ids::TextUuid;
use super::{Conn, DbError, Owner};

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
    conn: &mut Conn<'_>,
    owner: &Owner,
    id: Uuid,
) -> Result<Option<ConversationRow>, DbError> {
    Ok(on_conn!(conn, |c| {
        sqlx::query_as(
        "SELECT title, model, system_prompt, system_prompt_revision, current_turn_id FROM conversations
         WHERE id = $1 AND owner = $2 AND deleted_at IS NULL",
    )
    .bind(TextUuid(id))
    .bind(&owner.0)
    .fetch_optional(c)
    .await
    })?)
}

/// True if the conversation has a reply streaming now.
pub(super) async fn streaming_reply(
    conn: &mut Conn<'_>,
    conversation_id: Uuid,
) -> Result<bool, DbError> {
    Ok(on_conn!(conn, |c| sqlx::query(
        "SELECT 1 FROM messages WHERE conversation_id = $1 AND status = 'streaming'"
    )
    .bind(TextUuid(conversation_id))
    .fetch_optional(c)
    .await
    .map(|row| row.is_some()))?)
}
