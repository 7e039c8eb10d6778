//! Share links: make one of the conversation on screen, list them, revoke one.

use server_fn::codec::Json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::shares::SharedLink;
#[cfg(feature = "ssr")]
use crate::server::{shares, AppState};

/// Shares the conversation's branch on screen as it is now, at a new link.
#[leptos::server(prefix = "/api", endpoint = "share_conversation", input = Json)]
pub async fn share_conversation(conversation_id: Uuid) -> Result<SharedLink, ApiError> {
    let (state, owner) = AppState::from_context()?;
    shares::share(&state, &owner, conversation_id).await
}

/// The person's links, newest first: of one conversation, or all of them.
#[leptos::server(prefix = "/api", endpoint = "list_shares", input = Json)]
pub async fn list_shares(
    #[server(default)] conversation_id: Option<Uuid>,
) -> Result<Vec<SharedLink>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    shares::list(&state, &owner, conversation_id).await
}

/// Revokes a link: its page answers 404 from now on.
#[leptos::server(prefix = "/api", endpoint = "revoke_share", input = Json)]
pub async fn revoke_share(id: Uuid) -> Result<(), ApiError> {
    let (state, owner) = AppState::from_context()?;
    shares::revoke(&state, &owner, id).await
}
