//! Attachments (issue 26): files a person uploads and sends with a question.
//!
//! - `upload`: `POST /attachments?name=…`, the body streamed to an unlinked temporary file while
//!   it is hashed (SHA-256) and its type found in its bytes (`sniff`), then stored in the
//!   database a chunk at a time, once per person and content;
//! - `download`: `GET /attachments/{id}`, to its owner only, a chunk at a time;
//! What a question's files add to what the model is sent is the turn engine's (`turns/files.rs`).
//!
//! Why the database holds the bytes: ARCHITECTURE.md ("Attachments").

pub mod download;
pub mod images;
pub mod pdf;
pub mod sniff;
pub mod take;
pub mod upload;

use axum::routing::{get, post};
use axum::Router;
use uuid::Uuid;

use super::db::{self, attachments::CannotLink, Owner};
use super::AppState;
use crate::error::ApiError;
use crate::format::byte_size;
use crate::model::attachments::{AttachmentLimits, ATTACHMENTS_PATH, MAX_FILES_PER_MESSAGE};

/// The upload and download routes.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route(ATTACHMENTS_PATH, post(upload::upload))
        .route("/attachments/{id}", get(download::download))
        .with_state(state)
}

/// The configured limits and what `owner` uploaded in the last day.
pub async fn limits(state: &AppState, owner: &Owner) -> Result<AttachmentLimits, ApiError> {
    let limits = &state.config.limits;
    let since = db::now_ms().saturating_sub(upload::DAY_MS);
    Ok(AttachmentLimits {
        per_file: limits.max_attachment_bytes,
        per_message: limits.max_message_attachment_bytes,
        per_day: limits.attachment_bytes_per_day,
        used_today: db::attachments::uploaded_since(&state.db, owner, since).await?,
    })
}

/// Puts each question's files on it, for the page.
pub async fn show(
    db: &db::Db,
    owner: &Owner,
    messages: &mut [crate::model::MessageView],
) -> Result<(), ApiError> {
    let is_question = |m: &&mut crate::model::MessageView| m.role == crate::model::Role::User;
    let questions: Vec<Uuid> = messages
        .iter_mut()
        .filter(is_question)
        .map(|m| m.turn_id)
        .collect();
    let mut carried = db::attachments::turns_attachments(db, owner, &questions).await?;
    for message in messages.iter_mut().filter(is_question) {
        message.attachments = carried
            .remove(&message.turn_id)
            .unwrap_or_default()
            .into_iter()
            .map(|stored| stored.view)
            .collect();
    }
    Ok(())
}

/// Links the uploads a send names to its turn, before the turn is begun: each must be the
/// sender's, and together within the message's limit.
pub async fn link_to_turn(
    state: &AppState,
    owner: &Owner,
    turn_id: Uuid,
    ids: &[Uuid],
) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    if ids.len() > MAX_FILES_PER_MESSAGE {
        return Err(ApiError::BadRequest(format!(
            "a message can carry at most {MAX_FILES_PER_MESSAGE} files"
        )));
    }
    let limit = state.config.limits.max_message_attachment_bytes;
    match db::attachments::link_to_turn(&state.db, owner, turn_id, ids, limit).await? {
        Ok(()) => Ok(()),
        Err(CannotLink::Unknown) => Err(ApiError::NotFound(
            "one of the attached files is not there any more; attach it again".into(),
        )),
        Err(CannotLink::TooLarge { total }) => Err(ApiError::PayloadTooLarge(format!(
            "the attached files take {}, more than the {} one message may carry",
            byte_size(total),
            byte_size(limit)
        ))),
    }
}
