use server_fn::codec::{ByteStream, Json, Streaming};
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::{Outcome, SendRequest};
#[cfg(feature = "ssr")]
use crate::server::turns::Lines;
#[cfg(feature = "ssr")]
use crate::server::AppState;

/// Sends a message and streams the turn as newline-delimited [`crate::model::StreamLine`]s
/// (see [`SendRequest`]; its fields are the request body's).
#[leptos::server(prefix = "/api", endpoint = "send_message", input = Json, output = Streaming)]
pub async fn send_message(
    #[server(flatten)] request: SendRequest,
) -> Result<ByteStream<ApiError>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    let (turn_id, files) = (request.turn_id, &request.attachments);
    crate::server::attachments::link_to_turn(&state, &owner, turn_id, files).await?;
    Ok(lines(state.turns.send(&owner, request).await?))
}

/// Re-attaches to a turn: the events of its run `run` after `after_seq`, live while it runs.
#[leptos::server(prefix = "/api", endpoint = "turn_events", input = Json, output = Streaming)]
pub async fn turn_events(
    turn_id: Uuid,
    run: u32,
    after_seq: u32,
) -> Result<ByteStream<ApiError>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    Ok(lines(
        state.turns.events(&owner, turn_id, run, after_seq).await?,
    ))
}

/// Follows a conversation for a page showing it: the turns from `from_turn` on, then each new
/// turn (from any tab) with its events, and heartbeats.
#[leptos::server(prefix = "/api", endpoint = "conversation_events", input = Json, output = Streaming)]
pub async fn conversation_events(
    conversation_id: Uuid,
    from_turn: Option<Uuid>,
) -> Result<ByteStream<ApiError>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    Ok(lines(
        state
            .turns
            .conversation_events(&owner, conversation_id, from_turn)
            .await?,
    ))
}

/// Stops a running turn: the provider request is dropped and the text so far is kept as
/// stopped. Returns how the reply ended, once that is stored (a reply that finished first says so).
#[leptos::server(prefix = "/api", endpoint = "stop_turn", input = Json)]
pub async fn stop_turn(turn_id: Uuid) -> Result<Outcome, ApiError> {
    let (state, owner) = AppState::from_context()?;
    Ok(state.turns.stop(&owner, turn_id).await?)
}

/// Asks the model to go on with a stopped or interrupted reply, the last of its conversation;
/// streams the reply's new run, which starts with the text so far. `from_run` is the run the page
/// shows, so that asking again after a dropped connection follows the same continuation.
#[leptos::server(prefix = "/api", endpoint = "continue_reply", input = Json, output = Streaming)]
pub async fn continue_reply(
    turn_id: Uuid,
    from_run: u32,
) -> Result<ByteStream<ApiError>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    Ok(lines(
        state
            .turns
            .continue_reply(&owner, turn_id, from_run)
            .await?,
    ))
}

#[cfg(feature = "ssr")]
fn lines(events: Lines) -> ByteStream<ApiError> {
    use futures::StreamExt;
    // Every line ready at once goes out as one chunk (one write to the connection).
    ByteStream::new(crate::server::turns::ndjson_chunks(events).map(Ok::<_, ApiError>))
}
