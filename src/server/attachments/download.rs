//! `GET /attachments/{id}`: an upload, to its owner only (anyone else gets the same 404 as an id
//! that does not exist), read from the database a chunk at a time. It is served as the type
//! found in its bytes, with `nosniff`; images inline, everything else (text, markup, SVG, PDF)
//! as a download, so nothing uploaded ever runs as a page of this site. The guard adds the CSP
//! every non-page answer carries (`default-src 'none'`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::Extension;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::attachments::AttachmentKind;
use crate::server::db::attachments::StoredAttachment;
use crate::server::db::{self, Owner};
use crate::server::error_response::api_error;
use crate::server::principal::Principal;
use crate::server::AppState;

/// `GET /attachments/{id}`.
pub async fn download(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> Response<Body> {
    let Some(Extension(principal)) = principal else {
        return api_error(&ApiError::Unauthorized("sign in first".into()));
    };
    let not_found = || api_error(&ApiError::NotFound("no such file".into()));
    let Ok(id) = Uuid::parse_str(&id) else {
        return not_found();
    };
    let owner = principal.owner.clone();
    let stored = match db::attachments::find_attachment(&state.db, &owner, id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return not_found(),
        Err(e) => return api_error(&e.into()),
    };
    serve(&state, owner, stored)
}

/// The owner's stored file as its answer: its type, its length, inline or a download, `nosniff`;
/// its bytes read a chunk at a time as the connection takes them.
pub fn serve(state: &AppState, owner: Owner, stored: StoredAttachment) -> Response<Body> {
    let body = Body::from_stream(chunks(state.db.clone(), owner, stored.sha256));
    let inline = stored.view.kind == AttachmentKind::Image;
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    let mime = HeaderValue::from_str(&stored.view.mime)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, mime);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(stored.view.size));
    if let Ok(disposition) = HeaderValue::from_str(&disposition(inline, &stored.view.name)) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The blob's chunks in order, each read when the connection wants it.
fn chunks(
    db: db::Db,
    owner: Owner,
    sha256: String,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    futures::stream::try_unfold(0i64, move |seq| {
        let (db, owner, sha256) = (db.clone(), owner.clone(), sha256.clone());
        async move {
            match db::attachments::blob_chunk(&db, &owner, &sha256, seq).await {
                Ok(Some(data)) => Ok(Some((data, seq.saturating_add(1)))),
                Ok(None) => Ok(None),
                Err(e) => {
                    tracing::error!("reading an attachment: {e}");
                    Err(std::io::Error::other("the file could not be read"))
                }
            }
        }
    })
}

/// What RFC 5987 leaves as it is in a file name (the unreserved characters); the rest is
/// percent-encoded UTF-8.
const FILENAME: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `Content-Disposition`: the name as ASCII (anything else an underscore) and, for browsers
/// that read it, exactly (RFC 5987/6266).
fn disposition(inline: bool, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(name, FILENAME);
    let how = if inline { "inline" } else { "attachment" };
    format!("{how}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::disposition;

    #[test]
    fn names_are_quoted_safely_and_exactly() {
        assert_eq!(
            disposition(false, "a \"b\".txt"),
            "attachment; filename=\"a _b_.txt\"; filename*=UTF-8''a%20%22b%22.txt"
        );
        assert_eq!(
            disposition(true, "é.png"),
            "inline; filename=\"_.png\"; filename*=UTF-8''%C3%A9.png"
        );
    }
}
