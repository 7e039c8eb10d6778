//! What every import shares: building a conversation turn by turn, the checks every imported
//! conversation passes (whatever its source) before it is stored, and times.

use std::collections::HashSet;

use crate::model::attachments::MAX_FILES_PER_MESSAGE;
use crate::model::{MessageStatus, MAX_SYSTEM_PROMPT_CHARS, MAX_TITLE_CHARS};
use crate::server::attachments::upload::file_name;
use crate::server::export_format::{Conversation, PromptRevision, Question, Reply, Turn};

/// Bytes of one imported message (a question, a reply's text or its thinking) at most: a turn
/// on the page stays bounded whatever the file holds.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Turns of one imported conversation at most.
pub const MAX_TURNS: usize = 20_000;

/// Why a conversation cannot be imported, in words that name what is wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConvertError {
    #[error("{0}")]
    Shape(String),
    #[error("it has no {0}")]
    Missing(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("it holds no messages")]
    Empty,
}

impl ConvertError {
    /// A structure serde could not read, as its message says.
    pub fn shape(error: serde_json::Error) -> Self {
        Self::Shape(format!("it is not shaped as expected: {error}"))
    }
}

/// A turn being gathered: its question, and the answer as its nodes add to it.
#[derive(Clone, Debug)]
pub struct OpenTurn {
    question: String,
    parent: Option<String>,
    asked_at: i64,
    text: Vec<String>,
    thinking: Vec<String>,
    model: Option<String>,
    answered_at: Option<i64>,
}

impl OpenTurn {
    /// Adds a piece of the answer (empty pieces add nothing).
    pub fn answer(&mut self, text: &str, thinking: &str, model: Option<String>, at: i64) {
        if !text.trim().is_empty() {
            self.text.push(text.trim().to_owned());
        }
        if !thinking.trim().is_empty() {
            self.thinking.push(thinking.trim().to_owned());
        }
        if model.is_some() {
            self.model = model;
        }
        self.answered_at.get_or_insert(at);
    }
}

/// A conversation built from another app's export, a turn at a time.
pub struct Builder {
    conversation: Conversation,
    next_id: u64,
}

impl Builder {
    pub fn new(id: String, title: String, model: String, created: i64, updated: i64) -> Self {
        Self {
            conversation: Conversation::new(id, title, model, created, updated),
            next_id: 0,
        }
    }

    /// A turn asking `question` after `parent`.
    pub fn start(&mut self, question: String, parent: Option<String>, at: i64) -> OpenTurn {
        OpenTurn {
            question: question.trim().to_owned(),
            parent,
            asked_at: at,
            text: Vec::new(),
            thinking: Vec::new(),
            model: None,
            answered_at: None,
        }
    }

    /// Stores the turn; its id.
    pub fn finish(&mut self, turn: OpenTurn) -> String {
        self.next_id += 1;
        let id = format!("t{}", self.next_id);
        let at = turn.answered_at.unwrap_or(turn.asked_at);
        let model = turn.model.or_else(|| Some(self.conversation.model.clone()));
        let mut reply = Reply::imported(
            turn.text.join("\n\n"),
            turn.thinking.join("\n\n"),
            model,
            at,
        );
        if reply.text.is_empty() && reply.thinking.is_empty() {
            // Nothing answered it in the export: Retry asks a model here.
            reply.status = MessageStatus::Failed;
            reply.error = Some("the export holds no answer to this question".to_owned());
        }
        self.conversation.turns.push(Turn {
            turn_id: id.clone(),
            parent_turn_id: turn.parent,
            question: Question {
                text: turn.question,
                created_at: turn.asked_at,
                files: Vec::new(),
            },
            reply,
        });
        id
    }

