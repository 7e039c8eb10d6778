//! Anthropic Messages streaming (`POST {base}/messages`, `stream: true`).
//!
//! Events: `message_start` (input usage, cache reads and writes), `content_block_start`,
//! `content_block_delta` (`text_delta`, and `thinking_delta` when the request enabled extended
//! thinking), `content_block_stop`, `message_delta` (stop reason and
//! cumulative usage), `message_stop`, `ping`, and `error` mid-stream (e.g. `overloaded_error`).

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::json;

use crate::error::{shown_message, StreamFault};
use crate::sse::{body_ended, parse_event, stream_sse, Decoded, SseDecoder};
use crate::{
    ChatMessage, ChatRequest, EventStream, FinishReason, LlmError, Provider, ProviderEvent, Role,
    StreamLimits, Usage,
};

/// The API version this decoder follows (sent as `anthropic-version`).
pub const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when the request names none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

pub struct Anthropic {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    limits: StreamLimits,
}

impl Anthropic {
    /// `base_url` is the API root, e.g. `https://api.anthropic.com/v1`.
    pub fn new(http: reqwest::Client, base_url: &str, api_key: String) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            limits: StreamLimits::default(),
        }
    }

    pub fn with_limits(mut self, limits: StreamLimits) -> Self {
        self.limits = limits;
        self
    }
}

impl Provider for Anthropic {
    fn stream_chat(&self, request: ChatRequest) -> EventStream {
        let (body, trimmed) = request_body(&request);
        let http = self
            .http
            .post(format!("{}/messages", self.base_url))
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", API_VERSION)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&body);
        let decoder = EventDecoder {
            swallow: trimmed,
            ..EventDecoder::default()
        };
        stream_sse(http, self.limits.clone(), decoder)
    }
}

/// The request body, and the whitespace cut from the end of a prefill (the API rejects a final
/// assistant message that ends in whitespace).
/// A message's content: its text, or with images, blocks (each image, then the text, as
/// Anthropic advises).
fn content(message: &ChatMessage) -> serde_json::Value {
    if message.images.is_empty() {
        return json!(message.content);
    }
    let mut blocks: Vec<_> = message
        .images
        .iter()
        .map(|image| {
            json!({"type": "image", "source": {
                "type": "base64", "media_type": image.mime, "data": &*image.base64}})
        })
        .collect();
    blocks.push(json!({"type": "text", "text": message.content}));
    serde_json::Value::Array(blocks)
}

fn request_body(request: &ChatRequest) -> (serde_json::Value, String) {
    let (history, partial) = request.split_partial();
    let mut messages: Vec<_> = history
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": content(m)})
        })
        .collect();
    let mut trimmed = String::new();
    if let Some(partial) = partial {
        // A final assistant message is a prefill: the model writes on from its last character.
        let kept = partial.trim_end();
        trimmed = partial[kept.len()..].to_owned();
        messages.push(json!({"role": "assistant", "content": kept}));
    }
    let max_tokens = request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let mut body = json!({
        "model": request.model,
        "max_tokens": max_tokens,
        "messages": messages,
        "stream": true,
    });
    if let Some(system) = request.system.as_deref().filter(|s| !s.trim().is_empty()) {
        body["system"] = json!(system);
    }
    // The API refuses thinking together with a prefill, so a continuation goes on without it.
    if let Some(budget) = request.thinking_budget.filter(|_| partial.is_none()) {
        if let Some(budget) = thinking_budget(budget, max_tokens) {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        }
    }
    (body, trimmed)
}

/// The smallest thinking budget the API accepts.
const MIN_THINKING_BUDGET: u32 = 1024;

/// The thinking budget to send: thinking counts against `max_tokens` and must stay below it, so
/// it gets at most half, leaving the answer the other half; `None` when that is under the API's
/// minimum (a reply cap too small to think in).
fn thinking_budget(wanted: u32, max_tokens: u32) -> Option<u32> {
    Some(wanted.min(max_tokens / 2)).filter(|b| *b >= MIN_THINKING_BUDGET)
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error {
        error: WireError,
    },
    /// `ping`, `content_block_start`, `content_block_stop`, and event types added later.
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    /// Signatures, tool input: neither text nor thinking.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDelta {
    stop_reason: Option<String>,
}

