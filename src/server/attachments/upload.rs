//! `POST /attachments?name=…`: one file's bytes as the request's body. They are written to an
//! unlinked temporary file beside the database as they arrive (at most the per-file limit, each
//! piece within the body timeout), hashed and checked on the way, then stored a chunk at a time.
//! Nothing holds the whole file in memory, except an image's pixels while it is re-encoded
//! (`take`: the checks an import's files pass too). The answer is the upload as the page shows it.

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::pdf;
use super::sniff::{TextCheck, HEAD_BYTES};
use super::take::{hex, take, Received};
use crate::error::ApiError;
use crate::format::byte_size;
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
    let used = db::attachments::uploaded_since(&state.db, owner, since).await?;
    if let Some(refusal) = over_day(used, spooled.size) {
        return Err(refusal);
    }
    let name = file_name(name);
    let mut taken = take(spooled, pdf::Bounds::of(limits)).await?;
    let new = NewAttachment {
        id: Uuid::new_v4(),
        sha256: &taken.sha256,
        size: taken.size,
        mime: taken.mime,
        name: &name,
        kind: taken.kind,
        pdf_text: taken
            .pdf_text
            .as_ref()
            .map(|(text, cut)| (text.as_str(), *cut)),
    };
    let stored =
        db::attachments::store_attachment(&state.db, owner, &new, &mut taken.bytes.reader())
            .await?;
    Ok(stored.view)
}

/// Writes the body to an unlinked temporary file (`spool`), hashing it and learning its type
/// as it comes; `None` if it grows past `limit`.
async fn spool(
    state: &AppState,
    request: Request,
    limit: u64,
) -> Result<Option<Received>, ApiError> {
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
    Ok(Some(Received {
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
