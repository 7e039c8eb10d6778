//! Wire types both builds share: conversations, messages, how a reply ended, and the lines of the
//! event streams the server sends.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use llm::Usage;

/// How often an event stream carries a heartbeat while nothing else happens, so proxies keep it
/// open and the page can tell a quiet stream from a dead one.
pub const HEARTBEAT_SECS: u64 = 15;

/// Longest accepted message, in characters (the page shows the count before sending).
pub const MAX_MESSAGE_CHARS: usize = 32_000;
/// Longest accepted system prompt, in characters.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 16_000;
/// Longest conversation title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// How long the page offers Undo after a conversation is deleted.
pub const UNDO_DELETE_SECS: u64 = 8;

/// Stored as the text `user` or `assistant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::Type))]
#[cfg_attr(feature = "ssr", sqlx(type_name = "text", rename_all = "lowercase"))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// Stored as its name in lower case (`streaming`, `complete`, …), as [`MessageStatus::as_str`]
/// spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::Type))]
#[cfg_attr(feature = "ssr", sqlx(type_name = "text", rename_all = "lowercase"))]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// The reply is being generated; its text grows.
    Streaming,
    Complete,
    /// The person pressed Stop; the text shown until then is kept.
    Stopped,
    /// The provider failed, or a bound was crossed; the text so far is kept.
    Failed,
    /// The server went down (shut down or killed) mid-reply; the text it had stored is kept.
    Interrupted,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Streaming => "streaming",
            Self::Complete => "complete",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    /// A reply cut short that the model can be asked to go on with.
    pub fn can_continue(self) -> bool {
        matches!(self, Self::Stopped | Self::Interrupted)
    }
}

/// Where a message stands and, once a reply has ended, how and at what cost. The one description
/// of an ending, from the database row to the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: MessageStatus,
    /// What went wrong, in words, for failed and interrupted replies.
    pub error: Option<String>,
    pub usage: Option<Usage>,
    /// The provider gave no usage (a stopped or failed turn): the figures are estimated.
    pub usage_estimated: bool,
    pub cost_usd: Option<f64>,
    /// Earlier messages that were not sent because they no longer fit the model's context window.
    pub left_out: u32,
    /// A failure in full (upstream status, body excerpt, URL): stored, and sent to admins only
    /// (`get_conversation`); events and everyone else never carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<String>,
    /// The reply ended at its output cap, not where the model would have stopped (the
    /// provider's finish reason); Continue asks for more.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut_at_limit: bool,
    /// A reply brought in by an import: its figures were not spent here (the page says
    /// "imported" where a cost would be).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
}

impl Outcome {
    /// A reply the model can be asked to go on with: cut short, or cut at its output cap.
    pub fn can_continue(&self) -> bool {
        self.status.can_continue() || (self.status == MessageStatus::Complete && self.cut_at_limit)
    }

    /// A message that is whole and has no figures (a user message).
    pub fn complete() -> Self {
        Self::with_status(MessageStatus::Complete)
    }

    /// A reply that has just begun.
    pub fn streaming() -> Self {
        Self::with_status(MessageStatus::Streaming)
    }

    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
            ..Self::with_status(MessageStatus::Failed)
        }
    }

    fn with_status(status: MessageStatus) -> Self {
        Self {
            status,
            error: None,
            usage: None,
            usage_estimated: false,
            cost_usd: None,
            left_out: 0,
            error_detail: None,
            cut_at_limit: false,
            imported: false,
        }
    }
}

/// USD per million tokens. See `src/server/prices.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
    #[serde(default)]
    pub cache_write: Option<f64>,
    pub output: f64,
}