/// Anthropic's counts are disjoint: `input_tokens` excludes cache reads and writes.
#[derive(Deserialize, Default)]
struct WireUsage {
    input_tokens: Option<u32>,
    cache_read_input_tokens: Option<u32>,
    cache_creation_input_tokens: Option<u32>,
    output_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

#[derive(Default)]
struct EventDecoder {
    /// Counts seen so far; `message_delta` carries cumulative values that replace them.
    input: u32,
    cache_read: u32,
    cache_write: u32,
    output: u32,
    stop_reason: Option<String>,
    done: bool,
    /// Whitespace cut from the prefill: the partial reply the caller appends to still has it, so
    /// the same whitespace at the start of the continuation is dropped rather than doubled.
    swallow: String,
}

impl EventDecoder {
    /// Drops leading characters of `text` while they repeat the whitespace cut from the prefill.
    fn without_swallowed(&mut self, text: String) -> String {
        let mut rest = text.as_str();
        while let Some(c) = self.swallow.chars().next() {
            match rest.strip_prefix(c) {
                Some(after) => {
                    rest = after;
                    self.swallow.drain(..c.len_utf8());
                }
                None if rest.is_empty() => break,
                None => self.swallow.clear(),
            }
        }
        if rest.len() == text.len() {
            text
        } else {
            rest.to_owned()
        }
    }

    fn absorb(&mut self, usage: WireUsage) {
        let take = |slot: &mut u32, value: Option<u32>| {
            if let Some(v) = value {
                *slot = v;
            }
        };
        take(&mut self.input, usage.input_tokens);
        take(&mut self.cache_read, usage.cache_read_input_tokens);
        take(&mut self.cache_write, usage.cache_creation_input_tokens);
        take(&mut self.output, usage.output_tokens);
    }

    /// Normalised to [`Usage`]: every prompt token in `input_tokens`, cache figures as parts of it.
    fn usage(&self) -> Usage {
        Usage {
            input_tokens: self
                .input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_write),
            cached_input_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            output_tokens: self.output,
            reasoning_tokens: 0,
        }
    }
}

