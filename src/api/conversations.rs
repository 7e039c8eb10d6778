use server_fn::codec::Json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::{ConversationSummary, ConversationView};
#[cfg(feature = "ssr")]
use crate::server::{db, input, AppState};

#[leptos::server(prefix = "/api", endpoint = "list_conversations", input = Json)]
pub async fn list_conversations() -> Result<Vec<ConversationSummary>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    Ok(db::list_conversations(&state.db, &owner).await?)
}

#[leptos::server(prefix = "/api", endpoint = "get_conversation", input = Json)]
pub async fn get_conversation(id: Uuid) -> Result<ConversationView, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    let mut view = db::get_conversation(&state.db, &principal.owner, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such conversation".into()))?;
    for message in view
        .messages
        .iter_mut()
        .filter(|m| m.role == crate::model::Role::Assistant)
    {
        message.html = crate::markdown::render(&message.content);
    }
    // Admins see what failed in full; everyone sees the message in words.
    if principal.is_admin {
        for (message_id, detail) in db::error_details(&state.db, &principal.owner, id).await? {
            if let Some(message) = view.messages.iter_mut().find(|m| m.id == message_id) {
                message.outcome.error_detail = Some(detail);
            }
        }
    }
    Ok(view)
}

/// Sets the conversation's system prompt (metadata sent with every turn, never a message).
#[leptos::server(prefix = "/api", endpoint = "set_system_prompt", input = Json)]
pub async fn set_system_prompt(id: Uuid, system_prompt: String) -> Result<(), ApiError> {
    let system_prompt = input::system_prompt(&system_prompt)?;
    let (state, owner) = AppState::from_context()?;
    match db::set_system_prompt(&state.db, &owner, id, system_prompt).await? {
        true => Ok(()),
        false => Err(ApiError::NotFound("no such conversation".into())),
    }
}
