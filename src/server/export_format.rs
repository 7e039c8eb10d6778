//! Rill's own export format: one conversation as JSON, every branch of it. The archive of all a
//! person's conversations holds one of these per line. Imports from other apps are turned into
//! this shape first, so one writer stores them all.

use serde::{Deserialize, Serialize};

use crate::model::{MessageStatus, Usage};

/// `format` of a conversation exported by Rill.
pub const FORMAT: &str = "rill.conversation";
/// The version this build writes and reads. 2 added a question's files (`Question::files`): a
/// Rill that reads only 1 refuses such a file rather than lose its attachments unsaid.
pub const VERSION: u32 = 2;
/// Where an archive keeps a file: `files/<sha256>`, its bytes as they were stored.
pub const FILES_DIR: &str = "files/";

/// A conversation, every branch of it. Times are unix milliseconds; ids are the source's (an
/// import gives everything new ids).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub format: String,
    pub version: u32,
    pub id: String,
    pub title: String,
    /// The `provider/model` its next turn uses.
    pub model: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The end of the branch on screen.
    #[serde(default)]
    pub current_turn_id: Option<String>,
    /// The system prompt revision in effect (0: none).
    #[serde(default)]
    pub system_prompt_revision: u32,
    #[serde(default)]
    pub system_prompts: Vec<PromptRevision>,
    /// Every turn, each after the turn it follows.
    #[serde(default)]
    pub turns: Vec<Turn>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptRevision {
    pub revision: u32,
    pub text: String,
    pub created_at: i64,
}

/// A question and its reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub turn_id: String,
    /// The turn before it on its branch (`None`: a first turn).
    #[serde(default)]
    pub parent_turn_id: Option<String>,
    pub question: Question,
    pub reply: Reply,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub text: String,
    pub created_at: i64,
    /// The files it carried, in order (an archive holds their bytes beside the conversations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<File>,
}

/// A file a question carried. Its type is found again in its bytes when it is imported; what
/// is written here of it is only for a reader of the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct File {
    pub name: String,
    /// SHA-256 of its bytes, lowercase hex: its place in the archive (`files/<sha256>`).
    pub sha256: String,
    pub size: u64,
    #[serde(default)]
    pub mime: String,
}

impl File {
    /// Its entry in an archive.
    pub fn entry(&self) -> String {
        format!("{FILES_DIR}{}", self.sha256)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    pub status: MessageStatus,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default = "first_run")]
    pub run: u32,
    #[serde(default)]
    pub system_prompt_revision: Option<u32>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub usage_estimated: bool,
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut_at_limit: bool,
    /// Brought into Rill by an import (here or on the server it was exported from).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

fn first_run() -> u32 {
    1
}

impl Reply {
    /// A finished reply of `text` brought in from another app.
    pub fn imported(text: String, thinking: String, model: Option<String>, at: i64) -> Self {
        Self {
            text,
            thinking,
            status: MessageStatus::Complete,
            model,
            run: 1,
            system_prompt_revision: None,
            usage: None,
            usage_estimated: false,
            cost_usd: None,
            error: None,
            cut_at_limit: false,
            imported: true,
            created_at: at,
            updated_at: at,
        }
    }
}

impl Conversation {
    /// An empty conversation in this format, to be filled by a converter.
    pub fn new(id: String, title: String, model: String, created_at: i64, updated_at: i64) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            id,
            title,
            model,
            created_at,
            updated_at,
            current_turn_id: None,
            system_prompt_revision: 0,
            system_prompts: Vec::new(),
            turns: Vec::new(),
        }
    }

    /// Its questions' files, each once (by SHA-256), in the order first carried.
    pub fn distinct_files(&self) -> Vec<&File> {
        let mut seen = std::collections::HashSet::new();
        self.turns
            .iter()
            .flat_map(|t| &t.question.files)
            .filter(|f| seen.insert(f.sha256.as_str()))
            .collect()
    }

    /// Bytes it stores, as the quota counts them (title, prompts, text and thinking).
    pub fn stored_bytes(&self) -> u64 {
        let prompts: usize = self.system_prompts.iter().map(|p| p.text.len()).sum();
        let turns: usize = self
            .turns
            .iter()
            .map(|t| {
                t.question
                    .text
                    .len()
                    .saturating_add(t.reply.text.len())
                    .saturating_add(t.reply.thinking.len())
            })
            .sum();
        u64::try_from(
            self.title
                .len()
                .saturating_add(prompts)
                .saturating_add(turns),
        )
        .unwrap_or(u64::MAX)
    }

    /// The turns of the branch on screen, first to last (the current turn walked back).
    pub fn branch_on_screen(&self) -> Vec<&Turn> {
        let by_id: std::collections::HashMap<&str, &Turn> =
            self.turns.iter().map(|t| (t.turn_id.as_str(), t)).collect();
        let mut branch = Vec::new();
        let mut next = self
            .current_turn_id
            .as_deref()
            .or_else(|| self.turns.last().map(|t| t.turn_id.as_str()));
        while let Some(turn) = next.and_then(|id| by_id.get(id)) {
            // A parent cycle (only a hostile file could hold one) ends the walk.
            if branch.len() >= self.turns.len() {
                break;
            }
            branch.push(*turn);
            next = turn.parent_turn_id.as_deref();
        }
        branch.reverse();
        branch
    }
}
