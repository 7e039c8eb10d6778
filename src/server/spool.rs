//! An upload's body written to an unlinked temporary file beside the database (a disk the
//! operator sized for data, where `/tmp` may be memory), never held in memory: at most a limit
//! of bytes, each piece arriving within the body timeout. Imports and attachments both take
//! their uploads this way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;

/// What came of an upload.
pub enum Spooled {
    /// The whole body, written and flushed (the file's position is at its end).
    Whole { file: tokio::fs::File, size: u64 },
    /// The body grew past the limit: nothing more was read.
    TooLarge,
}

/// Writes `body` to a temporary file beside `database`, handing each piece to `piece` as it is
/// written (to hash it, say).
pub async fn spool(
    database: &Path,
    wait: Duration,
    body: Body,
    limit: u64,
    mut piece: impl FnMut(&[u8]),
) -> Result<Spooled, ApiError> {
    let dir = spool_dir(database);
    let file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| {
            tracing::error!("creating an upload's temporary file: {e}");
            ApiError::Internal
        })?;
    let mut file = tokio::fs::File::from_std(file);
    let mut body = body;
    let mut size: u64 = 0;
    loop {
        let frame = match tokio::time::timeout(wait, body.frame()).await {
            Err(_) => return Err(ApiError::BadRequest("the upload stalled; try again".into())),
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Err(ApiError::BadRequest(
                    "the upload was cut off before its end; try again".into(),
                ))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size = size.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        if size > limit {
            return Ok(Spooled::TooLarge);
        }
        piece(&data);
        file.write_all(&data).await.map_err(|e| {
            tracing::error!("writing an upload's temporary file: {e}");
            ApiError::InsufficientStorage("the server has no room for this file now".into())
        })?;
    }
    file.flush().await.map_err(|_| ApiError::Internal)?;
    Ok(Spooled::Whole { file, size })
}

/// The directory temporary files go to: the database's own (see the module's note).
pub fn spool_dir(database: &Path) -> PathBuf {
    match database.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}
