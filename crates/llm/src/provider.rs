use std::pin::Pin;

use futures::Stream;

use crate::{LlmError, Usage};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

/// One provider call: the whole conversation so far, rebuilt from storage by the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// The provider's own model name (without Rill's `provider/` prefix).
    pub model: String,
    /// Conversation metadata, sent in whatever slot the provider has for it.
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub max_output_tokens: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// The output token limit was reached.
    Length,
    /// Anything else the provider reports (content filter, tool calls, …).
    Other(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ProviderEvent {
    /// The request waits for capacity (the local model runs one reply at a time).
    Queued {
        ahead: usize,
    },
    TextDelta(String),
    /// Token counts so far; the last one is final. May arrive after `Finished` (OpenAI sends
    /// usage in a last chunk), or early as well (Anthropic reports the prompt first).
    Usage(Usage),
    Finished(FinishReason),
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<ProviderEvent, LlmError>> + Send>>;

/// A streaming chat backend.
///
/// The stream is lazy (nothing is sent until it is first polled) and is cancelled by dropping it:
/// dropping closes the upstream connection, so a provider bills nothing more after Stop.
pub trait Provider: Send + Sync {
    fn stream_chat(&self, request: ChatRequest) -> EventStream;
}
