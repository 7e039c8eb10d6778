//! A `messages` row as stored and what it means, and the owner checks that queries on messages
//! share.

use super::ids::TextUuid;
use crate::model::{MessageStatus, MessageView, Outcome, Role, Usage};

/// A `messages` row's owner check (see the module note), the owner bound as parameter `$owner`.
pub(super) fn owned(owner: u32) -> String {
    format!(
        "EXISTS (SELECT 1 FROM conversations c
                  WHERE c.id = messages.conversation_id AND c.owner = ${owner})"
    )
}

/// [`owned`], and the conversation not deleted: what a person may see.
pub(super) fn owned_and_live(owner: u32) -> String {
    format!(
        "EXISTS (SELECT 1 FROM conversations c
                  WHERE c.id = messages.conversation_id AND c.owner = ${owner}
                    AND c.deleted_at IS NULL)"
    )
}

/// A streaming reply's saved `$column` (`content` or `thinking`): its row's, then the pieces
/// checkpoints appended since the row was last written whole (`reply_pieces`).
macro_rules! saved_text {
    ($column:literal) => {
        concat!(
            "CASE WHEN messages.status = 'streaming' THEN messages.",
            $column,
            " || COALESCE((SELECT string_agg(p.",
            $column,
            ", '' ORDER BY p.id) FROM reply_pieces p WHERE p.message_id = messages.id), '')
             ELSE messages.",
            $column,
            " END AS ",
            $column
        )
    };
}

/// The columns of a [`MessageRow`], `$thinking` and `$html` standing for the reply's thinking
/// and its stored rendering.
macro_rules! message_columns {
    ($thinking:expr, $html:literal) => {
        concat!(
            "id, turn_id, conversation_id, role, ",
            saved_text!("content"),
            ", ",
            $thinking,
            ", ",
            $html,
            ", status, error, model,
            input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
            usage_estimated, cost_usd, run, left_out, system_prompt_revision, parent_turn_id,
            position, cut_at_limit, imported"
        )
    };
}
pub(super) const MESSAGE_COLUMNS: &str =
    message_columns!(saved_text!("thinking"), "html, html_version");
/// For a prompt: thinking is never sent back to a model, so it is not even read, nor is HTML.
pub(super) const PROMPT_COLUMNS: &str =
    message_columns!("'' AS thinking", "NULL AS html, NULL AS html_version");

/// A `messages` row as stored (role, status and ids read as their types); [`MessageView`] is
/// what it means.
#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    pub(super) id: TextUuid,
    pub(super) turn_id: TextUuid,
    pub(super) conversation_id: TextUuid,
    pub(super) role: Role,
    pub(super) content: String,
    pub(super) thinking: String,
    pub(super) html: Option<String>,
    pub(super) html_version: Option<i64>,
    pub(super) status: MessageStatus,
    pub(super) error: Option<String>,
    pub(super) model: Option<String>,
    pub(super) input_tokens: Option<i64>,
    pub(super) cached_input_tokens: Option<i64>,
    pub(super) cache_write_tokens: Option<i64>,
    pub(super) output_tokens: Option<i64>,
    pub(super) reasoning_tokens: Option<i64>,
    pub(super) usage_estimated: bool,
    pub(super) cost_usd: Option<f64>,
    pub(super) run: i64,
    pub(super) left_out: i64,
    pub(super) system_prompt_revision: Option<i64>,
    pub(super) parent_turn_id: Option<TextUuid>,
    pub(super) position: i64,
    pub(super) cut_at_limit: bool,
    pub(super) imported: bool,
}

impl MessageRow {
    /// Bytes the page receives for this message: its text, thinking and rendering.
    pub(super) fn size(&self) -> usize {
        self.content
            .len()
            .saturating_add(self.thinking.len())
            .saturating_add(self.html.as_ref().map_or(0, String::len))
    }
}

impl From<MessageRow> for MessageView {
    fn from(r: MessageRow) -> Self {
        let count = |n: Option<i64>| n.map(|n| u32::try_from(n).unwrap_or(0));
        let usage = count(r.input_tokens).map(|input_tokens| Usage {
            input_tokens,
            cached_input_tokens: count(r.cached_input_tokens).unwrap_or(0),
            cache_write_tokens: count(r.cache_write_tokens).unwrap_or(0),
            output_tokens: count(r.output_tokens).unwrap_or(0),
            reasoning_tokens: count(r.reasoning_tokens).unwrap_or(0),
        });
        MessageView {
            id: r.id.0,
            turn_id: r.turn_id.0,
            role: r.role,
            content: r.content,
            thinking: r.thinking,
            // A rendering by another renderer than this one is as good as none.
            html: r
                .html
                .filter(|_| r.html_version == Some(crate::server::render::RENDERER_VERSION))
                .unwrap_or_default(),
            model: r.model,
            run: u32::try_from(r.run).unwrap_or(1),
            system_prompt_revision: r.system_prompt_revision.and_then(|n| u32::try_from(n).ok()),
            parent_turn_id: r.parent_turn_id.map(|t| t.0),
            alternatives: Vec::new(),
            attachments: Vec::new(),
            outcome: Outcome {
                status: r.status,
                error: r.error,
                usage,
                usage_estimated: r.usage_estimated,
                cost_usd: r.cost_usd,
                left_out: u32::try_from(r.left_out).unwrap_or(0),
                error_detail: None,
                cut_at_limit: r.cut_at_limit,
                imported: r.imported,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqlitePoolOptions;
    use sqlx::SqlitePool;
    use uuid::Uuid;

    use super::*;

    async fn pool() -> SqlitePool {
        SqlitePoolOptions::new()
            .connect("sqlite::memory:")
            .await
            .expect("in-memory database")
    }

    /// What is bound is stored as given back by `SELECT ?`.
    async fn stored<T>(pool: &SqlitePool, value: T) -> String
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send,
    {
        let (text,): (String,) = sqlx::query_as("SELECT ?")
            .bind(value)
            .fetch_one(pool)
            .await
            .expect("select");
        text
    }

    async fn read<T>(pool: &SqlitePool, text: &str) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + Unpin,
    {
        let (value,): (T,) = sqlx::query_as("SELECT ?")
            .bind(text)
            .fetch_one(pool)
            .await?;
        Ok(value)
    }

    // The columns' `CHECK`s and rows written before the types were derived hold these texts.
    #[tokio::test]
    async fn roles_statuses_and_ids_are_the_text_they_always_were() {
        let pool = pool().await;
        for (role, text) in [(Role::User, "user"), (Role::Assistant, "assistant")] {
            assert_eq!(stored(&pool, role).await, text);
            assert_eq!(read::<Role>(&pool, text).await.ok(), Some(role));
        }
        for status in [
            MessageStatus::Streaming,
            MessageStatus::Complete,
            MessageStatus::Stopped,
            MessageStatus::Failed,
            MessageStatus::Interrupted,
        ] {
            assert_eq!(stored(&pool, status).await, status.as_str());
            assert_eq!(
                read::<MessageStatus>(&pool, status.as_str()).await.ok(),
                Some(status)
            );
        }
        let id = Uuid::new_v4();
        assert_eq!(
            stored(&pool, TextUuid(id)).await,
            id.hyphenated().to_string()
        );
        assert_eq!(
            read::<TextUuid>(&pool, &id.to_string()).await.ok(),
            Some(TextUuid(id))
        );
        assert!(read::<TextUuid>(&pool, "not-an-id").await.is_err());
        assert!(read::<MessageStatus>(&pool, "Complete").await.is_err());
    }
}