impl SseDecoder for EventDecoder {
    fn on_event(&mut self, _event: &str, data: &str, out: &mut VecDeque<Decoded>) {
        // The `type` inside the data names the event as well as the `event:` line does.
        let event: Event = match parse_event(data) {
            Ok(event) => event,
            Err(e) => return out.push_back(Err(e)),
        };
        match event {
            Event::MessageStart { message } => {
                self.absorb(message.usage.unwrap_or_default());
                // Exact prompt figures now, so a reply stopped early is not all estimate.
                out.push_back(Ok(ProviderEvent::Usage(self.usage())));
            }
            Event::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
            } => {
                let text = self.without_swallowed(text);
                if !text.is_empty() {
                    out.push_back(Ok(ProviderEvent::TextDelta(text)));
                }
            }
            Event::ContentBlockDelta {
                delta: BlockDelta::ThinkingDelta { thinking },
            } => {
                if !thinking.is_empty() {
                    out.push_back(Ok(ProviderEvent::ThinkingDelta(thinking)));
                }
            }
            Event::MessageDelta { delta, usage } => {
                self.absorb(usage.unwrap_or_default());
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
            }
            Event::MessageStop => {
                self.done = true;
                let reason = match self.stop_reason.take().as_deref() {
                    Some("end_turn" | "stop_sequence") | None => FinishReason::Stop,
                    Some("max_tokens") => FinishReason::Length,
                    Some(other) => FinishReason::Other(other.to_owned()),
                };
                out.push_back(Ok(ProviderEvent::Finished(reason)));
                out.push_back(Ok(ProviderEvent::Usage(self.usage())));
            }
            Event::Error { error } => {
                // An overload mid-stream is the same fault as a 529 before it.
                let message = shown_message(&error.message).or_else(|| shown_message(&error.kind));
                let (fault, status) = match error.kind.as_str() {
                    "overloaded_error" => (StreamFault::Overloaded, Some(529)),
                    "rate_limit_error" => (StreamFault::RateLimited, None),
                    "api_error" => (StreamFault::Overloaded, Some(500)),
                    _ => (StreamFault::Other, None),
                };
                out.push_back(Err(LlmError::mid_stream(fault, status, message, data)));
            }
            Event::ContentBlockDelta { .. } | Event::Ignored => {}
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn on_end(&mut self) -> Result<(), LlmError> {
        body_ended(self.done, "message_stop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse;
    use crate::ChatMessage;

    /// The shape of Anthropic's documented streaming example, with cache usage and a ping.
    const STREAM: &str = include_str!("../tests/fixtures/anthropic_stream.sse");

    fn expected() -> Vec<Decoded> {
        vec![
            Ok(ProviderEvent::Usage(Usage {
                input_tokens: 25 + 1_000 + 200,
                cached_input_tokens: 1_000,
                cache_write_tokens: 200,
                output_tokens: 1,
                reasoning_tokens: 0,
            })),
            Ok(ProviderEvent::TextDelta("Grüße, ".into())),
            Ok(ProviderEvent::TextDelta("世界 🌍".into())),
            Ok(ProviderEvent::Finished(FinishReason::Stop)),
            Ok(ProviderEvent::Usage(Usage {
                input_tokens: 25 + 1_000 + 200,
                cached_input_tokens: 1_000,
                cache_write_tokens: 200,
                output_tokens: 15,
                reasoning_tokens: 0,
            })),
        ]
    }

    async fn decode_chunked(body: &[u8], chunk: usize) -> Vec<Decoded> {
        sse::decode_chunked(body, chunk, EventDecoder::default()).await
    }

    #[tokio::test]
    async fn any_chunking_gives_the_same_events() {
        for size in [1, 2, 3, 5, 7, 64, STREAM.len()] {
            assert_eq!(
                decode_chunked(STREAM.as_bytes(), size).await,
                expected(),
                "chunk size {size}"
            );
        }
    }

    #[tokio::test]
    async fn an_overloaded_error_event_mid_stream_is_a_transient_failure() {
        let body = include_str!("../tests/fixtures/anthropic_overloaded.sse");
        let events = decode_chunked(body.as_bytes(), 9).await;
        assert!(matches!(events[0], Ok(ProviderEvent::Usage(u)) if u.input_tokens == 12));
        assert_eq!(events[1], Ok(ProviderEvent::TextDelta("Hello".into())));
        let Err(error) = &events[2] else {
            panic!("expected an error, got {events:?}")
        };
        assert!(matches!(
            error,
            LlmError::Unavailable {
                status: Some(529),
                ..
            }
        ));
        assert!(error.to_string().contains("Overloaded"));
        assert_eq!(events.len(), 3, "nothing after the error");
    }

    #[tokio::test]
    async fn max_tokens_is_a_length_finish_and_thinking_is_apart_from_text() {
        let body = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"c\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"cut\"}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":4}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let events = decode_chunked(body.as_bytes(), 11).await;
        assert_eq!(
            events[1..],
            vec![
                Ok(ProviderEvent::ThinkingDelta("hmm".into())),
                Ok(ProviderEvent::TextDelta("cut".into())),
                Ok(ProviderEvent::Finished(FinishReason::Length)),
                Ok(ProviderEvent::Usage(Usage {
                    input_tokens: 9,
                    output_tokens: 4,
                    ..Usage::default()
                })),
            ]
        );
    }

    #[tokio::test]
    async fn an_end_before_message_stop_is_a_lost_connection() {
        let cut = STREAM.find("event: message_delta").unwrap_or(STREAM.len());
        let events = decode_chunked(&STREAM.as_bytes()[..cut], 16).await;
        assert!(matches!(
            events.last(),
            Some(Err(LlmError::StreamBroken { .. }))
        ));
    }

    #[test]
    fn body_has_system_apart_and_max_tokens() {
        let (body, _) = request_body(&ChatRequest {
            model: "claude-x".into(),
            system: Some("Be brief.".into()),
            messages: vec![
                ChatMessage::text(Role::User, "hi"),
                ChatMessage::text(Role::Assistant, "hello"),
            ],
            max_output_tokens: None,
            thinking_budget: None,
            requester: None,
        });
        assert_eq!(body["system"], json!("Be brief."));
        assert_eq!(body["max_tokens"], json!(DEFAULT_MAX_TOKENS));
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
        );
        assert_eq!(body["stream"], json!(true));
    }

    fn chat(messages: &[(Role, &str)]) -> ChatRequest {
        ChatRequest {
            max_output_tokens: Some(100),
            ..ChatRequest::of(messages)
        }
    }

    #[test]
    fn thinking_is_asked_with_a_budget_inside_max_tokens_and_never_with_a_prefill() {
        let thinking = |max: u32, budget: u32, messages: &[(Role, &str)]| {
            let (body, _) = request_body(&ChatRequest {
                max_output_tokens: Some(max),
                thinking_budget: Some(budget),
                requester: None,
                ..ChatRequest::of(messages)
            });
            body.get("thinking").cloned()
        };
        let asked = [(Role::User, "hi")];
        assert_eq!(
            thinking(16_000, 4_000, &asked),
            Some(json!({"type": "enabled", "budget_tokens": 4_000}))
        );
        assert_eq!(
            thinking(4_096, 4_000, &asked),
            Some(json!({"type": "enabled", "budget_tokens": 2_048}))
        );
        assert_eq!(thinking(2_000, 4_000, &asked), None, "under the minimum");
        let continued = [(Role::User, "hi"), (Role::Assistant, "Hello")];
        assert_eq!(thinking(16_000, 4_000, &continued), None);
    }

    #[test]
    fn a_partial_reply_is_a_prefill_without_trailing_whitespace() {
        let (body, trimmed) = request_body(&chat(&[
            (Role::User, "hi"),
            (Role::Assistant, "Hello, dear \n "),
        ]));
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello, dear"}])
        );
        assert_eq!(trimmed, " \n ");
        assert_eq!(body["max_tokens"], json!(100));
        let (body, trimmed) = request_body(&chat(&[(Role::User, "hi"), (Role::Assistant, "\n")]));
        assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
        assert_eq!(trimmed, "");
    }