/// What the model picker offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMenu {
    pub groups: Vec<ModelGroup>,
    /// The model new conversations use.
    pub default_model: String,
    /// E.g. how to fetch the local model when it is missing.
    pub notices: Vec<String>,
    /// When the prices were taken from the providers' pages.
    pub prices_as_of: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelGroup {
    pub provider: String,
    pub models: Vec<ModelOption>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelOption {
    /// `provider/model`.
    pub id: String,
    /// Said after the model's name (`format::model_name(id)`, the name replies show too).
    pub note: Option<String>,
    pub price: Option<Price>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: Uuid,
    pub title: String,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// Where a page of the conversation list ends: the next page lists those listed after it
/// (newest first: changed before `updated_at`, or then with a smaller id).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationCursor {
    pub updated_at: i64,
    pub id: Uuid,
}

/// Conversations the page comes with: about what fills a screen (the groups' headings and the
/// pinned ones take the rest), so a person with 10,000 opens the page as fast as one with 10.
pub const CONVERSATIONS_PAGE: usize = 30;
/// Conversations asked for at once as the reader scrolls toward the end of the list.
pub const OLDER_CONVERSATIONS_PAGE: usize = 100;
/// The most one request lists: after a change the list is read again as long as it was, up to
/// this.
pub const CONVERSATIONS_MAX: usize = 1000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: Uuid,
    pub title: String,
    pub model: String,
    /// Sent with each turn as the provider's system prompt; never a message.
    pub system_prompt: String,
    /// The revision `system_prompt` is (0: none was ever set).
    pub system_prompt_revision: u32,
    /// The revisions of the system prompt the replies shown were written with, and the one in
    /// effect, oldest first, so a reply can say what it was given.
    pub system_prompts: Vec<PromptRevision>,
    /// The newest messages of the branch on screen (a window; see `older_before`).
    pub messages: Vec<MessageView>,
    /// Older messages exist on this branch: they are those before this position, and the page
    /// asks for them with `get_conversation(id, before)`.
    #[serde(default)]
    pub older_before: Option<u32>,
    /// The figures of the older messages not sent, so the conversation's totals stay whole.
    #[serde(default)]
    pub older_totals: Totals,
}

/// Tokens and cost added up over messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `None` when no message had a known cost.
    pub cost_usd: Option<f64>,
    /// Some figures are estimates.
    pub estimated: bool,
}

/// One version of a conversation's system prompt (numbered from 1; the text may be empty when
/// the prompt was cleared).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptRevision {
    pub revision: u32,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: Uuid,
    pub turn_id: Uuid,
    pub role: Role,
    pub content: String,
    /// A reply's thinking (the reasoning some models stream before answering), as plain text;
    /// shown apart, never sent back to a model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// A reply's text rendered as safe HTML (`crate::markdown`) when the server sends a
    /// conversation to show; empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub html: String,
    /// The `provider/model` that wrote a reply.
    pub model: Option<String>,
    /// How many times this reply was generated or continued; numbers its event logs.
    pub run: u32,
    /// For a reply: the system prompt revision in effect when it was written (0: none); `None`
    /// for questions and for replies older than revisions.
    pub system_prompt_revision: Option<u32>,
    /// For a question: the turn before it on its branch (`None`: the conversation's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_turn_id: Option<Uuid>,
    /// For a question that was edited or regenerated: the turn ids of it and its alternatives,
    /// in the order they were asked (empty when it has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Uuid>,
    pub outcome: Outcome,
    /// A question's files, in the order attached (filled where a page is sent messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<attachments::AttachmentView>,
}

/// A message to send, as the browser asks for it (`send_message`). The browser mints `turn_id`:
/// sending the same request again re-attaches to that turn instead of starting another. The
/// server validates it once, into `server::input::ValidSend`, before anything is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendRequest {
    pub turn_id: Uuid,
    /// `None` starts a new conversation.
    pub conversation_id: Option<Uuid>,
    pub text: String,
    /// A catalog id (`provider/model`) from the picker: the conversation uses it from this turn
    /// on. `None` keeps the conversation's model (or, for a new one, the default).
    pub model: Option<String>,
    /// For a new conversation: the system prompt its settings set (`None`: the server's default).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// An edit or a regeneration: the turn this one replaces on the branch (kept as a sibling).
    #[serde(default)]
    pub alternative_to: Option<Uuid>,
    /// Files uploaded before the send (`ATTACHMENTS_PATH`), in the order shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Uuid>,
}

