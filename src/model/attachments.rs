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

/// The server's limits on files, as the page shows them before anything is uploaded (the
/// server checks them again on upload and send).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachmentLimits {
    /// Bytes one file may be.
    pub per_file: u64,
    /// Bytes of files one message may carry.
    pub per_message: u64,
    /// Bytes of files one person may upload in 24 hours.
    pub per_day: u64,
    /// What the person uploaded in the last 24 hours.
    pub used_today: u64,
}

impl AttachmentLimits {
    /// Why a file of `size` bytes cannot join files of `held` bytes on one message, with
    /// `uploading` bytes already on their way today; `None` if it fits.
    pub fn refusal(&self, size: u64, held: u64, uploading: u64) -> Option<String> {
        use crate::format::byte_size;
        if size > self.per_file {
            return Some(format!(
                "{} is larger than the {} this server takes for one file",
                byte_size(size),
                byte_size(self.per_file)
            ));
        }
        if held.saturating_add(size) > self.per_message {
            return Some(format!(
                "with it the message's files would take {}, more than the {} one message may \
                 carry",
                byte_size(held.saturating_add(size)),
                byte_size(self.per_message)
            ));
        }
        let today = self.used_today.saturating_add(uploading);
        if today.saturating_add(size) > self.per_day {
            return Some(format!(
                "only {} of the {} a day this server takes from each person is left today",
                byte_size(self.per_day.saturating_sub(today)),
                byte_size(self.per_day)
            ));
        }
        None
    }

    /// The limits in one line, e.g. "Up to 20.0 MB a file, 50.0 MB a message; 480.0 MB left
    /// today".
    pub fn summary(&self) -> String {
        use crate::format::byte_size;
        format!(
            "Up to {} a file, {} a message; {} left today",
            byte_size(self.per_file),
            byte_size(self.per_message),
            byte_size(self.per_day.saturating_sub(self.used_today))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::AttachmentLimits;

    #[test]
    fn a_file_is_measured_against_each_limit_before_it_is_sent() {
        let limits = AttachmentLimits {
            per_file: 1000,
            per_message: 1500,
            per_day: 3000,
            used_today: 1000,
        };
        assert_eq!(limits.refusal(1000, 0, 0), None);
        assert_eq!(
            limits.refusal(1001, 0, 0).as_deref(),
            Some("1001 bytes is larger than the 1000 bytes this server takes for one file")
        );
        assert_eq!(
            limits.refusal(600, 1000, 0).as_deref(),
            Some(
                "with it the message's files would take 1.6 KB, more than the 1.5 KB one \
                 message may carry"
            )
        );
        assert_eq!(
            limits.refusal(600, 0, 1500).as_deref(),
            Some("only 500 bytes of the 2.9 KB a day this server takes from each person is left today")
        );
        assert_eq!(
            limits.summary(),
            "Up to 1000 bytes a file, 1.5 KB a message; 2.0 KB left today"
        );
    }
}