    #[test]
    fn the_whitespace_cut_from_a_prefill_is_not_doubled() {
        let swallowing = |swallow: &str, deltas: &[&str]| {
            let mut decoder = EventDecoder {
                swallow: swallow.into(),
                ..EventDecoder::default()
            };
            deltas
                .iter()
                .map(|d| decoder.without_swallowed((*d).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(swallowing(" ", &[" world", " again"]), ["world", " again"]);
        assert_eq!(swallowing(" ", &["world"]), ["world"]);
        assert_eq!(swallowing("\n\n", &["\n", "\nNext"]), ["", "Next"]);
        assert_eq!(swallowing("\n\n", &["", "\nNext \n"]), ["", "Next \n"]);
        assert_eq!(swallowing("", &[" x"]), [" x"]);
    }

    #[test]
    fn hostile_usage_counts_saturate() {
        let mut decoder = EventDecoder::default();
        decoder.absorb(WireUsage {
            input_tokens: Some(u32::MAX),
            cache_read_input_tokens: Some(u32::MAX),
            cache_creation_input_tokens: Some(7),
            output_tokens: Some(u32::MAX),
        });
        let usage = decoder.usage();
        assert_eq!(usage.input_tokens, u32::MAX);
        assert_eq!(usage.output_tokens, u32::MAX);
    }

    #[tokio::test]
    async fn a_rate_limit_event_mid_stream_is_retryable_and_others_are_provider_errors() {
        let body = concat!(
            "event: error\n",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Slow down\"}}\n\n",
        );
        let events = decode_chunked(body.as_bytes(), 5).await;
        assert!(
            matches!(&events[..], [Err(LlmError::RateLimited { status: None, message: Some(m), .. })] if m == "Slow down")
        );
        let body = concat!(
            "event: error\n",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"\"}}\n\n",
        );
        let events = decode_chunked(body.as_bytes(), 5).await;
        assert!(
            matches!(&events[..], [Err(LlmError::Provider { message, .. })] if message == "invalid_request_error")
        );
    }
}