/// One event of a turn, numbered from 1 within one run of the turn, so that a reader can
/// re-attach after the last `seq` it saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnEnvelope {
    pub seq: u32,
    pub event: TurnEvent,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnEvent {
    /// The first event of every run: the reply's text starts here, empty.
    Started {
        conversation_id: Uuid,
        /// The assistant message this turn writes.
        message_id: Uuid,
        model: String,
        /// Which run of the reply this log belongs to (a Continue starts the next one).
        run: u32,
        /// The system prompt revision this run was given (see [`MessageView`]).
        #[serde(default)]
        system_prompt_revision: Option<u32>,
    },
    /// The model is busy with other replies; this many are ahead.
    Queued {
        ahead: u32,
    },
    Delta {
        text: String,
    },
    /// More of the reply's thinking (see [`MessageView::thinking`]).
    Thinking {
        text: String,
    },
    /// The last event: the reply is stored exactly as the events built it.
    Finished(Outcome),
}

/// One line of an event stream. Turn streams carry `Event`s and `Heartbeat`s; a conversation's
/// stream also announces each turn (`Turn`) before that turn's events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "snake_case")]
pub enum StreamLine {
    /// A turn the page may not have yet (sent from another tab, or continued): its question and
    /// its reply as stored. When the reply is still streaming, its events follow.
    Turn {
        user: Box<MessageView>,
        reply: Box<MessageView>,
    },
    Event(TurnEnvelope),
    /// The conversation's title: as it is when the stream opens, and again whenever it changes
    /// (a model's title from the first exchange).
    Title {
        title: String,
    },
    /// Nothing happened for a while; the connection is alive.
    Heartbeat,
}

/// Stream lines travel as newline-delimited JSON; a line is only parsed once it is whole, so
/// network chunking (which may split a multi-byte character) never matters.
pub mod ndjson {
    use std::collections::VecDeque;
    use std::pin::Pin;

    use futures::{Stream, StreamExt};

    use super::StreamLine;

    pub fn encode(line: &StreamLine) -> Vec<u8> {
        // Serialising these plain structs cannot fail.
        let mut bytes = serde_json::to_vec(line).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Accumulates bytes and yields each complete line.
    #[derive(Default)]
    pub struct Decoder {
        buffer: Vec<u8>,
        /// Bytes of `buffer` already searched for a newline.
        scanned: usize,
    }

    impl Decoder {
        pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<StreamLine, serde_json::Error>> {
            self.buffer.extend_from_slice(bytes);
            let mut out = Vec::new();
            let mut start = 0;
            while let Some(offset) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + offset;
                if end > start {
                    out.push(serde_json::from_slice(&self.buffer[start..end]));
                }
                start = end + 1;
                self.scanned = start;
            }
            self.buffer.drain(..start);
            self.scanned = self.buffer.len();
            out
        }
    }

    /// Why a stream of lines ended early.
    #[derive(Debug)]
    pub enum LineError<E> {
        /// Reading the bytes failed.
        Read(E),
        /// A line was not a [`StreamLine`].
        Malformed(serde_json::Error),
    }

