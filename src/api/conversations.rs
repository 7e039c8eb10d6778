use uuid::Uuid;

use crate::error::ApiError;
use crate::model::{ConversationSummary, ConversationView};
#[cfg(feature = "ssr")]
use crate::server::{db, AppState};

#[leptos::server(prefix = "/api", endpoint = "list_conversations")]
pub async fn list_conversations() -> Result<Vec<ConversationSummary>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    db::list_conversations(&state.pool, &owner)
        .await
        .map_err(internal)
}

#[leptos::server(prefix = "/api", endpoint = "get_conversation")]
pub async fn get_conversation(id: Uuid) -> Result<ConversationView, ApiError> {
    let (state, owner) = AppState::from_context()?;
    db::get_conversation(&state.pool, &owner, id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound("no such conversation".into()))
}

#[cfg(feature = "ssr")]
fn internal(error: db::DbError) -> ApiError {
    tracing::error!("{error}");
    ApiError::Internal
}

/// Sets the conversation's system prompt (metadata sent with every turn, never a message).
#[leptos::server(prefix = "/api", endpoint = "set_system_prompt")]
pub async fn set_system_prompt(id: Uuid, system_prompt: String) -> Result<(), ApiError> {
    const MAX_CHARS: usize = 16_000;
    if system_prompt.chars().count() > MAX_CHARS {
        return Err(ApiError::BadRequest(format!(
            "the system prompt is longer than {MAX_CHARS} characters"
        )));
    }
    let (state, owner) = AppState::from_context()?;
    match db::set_system_prompt(&state.pool, &owner, id, system_prompt.trim())
        .await
        .map_err(internal)?
    {
        true => Ok(()),
        false => Err(ApiError::NotFound("no such conversation".into())),
    }
}
