//! API keys for `/v1`: make one (shown once), list them, revoke one.

use server_fn::codec::Json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::api_keys::{ApiKeyView, CreatedApiKey, NewApiKey};
#[cfg(feature = "ssr")]
use crate::server::{api_keys, AppState};

/// Makes a key; the answer holds the key itself, which is never shown again.
#[leptos::server(prefix = "/api", endpoint = "create_api_key", input = Json)]
pub async fn create_api_key(key: NewApiKey) -> Result<CreatedApiKey, ApiError> {
    let (state, owner) = AppState::from_context()?;
    api_keys::create(&state, &owner, key).await
}

/// The person's keys (not the keys themselves), newest first.
#[leptos::server(prefix = "/api", endpoint = "list_api_keys", input = Json)]
pub async fn list_api_keys() -> Result<Vec<ApiKeyView>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    api_keys::list(&state, &owner).await
}

/// Revokes a key: requests with it are refused from now on.
#[leptos::server(prefix = "/api", endpoint = "revoke_api_key", input = Json)]
pub async fn revoke_api_key(id: Uuid) -> Result<(), ApiError> {
    let (state, owner) = AppState::from_context()?;
    api_keys::revoke(&state, &owner, id).await
}
