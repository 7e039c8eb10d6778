//! Exports: `GET /export/{id}/markdown` and `/export/{id}/json` (one conversation, its files
//! named but not held), `GET /export/{id}/zip` (one conversation with its files), and
//! `GET /export/all.zip`: every conversation of the person, one JSON line each in
//! `conversations.jsonl`, then each file their questions carried, once, as `files/<sha256>`
//! (text deflated, the rest stored), all written into the response as it is read: a
//! conversation at a time, then a file a chunk at a time, so that memory holds one conversation
//! (or one chunk of a file) and a little compression state however many there are.

use std::collections::HashSet;
use std::io::Write;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, Response, StatusCode};
use axum::Extension;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::markdown::to_markdown;
use crate::error::ApiError;
use crate::server::db::{self, Db, Owner};
use crate::server::error_response::api_error;
use crate::server::export_format::{Conversation, File};
use crate::server::principal::Principal;
use crate::server::AppState;

/// Conversations listed at a time while the archive is written.
const PAGE: u32 = 100;
/// Bytes gathered before they are sent on.
const CHUNK: usize = 64 * 1024;

/// `GET /export/{id}/{format}`: `markdown` (the branch on screen), `json` (every branch) or
/// `zip` (every branch, and its files).
pub async fn conversation(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    Path((id, format)): Path<(String, String)>,
) -> Response<Body> {
    let Some(Extension(principal)) = principal else {
        return api_error(&ApiError::Unauthorized("sign in first".into()));
    };
    let not_found = || api_error(&ApiError::NotFound("no such conversation".into()));
    let Ok(id) = Uuid::parse_str(&id) else {
        return not_found();
    };
    let conversation =
        match db::transfer::export_conversation(&state.db, &principal.owner, id).await {
            Ok(Some(conversation)) => conversation,
            Ok(None) => return not_found(),
            Err(e) => return api_error(&ApiError::from(e)),
        };
    let name = file_name(&conversation.title);
    if format == "zip" {
        let body = stream_archive(&state, &principal.owner, Which::One(conversation));
        return attachment("application/zip", &format!("{name}.zip"), body);
    }
    let (body, kind, extension) = match format.as_str() {
        "markdown" => (
            to_markdown(&conversation).into_bytes(),
            "text/markdown; charset=utf-8",
            "md",
        ),
        "json" => match serde_json::to_vec_pretty(&conversation) {
            Ok(json) => (json, "application/json", "json"),
            Err(e) => {
                tracing::error!("writing a conversation's JSON: {e}");
                return api_error(&ApiError::Internal);
            }
        },
        _ => {
            return api_error(&ApiError::NotFound(
                "an export is markdown, json or zip".into(),
            ))
        }
    };
    attachment(kind, &format!("{name}.{extension}"), Body::from(body))
}

/// `GET /export/all.zip`.
pub async fn archive(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
) -> Response<Body> {
    let Some(Extension(principal)) = principal else {
        return api_error(&ApiError::Unauthorized("sign in first".into()));
    };
    // The first page is read before answering, so that a failure is an error in words.
    let first = match db::transfer::conversation_ids(&state.db, &principal.owner, 0, PAGE).await {
        Ok(first) => first,
        Err(e) => return api_error(&ApiError::from(e)),
    };
    attachment(
        "application/zip",
        "rill-conversations.zip",
        stream_archive(&state, &principal.owner, Which::All(first)),
    )
}

/// What an archive holds: every conversation (the first page of ids read), or one.
enum Which {
    All(Vec<(i64, Uuid)>),
    One(Conversation),
}

/// The archive written into a response's body as it is made.
fn stream_archive(state: &AppState, owner: &Owner, which: Which) -> Body {
    let (chunks, body) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let db = state.db.clone();
    let owner = owner.clone();
    let runtime = tokio::runtime::Handle::current();
    // The zip writer is synchronous: it runs on a blocking thread, reading each conversation
    // through the runtime and sending what it writes as it goes.
    tokio::task::spawn_blocking(move || {
        let errors = chunks.clone();
        if let Err(e) = write_archive(&runtime, &db, &owner, which, Sender::new(chunks)) {
            tracing::warn!("the archive export ended early: {e}");
            let _ = errors.blocking_send(Err(std::io::Error::other("the export failed")));
        }
    });
    let mut body = body;
    Body::from_stream(futures::stream::poll_fn(move |cx| body.poll_recv(cx)))
}

fn write_archive(
    runtime: &tokio::runtime::Handle,
    db: &Db,
    owner: &Owner,
    which: Which,
    out: Sender,
) -> Result<(), std::io::Error> {
    let mut zip = zip::ZipWriter::new_stream(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file("conversations.jsonl", options)
        .map_err(std::io::Error::other)?;
    // The files the conversations name, each once: written after them, from the database.
    let mut seen: HashSet<String> = HashSet::new();
    let mut files: Vec<File> = Vec::new();
    let mut write_one = |zip: &mut zip::ZipWriter<_>, conversation: &Conversation| {
        for file in conversation.distinct_files() {
            if seen.insert(file.sha256.clone()) {
                files.push(file.clone());
            }
        }
        serde_json::to_writer(&mut *zip, conversation)?;
        zip.write_all(b"\n")
    };
    match which {
        Which::One(conversation) => write_one(&mut zip, &conversation)?,
        Which::All(first) => {
            let mut page = first;
            while let Some(&(last, _)) = page.last() {
                for (_, id) in &page {
                    let conversation: Option<Conversation> = runtime
                        .block_on(db::transfer::export_conversation(db, owner, *id))
                        .map_err(std::io::Error::other)?;
                    // Deleted since it was listed: left out.
                    let Some(conversation) = conversation else {
                        continue;
                    };
                    write_one(&mut zip, &conversation)?;
                }
                if page.len() < PAGE as usize {
                    break;
                }
                page = runtime
                    .block_on(db::transfer::conversation_ids(db, owner, last, PAGE))
                    .map_err(std::io::Error::other)?;
            }
        }
    }
    for file in &files {
        // Text is worth deflating; images, PDFs and the rest are compressed already or opaque
        // (deflating 20 MB of such bytes cost seconds and saved nothing).
        let method = if file.mime.starts_with("text/") {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        zip.start_file(file.entry(), options.compression_method(method))
            .map_err(std::io::Error::other)?;
        let mut seq: i64 = 0;
        while let Some(chunk) = runtime
            .block_on(db::attachments::blob_chunk(db, owner, &file.sha256, seq))
            .map_err(std::io::Error::other)?
        {
            zip.write_all(&chunk)?;
            seq = seq.saturating_add(1);
        }
    }
    let mut out = zip.finish().map_err(std::io::Error::other)?.into_inner();
    out.flush()
}

/// What the zip writer writes, sent to the response a chunk at a time; an error once the
/// download has gone, which ends the writing.
struct Sender {
    buffer: Vec<u8>,
    chunks: mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
}

impl Sender {
    fn new(chunks: mpsc::Sender<Result<Vec<u8>, std::io::Error>>) -> Self {
        Self {
            buffer: Vec::with_capacity(CHUNK),
            chunks,
        }
    }
}

impl Write for Sender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.chunks
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("the download was closed"))
    }
}

fn attachment(kind: &str, name: &str, body: Body) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, kind)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(body)
        .unwrap_or_default()
}

/// A file name from a title: letters, digits, `-` and `_` (others as `-`), at most 60.
fn file_name(title: &str) -> String {
    let name: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "rill-conversation".to_owned()
    } else {
        format!("rill-{name}")
    }
}
