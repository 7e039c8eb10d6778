//! API keys for `/v1`: make one (shown once), list them, revoke one. A person manages their
//! own; an admin also those of a service account (`account`: its id).

use server_fn::codec::Json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::api_keys::{ApiKeyView, CreatedApiKey, NewApiKey};
#[cfg(feature = "ssr")]
use crate::server::{accounts::Admin, api_keys, context, AppState};

/// Makes a key; the answer holds the key itself, which is never shown again.
#[leptos::server(prefix = "/api", endpoint = "create_api_key", input = Json)]
pub async fn create_api_key(
    key: NewApiKey,
    #[server(default)] account: Option<String>,
) -> Result<CreatedApiKey, ApiError> {
    match account {
        None => {
            let (state, owner) = AppState::from_context()?;
            api_keys::create(&state, &owner, key).await
        }
        Some(account) => {
            let (state, principal, address) = context::acting()?;
            Admin::new(&state, &principal, address)?
                .create_service_key(&account, key)
                .await
        }
    }
}

/// The keys (not the keys themselves), newest first.
#[leptos::server(prefix = "/api", endpoint = "list_api_keys", input = Json)]
pub async fn list_api_keys(
    #[server(default)] account: Option<String>,
) -> Result<Vec<ApiKeyView>, ApiError> {
    match account {
        None => {
            let (state, owner) = AppState::from_context()?;
            api_keys::list(&state, &owner).await
        }
        Some(account) => {
            let (state, principal, address) = context::acting()?;
            Admin::new(&state, &principal, address)?
                .service_keys(&account)
                .await
        }
    }
}

/// Revokes a key: requests with it are refused from now on.
#[leptos::server(prefix = "/api", endpoint = "revoke_api_key", input = Json)]
pub async fn revoke_api_key(
    id: Uuid,
    #[server(default)] account: Option<String>,
) -> Result<(), ApiError> {
    match account {
        None => {
            let (state, owner) = AppState::from_context()?;
            api_keys::revoke(&state, &owner, id).await
        }
        Some(account) => {
            let (state, principal, address) = context::acting()?;
            Admin::new(&state, &principal, address)?
                .revoke_service_key(&account, id)
                .await
        }
    }
}