    impl<E: std::fmt::Display> std::fmt::Display for LineError<E> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Self::Read(e) => e.fmt(f),
                Self::Malformed(e) => write!(f, "a malformed line: {e}"),
            }
        }
    }

    /// The lines of a byte stream, however its chunks split them: the one read loop the page,
    /// the tests and the examples share. An error is the last item (a bad line ends the stream,
    /// as a broken read does); a trailing line without its newline is not a line.
    pub fn lines<S, B, E>(bytes: S) -> impl Stream<Item = Result<StreamLine, LineError<E>>>
    where
        S: Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
    {
        struct Reading<S> {
            bytes: Pin<Box<S>>,
            decoder: Decoder,
            /// Decoded from chunks already read, not handed out yet.
            pending: VecDeque<Result<StreamLine, serde_json::Error>>,
            ended: bool,
        }
        let reading = Reading {
            bytes: Box::pin(bytes),
            decoder: Decoder::default(),
            pending: VecDeque::new(),
            ended: false,
        };
        futures::stream::unfold(reading, |mut reading| async move {
            loop {
                if reading.ended {
                    return None;
                }
                match reading.pending.pop_front() {
                    Some(Ok(line)) => return Some((Ok(line), reading)),
                    Some(Err(e)) => {
                        reading.ended = true;
                        return Some((Err(LineError::Malformed(e)), reading));
                    }
                    None => {}
                }
                match reading.bytes.next().await {
                    Some(Ok(chunk)) => {
                        let decoded = reading.decoder.push(chunk.as_ref());
                        reading.pending.extend(decoded);
                    }
                    Some(Err(e)) => {
                        reading.ended = true;
                        return Some((Err(LineError::Read(e)), reading));
                    }
                    None => return None,
                }
            }
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::model::{TurnEnvelope, TurnEvent};

        #[test]
        fn lines_split_anywhere_decode_whole() {
            let mut lines: Vec<StreamLine> = ["日本語 🌍", "é", " plain"]
                .iter()
                .zip(1..)
                .map(|(t, seq)| {
                    StreamLine::Event(TurnEnvelope {
                        seq,
                        event: TurnEvent::Delta { text: (*t).into() },
                    })
                })
                .collect();
            lines.insert(1, StreamLine::Heartbeat);
            let bytes: Vec<u8> = lines.iter().flat_map(encode).collect();
            for size in 1..=5 {
                let mut decoder = Decoder::default();
                let decoded: Vec<StreamLine> = bytes
                    .chunks(size)
                    .flat_map(|c| decoder.push(c))
                    .collect::<Result<_, _>>()
                    .expect("valid lines");
                assert_eq!(decoded, lines, "chunk size {size}");
            }
        }

        fn delta(seq: u32, text: &str) -> StreamLine {
            StreamLine::Event(TurnEnvelope {
                seq,
                event: TurnEvent::Delta { text: text.into() },
            })
        }

        /// Everything `lines` yields from these chunks, errors as their text.
        fn read_all(chunks: Vec<Result<Vec<u8>, &'static str>>) -> Vec<Result<StreamLine, String>> {
            futures::executor::block_on(
                lines(futures::stream::iter(chunks))
                    .map(|line| line.map_err(|e| e.to_string()))
                    .collect(),
            )
        }

        #[test]
        fn lines_come_whole_across_chunks() {
            let bytes: Vec<u8> = [delta(1, "é"), StreamLine::Heartbeat, delta(2, "b")]
                .iter()
                .flat_map(encode)
                .collect();
            let chunks = bytes.chunks(3).map(|c| Ok(c.to_vec())).collect();
            assert_eq!(
                read_all(chunks),
                vec![
                    Ok(delta(1, "é")),
                    Ok(StreamLine::Heartbeat),
                    Ok(delta(2, "b"))
                ]
            );
        }

        #[test]
        fn a_bad_line_ends_the_lines() {
            let mut bytes = encode(&delta(1, "a"));
            bytes.extend_from_slice(b"{not json}\n");
            bytes.extend(encode(&delta(2, "b")));
            let read = read_all(vec![Ok(bytes)]);
            assert_eq!(read.len(), 2, "{read:?}");
            assert_eq!(read[0], Ok(delta(1, "a")));
            assert!(read[1]
                .as_ref()
                .is_err_and(|e| e.starts_with("a malformed line")));
        }

        #[test]
        fn a_read_error_ends_the_lines_after_what_came_before() {
            let read = read_all(vec![
                Ok(encode(&delta(1, "a"))),
                Err("reset"),
                Ok(encode(&delta(2, "b"))),
            ]);
            assert_eq!(read, vec![Ok(delta(1, "a")), Err("reset".to_owned())]);
        }

        #[test]
        fn an_unfinished_last_line_is_not_a_line() {
            let mut bytes = encode(&delta(1, "a"));
            bytes.extend_from_slice(br#"{"line":"heartbeat"}"#);
            assert_eq!(read_all(vec![Ok(bytes)]), vec![Ok(delta(1, "a"))]);
        }
    }
}

/// Accounts, usage and the admin page.
pub mod accounts;
/// API keys: what a person sees of the keys they made for `/v1`.
pub mod api_keys;
/// Attachments: an upload's answer, what a question carries.
pub mod attachments;
/// Groups: the admin page's groups, budgets and their warnings.
pub mod groups;
/// Search results: where the words were found, the matched words as text ranges.
pub mod search;
/// Share links: a person's links and what a shared page shows.
pub mod shares;
/// Import and export: an import's progress lines.
pub mod transfer;
