//! Import and export as the page sees them: the lines an import answers with while it runs.

use serde::{Deserialize, Serialize};

/// Where an import may be sent (a plain POST of the file's bytes, not a server function: it is
/// spooled to disk as it arrives, and its progress is answered as it goes).
pub const IMPORT_PATH: &str = "/import";

/// Reasons kept in a summary at most; past them, only the count of skipped conversations grows.
pub const REASONS_KEPT: usize = 20;

/// What an import has done so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// Conversations stored, each whole.
    pub imported: u32,
    /// Conversations left out (already imported, unreadable, over the quota), each whole.
    pub skipped: u32,
    /// Why, for the first [`REASONS_KEPT`] skipped.
    pub reasons: Vec<String>,
}

/// One line of an import's answer (newline-delimited JSON), in order: the file's format, progress
/// after each conversation, then `Done` or `Failed` (what was stored before a failure stays).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportLine {
    /// The upload is whole and recognised: `format` says as what, in words.
    Started {
        format: String,
    },
    Progress(ImportSummary),
    Done(ImportSummary),
    Failed {
        error: String,
        summary: ImportSummary,
    },
}
