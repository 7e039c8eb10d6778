//! `POST /attachments?name=…`: one file's bytes as the request's body. They are written to an
//! unlinked temporary file beside the database as they arrive (at most the per-file limit, each
//! piece within the body timeout), hashed and checked on the way, then stored a chunk at a time.
//! Nothing holds the whole file in memory, except an image's pixels while it is re-encoded
//! (`images`, bounded). The answer is the upload as the page shows it.

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncSeekExt;
use uuid::Uuid;

use super::sniff::{sniff, TextCheck, HEAD_BYTES, PDF};
use super::{images, pdf};
use crate::error::ApiError;
use crate::format::byte_size;
use crate::model::attachments::AttachmentKind;
use crate::server::db::attachments::NewAttachment;
use crate::server::db::{self, Owner};
use crate::server::error_response::api_error;
use crate::server::input::is_invisible;
use crate::server::principal::Principal;
use crate::server::spool;
use crate::server::AppState;

/// A file name's most characters (longer names are cut, keeping their extension's end).
const MAX_NAME_CHARS: usize = 200;
pub const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Deserialize)]
pub struct UploadQuery {
    #[serde(default)]
    name: String,
}

/// `POST /attachments`.
pub async fn upload(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> Response<Body> {
    let Some(Extension(principal)) = principal else {
        return api_error(&ApiError::Unauthorized("sign in first".into()));
    };
    match receive(&state, &principal.owner, &query.name, request).await {
        Ok(view) => axum::response::IntoResponse::into_response(Json(view)),
        Err(error) => api_error(&error),
    }
}

async fn receive(
    state: &AppState,
    owner: &Owner,
    name: &str,
    request: Request,
) -> Result<crate::model::attachments::AttachmentView, ApiError> {
    let limits = &state.config.limits;
    let per_file = limits.max_attachment_bytes;
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "the file is larger than the {} this server takes for one file",
            byte_size(per_file)
        ))
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > per_file) {
        return Err(too_large());
    }
    // The day's allowance is checked before the upload (by its declared size) and after it.
    let since = db::now_ms().saturating_sub(DAY_MS);
    let per_day = limits.attachment_bytes_per_day;
    let over_day = |used: u64, adding: u64| {
        (used.saturating_add(adding) > per_day).then(|| {
            ApiError::TooManyRequests(format!(
                "you have uploaded {} of files today, and this server takes {} a day from each \
                 person; try again tomorrow",
                byte_size(used),
                byte_size(per_day)
            ))
        })
    };
    let used = db::attachments::uploaded_since(&state.db, owner, since).await?;
    if let Some(refusal) = over_day(used, declared.unwrap_or(0)) {
        return Err(refusal);
    }
    let spooled = spool(state, request, per_file).await?;
    let Some(spooled) = spooled else {
        return Err(too_large());
    };
    if spooled.size == 0 {
        return Err(ApiError::BadRequest("the file is empty".into()));
    }
    let used = db::attachments::uploaded_since(&state.db, owner, since).await?;
    if let Some(refusal) = over_day(used, spooled.size) {
        return Err(refusal);
    }
    let found = sniff(&spooled.head, spooled.text);
    let name = file_name(name);
    let mut file = spooled.file;
    file.rewind().await.map_err(|e| {
        tracing::error!("rewinding an upload's temporary file: {e}");
        ApiError::Internal
    })?;
    let mut new = NewAttachment {
        id: Uuid::new_v4(),
        sha256: &spooled.sha256,
        size: spooled.size,
        mime: found.mime,
        name: &name,
        kind: found.kind,
        pdf_text: None,
    };
    if found.mime == PDF {
        // Read by a bounded child process (`pdf`), from its own handle on the same file.
        let reader_file = file.try_clone().await.map_err(|e| {
            tracing::error!("a second handle on an upload's temporary file: {e}");
            ApiError::Internal
        })?;
        let read = pdf::read_text(reader_file.into_std().await, spooled.size).await;
        let text = read.map_err(|refusal| match refusal {
            pdf::PdfError::Unreadable => ApiError::BadRequest(refusal.to_string()),
            pdf::PdfError::TooCostly => ApiError::PayloadTooLarge(refusal.to_string()),
            pdf::PdfError::Start(e) => {
                tracing::error!("starting the PDF reader: {e}");
                ApiError::Internal
            }
        })?;
        // The child read from the shared file position: start again for the store.
        file.rewind().await.map_err(|e| {
            tracing::error!("rewinding an upload's temporary file: {e}");
            ApiError::Internal
        })?;
        new.pdf_text = Some((&text.text, text.cut));
        let stored = db::attachments::store_attachment(&state.db, owner, &new, &mut file).await?;
        return Ok(stored.view);
    }
    if found.kind != AttachmentKind::Image {
        let stored = db::attachments::store_attachment(&state.db, owner, &new, &mut file).await?;
        return Ok(stored.view);
    }
    // An image is kept as it will be shown and sent: scaled, re-encoded, without metadata.
    let file = file.into_std().await;
    let mime = found.mime;
    let image = tokio::task::spawn_blocking(move || images::reencode(file, mime))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|refusal| match refusal {
            images::ImageRefusal::TooLarge => ApiError::PayloadTooLarge(refusal.to_string()),
            images::ImageRefusal::Unreadable => ApiError::BadRequest(refusal.to_string()),
        })?;
    let sha256 = hex_sha256(&image.bytes);
    new.sha256 = &sha256;
    new.size = u64::try_from(image.bytes.len()).unwrap_or(u64::MAX);
    new.mime = image.mime;
    let stored =
        db::attachments::store_attachment(&state.db, owner, &new, &mut image.bytes.as_slice())
            .await?;
    Ok(stored.view)
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// An upload written to disk: its size, digest, first bytes and whether it was all text.
struct Spooled {
    file: tokio::fs::File,
    size: u64,
    sha256: String,
    head: Vec<u8>,
    text: bool,
}

