//! `POST /import`: an export's file, spooled to an unlinked temporary file beside the database
//! as it arrives (never held in memory; at most `RILL_MAX_IMPORT_MB`), then read a conversation
//! at a time on a blocking thread while each is stored in a transaction of its own. The answer
//! is newline-delimited JSON (`ImportLine`): the format, progress after every conversation, and
//! a summary; what was stored before a failure stays, whole. One import per person at a time.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Response, StatusCode};
use axum::Extension;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::files::{Extracted, FileBounds};
use super::reader::{read_upload, Item, ReadError};
use crate::error::ApiError;
use crate::format::byte_size;
use crate::model::transfer::{ImportLine, ImportSummary, REASONS_KEPT};
use crate::server::attachments::pdf;
use crate::server::attachments::take::{take, Received, Taken};
use crate::server::attachments::upload::DAY_MS;
use crate::server::db::attachments::NewBlob;
use crate::server::db::transfer::{ImportedFile, Stored};
use crate::server::db::{self, Owner};
use crate::server::error_response::api_error;
use crate::server::export_format::Conversation;
use crate::server::imports::Running;
use crate::server::principal::Principal;
use crate::server::quota;
use crate::server::spool::{self, Spooled};
use crate::server::AppState;

/// How often an import tells its progress at most.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// `POST /import`.
pub async fn import(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    request: Request,
) -> Response<Body> {
    let Some(Extension(principal)) = principal else {
        return api_error(&ApiError::Unauthorized("sign in first".into()));
    };
    let owner = principal.owner.clone();
    let Some(running) = state.imports.begin(&owner) else {
        return api_error(&ApiError::Conflict(
            "an import of yours is running already; wait for it to finish".into(),
        ));
    };
    let limit = state.config.limits.max_import_bytes;
    let file = match spool(&state, request, limit).await {
        Ok(file) => file,
        Err(refusal) => return refusal.answer(),
    };
    let (lines, answer) = mpsc::channel::<ImportLine>(16);
    tokio::spawn(run(state, owner, file, limit, lines, running));
    let body = tokio_stream_of(answer).map(|line| {
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Ok::<_, std::io::Error>(bytes)
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(body))
        .unwrap_or_default()
}

fn tokio_stream_of<T: Send + 'static>(
    mut receiver: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Writes the request's body to an unlinked temporary file (`spool`), at most `limit` bytes;
/// the file, read from its start.
async fn spool(state: &AppState, request: Request, limit: u64) -> Result<std::fs::File, Refusal> {
    let too_large = || {
        Refusal::TooLarge(format!(
            "the file is larger than the {} this server takes in one import",
            byte_size(limit)
        ))
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let spooled = spool::spool(
        &state.config.database.spool_anchor(),
        state.config.connections.body_timeout,
        request.into_body(),
        limit,
        |_| {},
    )
    .await
    .map_err(Refusal::Api)?;
    let file = match spooled {
        Spooled::TooLarge => return Err(too_large()),
        Spooled::Whole { size: 0, .. } => {
            return Err(Refusal::Api(ApiError::BadRequest(
                "the file is empty".into(),
            )))
        }
        Spooled::Whole { file, .. } => file,
    };
    let mut file = file.into_std().await;
    tokio::task::spawn_blocking(move || {
        use std::io::Seek;
        file.rewind().map(|()| file)
    })
    .await
    .map_err(|_| Refusal::Api(ApiError::Internal))?
    .map_err(|_| Refusal::Api(ApiError::Internal))
}

/// Why an upload was refused.
enum Refusal {
    /// Larger than the limit: 413, in words.
    TooLarge(String),
    Api(ApiError),
}

impl Refusal {
    fn answer(self) -> Response<Body> {
        match self {
            Refusal::Api(error) => api_error(&error),
            Refusal::TooLarge(words) => {
                let mut answer = api_error(&ApiError::BadRequest(words));
                *answer.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                answer
            }
        }
    }
}

/// Reads and stores; tells the page how it goes. Ends when the file does, when it proves
/// unreadable, or when the page stops listening.
async fn run(
    state: AppState,
    owner: Owner,
    file: std::fs::File,
    limit: u64,
    lines: mpsc::Sender<ImportLine>,
    _running: Running,
) {
    let (items, mut received) = mpsc::channel::<Item>(2);
    let bounds = FileBounds {
        dir: spool::spool_dir(&state.config.database.spool_anchor()),
        max_file_bytes: state.config.limits.max_attachment_bytes,
    };
    let reading = tokio::task::spawn_blocking(move || {
        read_upload(file, limit, &bounds, &mut |item| {
            items.blocking_send(item).is_ok()
        })
    });
    let mut summary = ImportSummary::default();
    let mut failure: Option<String> = None;
    // Progress is told at most every `PROGRESS_EVERY` (the summary at the end says it all).
    let mut told = tokio::time::Instant::now();
    while let Some(item) = received.recv().await {
        let line = match item {
            Item::Format(format) => ImportLine::Started { format },
            Item::Skipped(reason) => {
                skip(&mut summary, reason);
                ImportLine::Progress(summary.clone())
            }
            Item::Conversation(mut conversation, source, files) => {
                if !state.catalog.contains(&conversation.model) {
                    // Its next turn goes to a model this server has.
                    conversation.model = state.catalog.default_model().to_owned();
                }
                match store(&state, &owner, &conversation, &source, files).await {
                    Ok(None) => summary.imported = summary.imported.saturating_add(1),
                    Ok(Some(reason)) => {
                        let title = conversation.title.chars().take(60).collect::<String>();
                        skip(&mut summary, format!("“{title}”: {reason}"));
                    }
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
                ImportLine::Progress(summary.clone())
            }
        };
        if matches!(line, ImportLine::Progress(_)) {
            if lines.is_closed() {
                break;
            }
            if told.elapsed() < PROGRESS_EVERY {
                continue;
            }
            told = tokio::time::Instant::now();
        }
        if lines.send(line).await.is_err() {
            // The page has gone: stop reading (each conversation stored is whole).
            break;
        }
    }
    drop(received);
    let read = reading.await;
    let failure = failure.or(match read {
        Ok(Ok(())) | Ok(Err(ReadError::Stopped)) => None,
        Ok(Err(ReadError::Unreadable(words))) => Some(words),
        Err(e) => {
            tracing::error!("an import's reader failed: {e}");
            Some("the import failed on the server".into())
        }
    });
    let last = match failure {
        None => ImportLine::Done(summary),
        Some(error) => ImportLine::Failed { error, summary },
    };
    // The page may have gone; nothing is owed to it then.
    let _ = lines.send(last).await;
}

/// Stores one conversation and its files: `None` when it is stored, else why it was left out.
/// Its files are taken as uploads are (typed by their bytes, PDFs read, images encoded afresh)
/// and count against the importer's limits as uploads do: per file, per message, per day.
async fn store(
    state: &AppState,
    owner: &Owner,
    conversation: &Conversation,
    source: &str,
    files: Vec<Extracted>,
) -> Result<Option<String>, String> {
    let failed = || "the server could not store the conversations; what was stored before stays";
    let mut taken: Vec<(String, Taken)> = Vec::with_capacity(files.len());
    for extracted in files {
        let named = extracted.sha256.clone();
        let name = conversation
            .distinct_files()
            .into_iter()
            .find(|f| f.sha256 == named)
            .map(|f| f.name.clone())
            .unwrap_or_default();
        let received = Received {
            file: tokio::fs::File::from_std(extracted.file),
            size: extracted.size,
            sha256: extracted.sha256,
            head: extracted.head,
            text: extracted.text,
        };
        match take(received, pdf::Bounds::of(&state.config.limits)).await {
            Ok(file) => taken.push((named, file)),
            Err(ApiError::Internal) => return Err(failed().into()),
            Err(refusal) => return Ok(Some(format!("its file “{name}”: {refusal}"))),
        }
    }
    if let Some(refusal) = over_limits(state, owner, conversation, &taken).await? {
        return Ok(Some(refusal));
    }
    let mut imported: Vec<ImportedFile> = taken
        .iter_mut()
        .map(|(named, file)| ImportedFile {
            named,
            blob: NewBlob {
                sha256: &file.sha256,
                size: file.size,
                mime: file.mime,
                pdf_text: file.pdf_text.as_ref().map(|(t, cut)| (t.as_str(), *cut)),
            },
            kind: file.kind,
            bytes: file.bytes.reader(),
        })
        .collect();
    let quota_bytes = state.config.limits.storage_quota_bytes;
    let stored = db::transfer::import_conversation(
        &state.db,
        owner,
        conversation,
        source,
        quota_bytes,
        &mut imported,
    )
    .await;
    match stored {
        Ok(Stored::New(_)) => Ok(None),
        Ok(Stored::AlreadyImported) => Ok(Some("it was imported before".into())),
        Ok(Stored::OverQuota { used, quota }) => Ok(Some(quota::refusal(used, quota))),
        Err(e) => {
            tracing::error!("storing an imported conversation: {e}");
            Err(failed().into())
        }
    }
}

/// Whether the files `conversation` carries (as `taken`) go past a limit an upload would: why,
/// in words.
async fn over_limits(
    state: &AppState,
    owner: &Owner,
    conversation: &Conversation,
    taken: &[(String, Taken)],
) -> Result<Option<String>, String> {
    let limits = &state.config.limits;
    let size_of = |sha256: &str| {
        taken
            .iter()
            .find(|(named, _)| named == sha256)
            .map_or(0, |(_, file)| file.size)
    };
    let mut adding: u64 = 0;
    for (n, turn) in conversation.turns.iter().enumerate() {
        let total = turn
            .question
            .files
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(size_of(&f.sha256)));
        if total > limits.max_message_attachment_bytes {
            return Ok(Some(format!(
                "the files of its turn {} take {}, more than the {} one message may carry",
                n.saturating_add(1),
                byte_size(total),
                byte_size(limits.max_message_attachment_bytes)
            )));
        }
        adding = adding.saturating_add(total);
    }
    if adding == 0 {
        return Ok(None);
    }
    // Each file a question carries counts as an upload of it (as sending it again would).
    let since = db::now_ms().saturating_sub(DAY_MS);
    let used = db::attachments::uploaded_since(&state.db, owner, since)
        .await
        .map_err(|e| {
            tracing::error!("reading an importer's uploads of the day: {e}");
            "the server could not store the conversations; what was stored before stays".to_owned()
        })?;
    if used.saturating_add(adding) > limits.attachment_bytes_per_day {
        return Ok(Some(format!(
            "its files take {}, and with the {} of files you have uploaded today that is more \
             than the {} this server takes a day from each person; import it again tomorrow",
            byte_size(adding),
            byte_size(used),
            byte_size(limits.attachment_bytes_per_day)
        )));
    }
    Ok(None)
}

fn skip(summary: &mut ImportSummary, reason: String) {
    summary.skipped = summary.skipped.saturating_add(1);
    if summary.reasons.len() < REASONS_KEPT {
        summary.reasons.push(reason);
    }
}
