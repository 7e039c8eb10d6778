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

use super::reader::{read_upload, Item, ReadError};
use crate::error::ApiError;
use crate::format::byte_size;
use crate::model::transfer::{ImportLine, ImportSummary, REASONS_KEPT};
use crate::server::db::{self, transfer::Stored, Db, Owner};
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
    let reading = tokio::task::spawn_blocking(move || {
        read_upload(file, limit, &mut |item| items.blocking_send(item).is_ok())
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
            Item::Conversation(mut conversation, source) => {
                if !state.catalog.contains(&conversation.model) {
                    // Its next turn goes to a model this server has.
                    conversation.model = state.catalog.default_model().to_owned();
                }
                match store(&state.db, &owner, &conversation, &source, &state).await {
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

/// Stores one conversation: `None` when it is stored, else why it was left out.
async fn store(
    db: &Db,
    owner: &Owner,
    conversation: &Conversation,
    source: &str,
    state: &AppState,
) -> Result<Option<String>, String> {
    let quota_bytes = state.config.limits.storage_quota_bytes;
    match db::transfer::import_conversation(db, owner, conversation, source, quota_bytes).await {
        Ok(Stored::New(_)) => Ok(None),
        Ok(Stored::AlreadyImported) => Ok(Some("it was imported before".into())),
        Ok(Stored::OverQuota { used, quota }) => Ok(Some(quota::refusal(used, quota))),
        Err(e) => {
            tracing::error!("storing an imported conversation: {e}");
            Err("the server could not store the conversations; what was stored before stays".into())
        }
    }
}

fn skip(summary: &mut ImportSummary, reason: String) {
    summary.skipped = summary.skipped.saturating_add(1);
    if summary.reasons.len() < REASONS_KEPT {
        summary.reasons.push(reason);
    }
}
