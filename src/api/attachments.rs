//! Attachments' limits, for the page to check a file against before it uploads it.

use server_fn::codec::Json;

use crate::error::ApiError;
use crate::model::attachments::AttachmentLimits;
#[cfg(feature = "ssr")]
use crate::server::{attachments, AppState};

/// The server's limits on files and what the person has left of today's.
#[leptos::server(prefix = "/api", endpoint = "file_limits", input = Json)]
pub async fn file_limits() -> Result<AttachmentLimits, ApiError> {
    let (state, owner) = AppState::from_context()?;
    attachments::limits(&state, &owner).await
}
