//! Search in the person's own conversations, and opening one at a message a search found.

use server_fn::codec::Json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::search::SearchHit;
use crate::model::ConversationView;
#[cfg(feature = "ssr")]
use crate::server::{search, AppState};

/// Titles, then messages, that hold the words of `query` (free text: words match as prefixes,
/// text in double quotes as a phrase), best first.
#[leptos::server(prefix = "/api", endpoint = "search", input = Json)]
pub async fn search(query: String) -> Result<Vec<SearchHit>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    search::search(&state.db, &owner, &query).await
}

/// The conversation opened at `message_id`: on the message's branch, its list reaching back to
/// that message.
#[leptos::server(prefix = "/api", endpoint = "open_at", input = Json)]
pub async fn open_at(
    conversation_id: Uuid,
    message_id: Uuid,
) -> Result<ConversationView, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    let view = search::open_at(&state.db, &principal.owner, conversation_id, message_id).await?;
    crate::api::conversations::as_shown(&state, &principal, view).await
}
