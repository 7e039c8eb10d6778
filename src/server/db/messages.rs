//! A `messages` row as stored and what it means, and the owner checks that queries on messages
//! share.

use uuid::Uuid;

use super::DbError;
use crate::model::{MessageStatus, MessageView, Outcome, Role, Usage};

/// A `messages` row's owner check (see the module note); the owner is bound at its bare `?`, so
/// the query's other parameters must be bare too (sqlx numbers bare ones apart from `?N`).
pub(super) const OWNED: &str =
    "EXISTS (SELECT 1 FROM conversations c WHERE c.id = messages.conversation_id AND c.owner = ?)";
/// [`OWNED`], and the conversation not deleted: what a person may see.
pub(super) const OWNED_AND_LIVE: &str = "EXISTS (SELECT 1 FROM conversations c
    WHERE c.id = messages.conversation_id AND c.owner = ? AND c.deleted_at IS NULL)";

/// The columns of a [`MessageRow`], `$thinking` and `$html` standing for the reply's thinking
/// and its stored rendering.
macro_rules! message_columns {
    ($thinking:literal, $html:literal) => {
        concat!(
            "id, turn_id, conversation_id, role, content, ",
            $thinking,
            ", ",
            $html,
            ", status, error, model,
            input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
            usage_estimated, cost_usd, run, left_out, system_prompt_revision, parent_turn_id,
            position, cut_at_limit"
        )
    };
}
pub(super) const MESSAGE_COLUMNS: &str = message_columns!("thinking", "html, html_version");
/// For a prompt: thinking is never sent back to a model, so it is not even read, nor is HTML.
pub(super) const PROMPT_COLUMNS: &str =
    message_columns!("'' AS thinking", "NULL AS html, NULL AS html_version");

/// A `messages` row as stored; [`MessageView`] is what it means.
#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    pub(super) id: String,
    pub(super) turn_id: String,
    pub(super) conversation_id: String,
    pub(super) role: String,
    pub(super) content: String,
    pub(super) thinking: String,
    pub(super) html: Option<String>,
    pub(super) html_version: Option<i64>,
    pub(super) status: String,
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
    pub(super) parent_turn_id: Option<String>,
    pub(super) position: i64,
    pub(super) cut_at_limit: bool,
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

impl TryFrom<MessageRow> for MessageView {
    type Error = DbError;

    fn try_from(r: MessageRow) -> Result<Self, DbError> {
        let role = match r.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(DbError::Corrupt(format!("role {other}"))),
        };
        let status = MessageStatus::parse(&r.status)
            .ok_or_else(|| DbError::Corrupt(format!("status {}", r.status)))?;
        let count = |n: Option<i64>| n.map(|n| u32::try_from(n).unwrap_or(0));
        let usage = count(r.input_tokens).map(|input_tokens| Usage {
            input_tokens,
            cached_input_tokens: count(r.cached_input_tokens).unwrap_or(0),
            cache_write_tokens: count(r.cache_write_tokens).unwrap_or(0),
            output_tokens: count(r.output_tokens).unwrap_or(0),
            reasoning_tokens: count(r.reasoning_tokens).unwrap_or(0),
        });
        Ok(MessageView {
            id: uuid(&r.id)?,
            turn_id: uuid(&r.turn_id)?,
            role,
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
            parent_turn_id: r.parent_turn_id.as_deref().map(uuid).transpose()?,
            alternatives: Vec::new(),
            outcome: Outcome {
                status,
                error: r.error,
                usage,
                usage_estimated: r.usage_estimated,
                cost_usd: r.cost_usd,
                left_out: u32::try_from(r.left_out).unwrap_or(0),
                error_detail: None,
                cut_at_limit: r.cut_at_limit,
            },
        })
    }
}

pub(super) fn uuid(text: &str) -> Result<Uuid, DbError> {
    Uuid::parse_str(text).map_err(|_| DbError::Corrupt(format!("id {text}")))
}
