//! Attachments on the wire (issue 26): what an upload answers and a question carries, and the
//! limits the page shows before uploading.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST` a file's bytes here (`?name=` its file name) to upload it; `GET` `/attachments/{id}`
/// downloads it (its owner only).
pub const ATTACHMENTS_PATH: &str = "/attachments";

/// Files one message may carry at most.
pub const MAX_FILES_PER_MESSAGE: usize = 10;

/// Most bytes of text kept from one PDF: about half a million tokens, more than any model's
/// window holds; a longer text is cut there, and the model and the person are told.
pub const MAX_PDF_TEXT_BYTES: u64 = 2 << 20;

/// What the model is sent of a file, decided by its bytes (never its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// PNG, JPEG, GIF or WebP: shown, and sent to models that see images.
    Image,
    /// UTF-8 text (plain, Markdown, code, CSV, JSON, HTML…): sent as a text block with its name.
    Text,
    /// Anything else: kept and downloadable, not sent to the model.
    File,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Image => "image",
            AttachmentKind::Text => "text",
            AttachmentKind::File => "file",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "image" => Some(AttachmentKind::Image),
            "text" => Some(AttachmentKind::Text),
            "file" => Some(AttachmentKind::File),
            _ => None,
        }
    }
}

/// An uploaded file as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachmentView {
    pub id: Uuid,
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// The type found in its bytes, as it is served.
    pub mime: String,
    pub kind: AttachmentKind,
    /// What the person should know of how the model reads it (a PDF with no text, or cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
