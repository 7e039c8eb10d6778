use server_fn::codec::Json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::ModelMenu;
#[cfg(feature = "ssr")]
use crate::server::{db, AppState};

/// The model picker's contents.
#[leptos::server(prefix = "/api", endpoint = "list_models", input = Json)]
pub async fn list_models() -> Result<ModelMenu, ApiError> {
    let (state, _owner) = AppState::from_context()?;
    Ok(state.catalog.menu(&state.prices))
}

/// Switches the model a conversation's next turns use.
#[leptos::server(prefix = "/api", endpoint = "set_conversation_model", input = Json)]
pub async fn set_conversation_model(id: Uuid, model: String) -> Result<(), ApiError> {
    let (state, owner) = AppState::from_context()?;
    if !state.catalog.contains(&model) {
        return Err(ApiError::BadRequest(format!(
            "unknown model {}",
            crate::server::input::shown(&model, 80)
        )));
    }
    match db::set_conversation_model(&state.db, &owner, id, &model).await? {
        true => Ok(()),
        false => Err(ApiError::NotFound("no such conversation".into())),
    }
}
