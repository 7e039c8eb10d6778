//! What every file goes through before it is kept, whether uploaded or brought in by an import:
//! its type found in its bytes (`sniff`), a PDF's text read by the bounded reader (`pdf`), an
//! image decoded within bounds and encoded afresh (`images`). One set of rules for both ways in,
//! so an import can bring nothing an upload could not.

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncSeekExt};

use super::sniff::{sniff, PDF};
use super::{images, pdf};
use crate::error::ApiError;
use crate::model::attachments::AttachmentKind;

/// A file written to a temporary file, as it came: its size, digest, first bytes and whether it
/// was UTF-8 text throughout.
pub struct Received {
    pub file: tokio::fs::File,
    pub size: u64,
    pub sha256: String,
    pub head: Vec<u8>,
    pub text: bool,
}

/// A file ready to be stored.
pub struct Taken {
    pub sha256: String,
    pub size: u64,
    pub mime: &'static str,
    pub kind: AttachmentKind,
    /// A PDF's text and whether it was cut.
    pub pdf_text: Option<(String, bool)>,
    pub bytes: Bytes,
}

/// Where a taken file's bytes are: the received file (rewound), or an image as re-encoded.
pub enum Bytes {
    File(tokio::fs::File),
    Memory(Vec<u8>),
}

impl Bytes {
    /// The bytes to store, read from their start.
    pub fn reader(&mut self) -> Box<dyn AsyncRead + Unpin + Send + '_> {
        match self {
            Bytes::File(file) => Box::new(file),
            Bytes::Memory(bytes) => Box::new(bytes.as_slice()),
        }
    }
}

/// Checks and prepares `received`. Refusals are in words for the person (`BadRequest` or
/// `PayloadTooLarge`); `Internal` is the server's fault (logged).
pub async fn take(received: Received, pdf_bounds: pdf::Bounds) -> Result<Taken, ApiError> {
    if received.size == 0 {
        return Err(ApiError::BadRequest("the file is empty".into()));
    }
    let found = sniff(&received.head, received.text);
    let mut file = received.file;
    rewind(&mut file).await?;
    let mut taken = Taken {
        sha256: received.sha256,
        size: received.size,
        mime: found.mime,
        kind: found.kind,
        pdf_text: None,
        bytes: Bytes::File(file),
    };
    if found.mime == PDF {
        let Bytes::File(file) = &mut taken.bytes else {
            return Err(ApiError::Internal);
        };
        // Read by a bounded child process (`pdf`), from its own handle on the same file.
        let reader_file = file.try_clone().await.map_err(|e| {
            tracing::error!("a second handle on a file's temporary copy: {e}");
            ApiError::Internal
        })?;
        let read = pdf::read_text(reader_file.into_std().await, received.size, pdf_bounds).await;
        let text = read.map_err(|refusal| match refusal {
            pdf::PdfError::Unreadable => ApiError::BadRequest(refusal.to_string()),
            pdf::PdfError::TooLarge | pdf::PdfError::TooSlow(_) => {
                ApiError::PayloadTooLarge(refusal.to_string())
            }
            pdf::PdfError::Start(e) => {
                tracing::error!("starting the PDF reader: {e}");
                ApiError::Internal
            }
        })?;
        // The child read from the shared file position: start again for the store.
        rewind(file).await?;
        taken.pdf_text = Some((text.text, text.cut));
        return Ok(taken);
    }
    if found.kind != AttachmentKind::Image {
        return Ok(taken);
    }
    // An image is kept as it will be shown and sent: scaled, re-encoded, without metadata.
    let Bytes::File(file) = taken.bytes else {
        return Err(ApiError::Internal);
    };
    let file = file.into_std().await;
    let mime = found.mime;
    let image = tokio::task::spawn_blocking(move || images::reencode(file, mime))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|refusal| match refusal {
            images::ImageRefusal::TooLarge => ApiError::PayloadTooLarge(refusal.to_string()),
            images::ImageRefusal::Unreadable => ApiError::BadRequest(refusal.to_string()),
        })?;
    taken.sha256 = hex(&Sha256::digest(&image.bytes));
    taken.size = u64::try_from(image.bytes.len()).unwrap_or(u64::MAX);
    taken.mime = image.mime;
    taken.bytes = Bytes::Memory(image.bytes);
    Ok(taken)
}

async fn rewind(file: &mut tokio::fs::File) -> Result<(), ApiError> {
    file.rewind().await.map_err(|e| {
        tracing::error!("rewinding a file's temporary copy: {e}");
        ApiError::Internal
    })?;
    Ok(())
}

/// A digest as lowercase hex.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` has the form of a SHA-256 as Rill writes one (64 lowercase hex digits).
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