    /// Instructions the conversation was held to: its system prompt (a new revision when they
    /// change).
    pub fn instructions(&mut self, text: String, at: i64) {
        let text = text.trim().to_owned();
        let prompts = &mut self.conversation.system_prompts;
        if text.is_empty() || prompts.last().is_some_and(|p| p.text == text) {
            return;
        }
        let revision = u32::try_from(prompts.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        prompts.push(PromptRevision {
            revision,
            text,
            created_at: at,
        });
        self.conversation.system_prompt_revision = revision;
    }

    /// The conversation, its branch on screen ending at `current` (else its last turn).
    pub fn build(mut self, current: Option<String>) -> Result<Conversation, ConvertError> {
        if self.conversation.turns.is_empty() {
            return Err(ConvertError::Empty);
        }
        let revision = self.conversation.system_prompt_revision;
        for turn in &mut self.conversation.turns {
            turn.reply.system_prompt_revision = Some(revision);
        }
        self.conversation.current_turn_id = current;
        Ok(self.conversation)
    }
}

/// Checks a conversation of any source and puts it in the shape Rill stores: a title (from
/// its first question when it has none), turns after the turns they follow, every message
/// within [`MAX_MESSAGE_BYTES`], at most [`MAX_FILES_PER_MESSAGE`] files a question (their names
/// as an upload's), known prompt revisions, figures that are numbers.
pub fn checked(mut conversation: Conversation) -> Result<Conversation, ConvertError> {
    if conversation.turns.len() > MAX_TURNS {
        return Err(ConvertError::Invalid(format!(
            "it has {} turns; Rill imports at most {MAX_TURNS} per conversation",
            conversation.turns.len()
        )));
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for (n, turn) in conversation.turns.iter().enumerate() {
        let number = n + 1;
        if let Some(parent) = &turn.parent_turn_id {
            if !seen.contains(parent.as_str()) {
                return Err(ConvertError::Invalid(format!(
                    "turn {number} follows turn {parent:?}, which is not before it"
                )));
            }
        }
        if !seen.insert(turn.turn_id.as_str()) {
            return Err(ConvertError::Invalid(format!(
                "turn {number} has the id {:?} of an earlier turn",
                turn.turn_id
            )));
        }
        if turn.question.files.len() > MAX_FILES_PER_MESSAGE {
            return Err(ConvertError::Invalid(format!(
                "the question of turn {number} carries {} files; a message carries at most \
                 {MAX_FILES_PER_MESSAGE}",
                turn.question.files.len()
            )));
        }
        for (what, text) in [
            ("question", &turn.question.text),
            ("answer", &turn.reply.text),
            ("thinking", &turn.reply.thinking),
        ] {
            if text.len() > MAX_MESSAGE_BYTES {
                return Err(ConvertError::Invalid(format!(
                    "the {what} of turn {number} is larger than the {} KB Rill imports",
                    MAX_MESSAGE_BYTES / 1024
                )));
            }
        }
    }
    if let Some(current) = &conversation.current_turn_id {
        if !seen.contains(current.as_str()) {
            conversation.current_turn_id = None;
        }
    }
    let mut revisions: HashSet<u32> = HashSet::new();
    for prompt in &conversation.system_prompts {
        if prompt.revision == 0 || !revisions.insert(prompt.revision) {
            return Err(ConvertError::Invalid(format!(
                "its system prompt revision {} is repeated or zero",
                prompt.revision
            )));
        }
        if prompt.text.chars().nth(MAX_SYSTEM_PROMPT_CHARS).is_some() {
            return Err(ConvertError::Invalid(format!(
                "its system prompt revision {} is longer than {MAX_SYSTEM_PROMPT_CHARS} characters",
                prompt.revision
            )));
        }
    }
    if conversation.system_prompt_revision != 0
        && !revisions.contains(&conversation.system_prompt_revision)
    {
        return Err(ConvertError::Invalid(format!(
            "its system prompt revision {} is not among its revisions",
            conversation.system_prompt_revision
        )));
    }
    for turn in &mut conversation.turns {
        for file in &mut turn.question.files {
            file.name = file_name(&file.name);
        }
        let reply = &mut turn.reply;
        reply.system_prompt_revision = reply
            .system_prompt_revision
            .filter(|r| *r == 0 || revisions.contains(r));
        reply.cost_usd = reply.cost_usd.filter(|c| c.is_finite() && *c >= 0.0);
        reply.model = reply.model.take().map(|m| cut(&m, 200));
        turn.question.created_at = turn.question.created_at.max(0);
        reply.created_at = reply.created_at.max(0);
        reply.updated_at = reply.updated_at.max(reply.created_at);
    }
    conversation.title = title_of(&conversation);
    conversation.model = cut(&conversation.model, 200);
    conversation.created_at = conversation.created_at.max(0);
    conversation.updated_at = conversation.updated_at.max(conversation.created_at);
    Ok(conversation)
}

/// The title as Rill keeps one (one line, at most [`MAX_TITLE_CHARS`]); from the first question
/// when there is none.
fn title_of(conversation: &Conversation) -> String {
    let line = |text: &str| {
        text.chars()
            .map(|c| {
                if crate::server::input::is_invisible(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let title = line(&conversation.title);
    let title = if title.is_empty() {
        conversation
            .turns
            .first()
            .map(|t| line(&t.question.text))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "Imported chat".to_owned())
    } else {
        title
    };
    cut(&title, MAX_TITLE_CHARS)
}

/// At most `max` characters of `text`.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// Seconds since the epoch (ChatGPT's times) as milliseconds; nonsense as 0.
pub fn seconds_to_ms(seconds: f64) -> i64 {
    let ms = seconds * 1000.0;
    if (0.0..1e15).contains(&ms) {
        // Within range by the check above.
        #[allow(clippy::cast_possible_truncation)]
        let ms = ms as i64;
        ms
    } else {
        0
    }
}

/// An ISO 8601 time in UTC (`2024-06-01T12:34:56.789Z`, Claude's times) as unix milliseconds;
/// `None` when it is not one. An offset other than `Z` is applied.
pub fn iso_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        let first3: String = fraction[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = first3.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(char::is_ascii_digit).collect();
            if digits.len() != 4 {
                return None;
            }
            sign * (num_of(&digits[..2])? * 60 + num_of(&digits[2..])?)
        }
    };
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hour) * 60 + minute - offset_minutes) * 60 + second) * 1000 + millis)
}

fn num_of(text: &str) -> Option<i64> {
    text.parse().ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_read_as_unix_milliseconds() {
        assert_eq!(iso_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(iso_ms("2024-06-01T12:34:56.789Z"), Some(1_717_245_296_789));
        assert_eq!(
            iso_ms("2024-06-01T12:34:56.789123+00:00"),
            Some(1_717_245_296_789)
        );
        assert_eq!(iso_ms("2024-06-01T14:34:56+02:00"), Some(1_717_245_296_000));
        assert_eq!(iso_ms("yesterday"), None);
        assert_eq!(iso_ms("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn seconds_read_as_milliseconds_and_nonsense_as_zero() {
        assert_eq!(seconds_to_ms(1_700_000_000.5), 1_700_000_000_500);
        assert_eq!(seconds_to_ms(f64::NAN), 0);
        assert_eq!(seconds_to_ms(-5.0), 0);
    }
}