/// Writes the body to an unlinked temporary file (`spool`), hashing it and learning its type
/// as it comes; `None` if it grows past `limit`.
async fn spool(
    state: &AppState,
    request: Request,
    limit: u64,
) -> Result<Option<Spooled>, ApiError> {
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let mut text = TextCheck::default();
    let spooled = spool::spool(
        &state.config.database.spool_anchor(),
        state.config.connections.body_timeout,
        request.into_body(),
        limit,
        |data| {
            hasher.update(data);
            text.feed(data);
            let wanted = HEAD_BYTES.saturating_sub(head.len());
            head.extend_from_slice(data.get(..wanted.min(data.len())).unwrap_or_default());
        },
    )
    .await?;
    let spool::Spooled::Whole { file, size } = spooled else {
        return Ok(None);
    };
    Ok(Some(Spooled {
        file,
        size,
        sha256: hex(&hasher.finalize()),
        head,
        text: text.finish(),
    }))
}

/// The name a file is kept under: its last path segment, without invisible characters, cut to
/// [`MAX_NAME_CHARS`] (keeping its extension); "file" if nothing is left.
pub fn file_name(given: &str) -> String {
    let last = given
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !is_invisible(*c))
        .collect::<String>();
    let trimmed = last.trim().trim_start_matches('.');
    if trimmed.is_empty() {
        return "file".into();
    }
    let count = trimmed.chars().count();
    if count <= MAX_NAME_CHARS {
        return trimmed.to_owned();
    }
    let extension: String = trimmed
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| e.chars().count() <= 10)
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let keep = MAX_NAME_CHARS.saturating_sub(extension.chars().count());
    trimmed.chars().take(keep).collect::<String>() + &extension
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn names_are_their_last_segment_visible_and_bounded() {
        assert_eq!(file_name("C:\\Users\\ada\\notes.md"), "notes.md");
        assert_eq!(file_name("../../etc/passwd"), "passwd");
        assert_eq!(file_name("a\u{202E}gpj.exe"), "agpj.exe");
        assert_eq!(file_name("  "), "file");
        assert_eq!(file_name(".env"), "env");
        let long = format!("{}.txt", "x".repeat(500));
        let kept = file_name(&long);
        assert_eq!(kept.chars().count(), 200);
        assert!(kept.ends_with(".txt"));
    }
}
