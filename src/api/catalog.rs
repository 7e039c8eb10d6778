use server_fn::codec::Json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::ModelMenu;
#[cfg(feature = "ssr")]
use crate::server::{db, groups, AppState};

/// The model picker's contents: the models the person may use (their groups may limit them).
#[leptos::server(prefix = "/api", endpoint = "list_models", input = Json)]
pub async fn list_models() -> Result<ModelMenu, ApiError> {
    let (state, owner) = AppState::from_context()?;
    let mut menu = state.catalog.menu(&state.prices);
    if let Some(allowed) = groups::allowed_models(&state.db, &owner).await? {
        for group in &mut menu.groups {
            group.models.retain(|m| allowed.contains(&m.id));
        }
        menu.groups.retain(|g| !g.models.is_empty());
        let first = menu.groups.iter().flat_map(|g| &g.models).next();
        if !allowed.contains(&menu.default_model) {
            if let Some(first) = first {
                menu.default_model = first.id.clone();
            }
        }
    }
    Ok(menu)
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
    if !groups::may_use(&state.db, &owner, &model).await? {
        return Err(ApiError::Forbidden(format!(
            "your groups do not allow the model {}; pick another",
            crate::server::input::shown(&model, 80)
        )));
    }
    match db::set_conversation_model(&state.db, &owner, id, &model).await? {
        true => Ok(()),
        false => Err(ApiError::NotFound("no such conversation".into())),
    }
}
