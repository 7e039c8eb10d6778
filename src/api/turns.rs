use server_fn::codec::{ByteStream, Json, Streaming};
use uuid::Uuid;

use crate::error::ApiError;
#[cfg(feature = "ssr")]
use crate::server::AppState;

/// Sends a message and streams the turn's events as newline-delimited JSON
/// ([`crate::model::ndjson`]). The browser mints `turn_id`; sending the same id again re-attaches
/// to that turn instead of starting another. `conversation_id: None` starts a new conversation.
/// `model` (from the picker) switches the conversation to that model from this turn on.
#[leptos::server(prefix = "/api", endpoint = "send_message", input = Json, output = Streaming)]
pub async fn send_message(
    turn_id: Uuid,
    conversation_id: Option<Uuid>,
    text: String,
    model: Option<String>,
) -> Result<ByteStream<ApiError>, ApiError> {
    use futures::StreamExt;
    let (state, owner) = AppState::from_context()?;
    let events = state
        .turns
        .send(
            &state,
            &owner,
            turn_id,
            conversation_id,
            &text,
            model.as_deref(),
        )
        .await?;
    Ok(ByteStream::new(events.map(|e| {
        Ok::<_, ApiError>(crate::model::ndjson::encode(&e))
    })))
}

/// Re-attaches to a turn: its events after `after_seq`, live while it runs.
#[leptos::server(prefix = "/api", endpoint = "turn_events", input = Json, output = Streaming)]
pub async fn turn_events(turn_id: Uuid, after_seq: u32) -> Result<ByteStream<ApiError>, ApiError> {
    use futures::StreamExt;
    let (state, owner) = AppState::from_context()?;
    let events = state
        .turns
        .events(&state, &owner, turn_id, after_seq)
        .await?;
    Ok(ByteStream::new(events.map(|e| {
        Ok::<_, ApiError>(crate::model::ndjson::encode(&e))
    })))
}

/// Stops a running turn: the provider request is dropped and the text so far is kept as stopped.
/// Returns once that is stored.
#[leptos::server(prefix = "/api", endpoint = "stop_turn", input = Json)]
pub async fn stop_turn(turn_id: Uuid) -> Result<(), ApiError> {
    let (state, owner) = AppState::from_context()?;
    state.turns.stop(&state, &owner, turn_id).await
}
