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
    /// Images that go with the text (a question's attachments), in order. Each provider sends
    /// them in its own format; a provider whose models cannot see ignores them (the caller
    /// refuses to send images to such a model before asking).
    pub images: Vec<Image>,
}

impl ChatMessage {
    /// A message of text alone.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            images: Vec::new(),
        }
    }
}

/// An image as providers take it: its type and its bytes in base64 (shared, since a prompt
/// is cloned for each retry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub mime: String,
    pub base64: std::sync::Arc<str>,
}

/// One provider call: the whole conversation so far, rebuilt from storage by the caller.
///
/// **Continuing a cut-off reply.** If the last message has [`Role::Assistant`], the request asks
/// the model to continue that partial reply, and what the model generates is to be appended to it
/// verbatim. Each provider maps this onto its protocol: a prefill where the protocol has one
/// (Anthropic, the local model's ChatML), otherwise the partial as an assistant message followed
/// by [`CONTINUE_INSTRUCTION`] as a user message. A blank partial counts as none.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// The provider's own model name (without Rill's `provider/` prefix).
    pub model: String,
    /// Conversation metadata, sent in whatever slot the provider has for it.
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    /// The reply's length limit, sent in each protocol's own field.
    pub max_output_tokens: Option<u32>,
    /// Ask the model to think first, in at most this many tokens, and to stream its thinking
    /// (Anthropic's extended thinking, Gemini's thought summaries). Servers that stream
    /// reasoning unasked (DeepSeek, vLLM, llama.cpp) need no field; `None` asks nothing.
    pub thinking_budget: Option<u32>,
    /// Who asks (opaque), for a provider that one machine's capacity is shared by: the local
    /// model serves people in turn and holds at most one waiting request per person. Never sent.
    pub requester: Option<String>,
}

/// What OpenAI-compatible and Gemini requests ask when they continue a partial reply (they have
/// no portable prefill).
pub const CONTINUE_INSTRUCTION: &str = "Continue your previous reply exactly where it stopped. \
     Do not repeat anything you already wrote and add nothing before the continuation.";

impl ChatRequest {
    /// The messages before a partial reply, and that reply if the request continues one
    /// (see the type's documentation). A blank trailing assistant message is dropped.
    pub fn split_partial(&self) -> (&[ChatMessage], Option<&str>) {
        match self.messages.split_last() {
            Some((last, before)) if last.role == Role::Assistant => {
                let partial = Some(last.content.as_str()).filter(|p| !p.trim().is_empty());
                (before, partial)
            }
            _ => (&self.messages, None),
        }
    }
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
    /// The model's reasoning before (or between) its answer's text: shown apart, stored apart,
    /// never sent back as history.
    ThinkingDelta(String),
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

    /// Exactly how many prompt tokens one message of `content` costs, framing included, for a
    /// provider that can count them itself (the local model); `None` where only an estimate is
    /// possible.
    fn message_tokens(&self, _content: &str) -> Option<u32> {
        None
    }

    /// Exactly how many prompt tokens there are besides the messages (the system prompt, or the
    /// provider's own default, and any framing around the reply), where the provider can count
    /// them; `None` elsewhere.
    fn framing_tokens(&self, _system: Option<&str>) -> Option<u32> {
        None
    }
}

#[cfg(test)]
impl ChatRequest {
    /// A request of these messages to model `m`, no system prompt, no output cap; tests adjust
    /// the rest with struct update syntax.
    pub(crate) fn of(messages: &[(Role, &str)]) -> Self {
        Self {
            model: "m".into(),
            system: None,
            messages: messages
                .iter()
                .map(|(role, content)| ChatMessage::text(*role, *content))
                .collect(),
            max_output_tokens: None,
            thinking_budget: None,
            requester: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_assistant_message_is_a_partial_reply() {
        let r = ChatRequest::of(&[(Role::User, "hi"), (Role::Assistant, "Hello, wor")]);
        assert_eq!(r.split_partial(), (&r.messages[..1], Some("Hello, wor")));
        let r = ChatRequest::of(&[(Role::User, "hi"), (Role::Assistant, " \n ")]);
        assert_eq!(r.split_partial(), (&r.messages[..1], None));
        let r = ChatRequest::of(&[(Role::User, "hi")]);
        assert_eq!(r.split_partial(), (&r.messages[..], None));
        let r = ChatRequest::of(&[]);
        assert_eq!(r.split_partial(), (&r.messages[..], None));
    }
}
