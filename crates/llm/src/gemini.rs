//! Google Gemini streaming (`POST {base}/models/{model}:streamGenerateContent?alt=sse`).
//!
//! Each SSE event is a whole `GenerateContentResponse`: candidate text parts, a `finishReason` on
//! the last, and `usageMetadata` (cumulative) on each. There is no end marker: the body ends after
//! the chunk that carries the finish reason.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::json;

use crate::error::{shown_message, StreamFault};
use crate::sse::{body_ended, parse_event, stream_sse, Decoded, SseDecoder};
use crate::{
    ChatRequest, EventStream, FinishReason, LlmError, Provider, ProviderEvent, Role, StreamLimits,
    Usage, CONTINUE_INSTRUCTION,
};

pub struct Gemini {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    limits: StreamLimits,
}

impl Gemini {
    /// `base_url` is the API root, e.g. `https://generativelanguage.googleapis.com/v1beta`.
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

impl Provider for Gemini {
    fn stream_chat(&self, request: ChatRequest) -> EventStream {
        let http = self
            .http
            .post(format!(
                "{}/models/{}:streamGenerateContent?alt=sse",
                self.base_url, request.model
            ))
            .header("x-goog-api-key", &self.api_key)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&request_body(&request));
        stream_sse(http, self.limits.clone(), ChunkDecoder::default())
    }
}

fn request_body(request: &ChatRequest) -> serde_json::Value {
    let turn = |role: &str, text: &str| json!({"role": role, "parts": [{"text": text}]});
    let (history, partial) = request.split_partial();
    let mut contents: Vec<_> = history
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "model",
            };
            // Images go before the text, each as inline data.
            let mut parts: Vec<_> = m
                .images
                .iter()
                .map(|image| {
                    json!({"inline_data": {"mime_type": image.mime, "data": &*image.base64}})
                })
                .collect();
            parts.push(json!({"text": m.content}));
            json!({"role": role, "parts": parts})
        })
        .collect();
    // No portable prefill: show the partial reply and ask for the rest.
    if let Some(partial) = partial {
        contents.push(turn("model", partial));
        contents.push(turn("user", CONTINUE_INSTRUCTION));
    }
    let mut body = json!({ "contents": contents });
    if let Some(system) = request.system.as_deref().filter(|s| !s.trim().is_empty()) {
        body["systemInstruction"] = json!({"parts": [{"text": system}]});
    }
    if let Some(max) = request.max_output_tokens {
        body["generationConfig"]["maxOutputTokens"] = json!(max);
    }
    if let Some(budget) = request.thinking_budget {
        // Without `includeThoughts` a thinking model thinks (and bills it) but streams none.
        body["generationConfig"]["thinkingConfig"] =
            json!({"includeThoughts": true, "thinkingBudget": budget});
    }
    body
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    #[serde(default)]
    candidates: Vec<Candidate>,
    usage_metadata: Option<UsageMetadata>,
    error: Option<WireError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
    /// A thought summary, not reply text.
    #[serde(default)]
    thought: bool,
}

/// `promptTokenCount` includes the cached part; `candidatesTokenCount` excludes the thinking
/// tokens (`thoughtsTokenCount`), which are billed as output too.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u32,
    #[serde(default)]
    cached_content_token_count: u32,
    #[serde(default)]
    candidates_token_count: u32,
    #[serde(default)]
    thoughts_token_count: u32,
}

impl From<UsageMetadata> for Usage {
    fn from(u: UsageMetadata) -> Self {
        Usage {
            input_tokens: u.prompt_token_count,
            cached_input_tokens: u.cached_content_token_count,
            cache_write_tokens: 0,
            output_tokens: u
                .candidates_token_count
                .saturating_add(u.thoughts_token_count),
            reasoning_tokens: u.thoughts_token_count,
        }
    }
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    message: String,
}

#[derive(Default)]
struct ChunkDecoder {
    finished: bool,
}

impl SseDecoder for ChunkDecoder {
    fn on_event(&mut self, _event: &str, data: &str, out: &mut VecDeque<Decoded>) {
        let chunk: Chunk = match parse_event(data) {
            Ok(chunk) => chunk,
            Err(e) => return out.push_back(Err(e)),
        };
        if let Some(error) = chunk.error {
            let fault = match error.code {
                429 => StreamFault::RateLimited,
                500..=599 => StreamFault::Overloaded,
                _ => StreamFault::Other,
            };
            let message = shown_message(&error.message);
            return out.push_back(Err(LlmError::mid_stream(
                fault,
                Some(error.code),
                message,
                data,
            )));
        }
        // Only the first candidate is asked for (candidateCount defaults to 1).
        if let Some(candidate) = chunk.candidates.into_iter().next() {
            let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
            for part in parts {
                if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                    out.push_back(Ok(if part.thought {
                        ProviderEvent::ThinkingDelta(text)
                    } else {
                        ProviderEvent::TextDelta(text)
                    }));
                }
            }
            if let Some(reason) = candidate.finish_reason {
                self.finished = true;
                out.push_back(Ok(ProviderEvent::Finished(match reason.as_str() {
                    "STOP" => FinishReason::Stop,
                    "MAX_TOKENS" => FinishReason::Length,
                    _ => FinishReason::Other(reason),
                })));
            }
        }
        // Cumulative: the turn keeps the last one.
        if let Some(usage) = chunk.usage_metadata {
            out.push_back(Ok(ProviderEvent::Usage(usage.into())));
        }
    }

    fn is_done(&self) -> bool {
        false
    }

    fn on_end(&mut self) -> Result<(), LlmError> {
        body_ended(self.finished, "a finish reason")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse;
    use crate::ChatMessage;

    const STREAM: &str = include_str!("../tests/fixtures/gemini_stream.sse");

    async fn decode_chunked(body: &[u8], chunk: usize) -> Vec<Decoded> {
        sse::decode_chunked(body, chunk, ChunkDecoder::default()).await
    }

    #[tokio::test]
    async fn any_chunking_gives_the_same_events_and_thoughts_are_thinking_billed_as_output() {
        let whole = decode_chunked(STREAM.as_bytes(), STREAM.len()).await;
        let text: String = whole
            .iter()
            .filter_map(|e| match e {
                Ok(ProviderEvent::TextDelta(t)) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Grüße, 世界 🌍");
        assert_eq!(
            whole.first(),
            Some(&Ok(ProviderEvent::ThinkingDelta(
                "Let me think about greetings.".into()
            )))
        );
        assert!(whole.contains(&Ok(ProviderEvent::Finished(FinishReason::Stop))));
        let last_usage = whole.iter().rev().find_map(|e| match e {
            Ok(ProviderEvent::Usage(u)) => Some(*u),
            _ => None,
        });
        assert_eq!(
            last_usage,
            Some(Usage {
                input_tokens: 1_200,
                cached_input_tokens: 1_000,
                cache_write_tokens: 0,
                output_tokens: 12 + 30,
                reasoning_tokens: 30,
            })
        );
        for size in [1, 2, 3, 7, 50] {
            assert_eq!(
                decode_chunked(STREAM.as_bytes(), size).await,
                whole,
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn thinking_asks_for_thoughts_beside_the_reply_cap() {
        let body = request_body(&ChatRequest {
            max_output_tokens: Some(8_192),
            thinking_budget: Some(2_048),
            requester: None,
            ..ChatRequest::of(&[(Role::User, "hi")])
        });
        assert_eq!(
            body["generationConfig"],
            json!({"maxOutputTokens": 8_192, "thinkingConfig": {"includeThoughts": true, "thinkingBudget": 2_048}})
        );
        let body = request_body(&ChatRequest::of(&[(Role::User, "hi")]));
        assert!(body.get("generationConfig").is_none());
    }

    #[tokio::test]
    async fn an_end_without_a_finish_reason_is_a_lost_connection() {
        let body = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"}}]}\r\n\r\n";
        let events = decode_chunked(body.as_bytes(), 4).await;
        assert_eq!(events[0], Ok(ProviderEvent::TextDelta("Hi".into())));
        assert!(matches!(events[1], Err(LlmError::StreamBroken { .. })));
    }

    #[tokio::test]
    async fn an_error_chunk_ends_the_stream() {
        let body = "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
        let events = decode_chunked(body.as_bytes(), 4).await;
        assert!(matches!(
            events.as_slice(),
            [Err(LlmError::Unavailable {
                status: Some(503),
                ..
            })]
        ));
    }

    #[test]
    fn body_uses_model_role_and_system_instruction() {
        let body = request_body(&ChatRequest {
            model: "gemini-2.5-flash".into(),
            system: Some("Be brief.".into()),
            messages: vec![
                ChatMessage::text(Role::User, "hi"),
                ChatMessage::text(Role::Assistant, "hello"),
            ],
            max_output_tokens: Some(64),
            thinking_budget: None,
            requester: None,
        });
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}]})
        );
        assert_eq!(body["contents"][1]["role"], json!("model"));
        assert_eq!(body["generationConfig"]["maxOutputTokens"], json!(64));
    }

    #[test]
    fn a_partial_reply_is_sent_back_with_an_instruction_to_continue() {
        let body = request_body(&ChatRequest {
            model: "gemini-2.5-flash".into(),
            system: None,
            messages: vec![
                ChatMessage::text(Role::User, "hi"),
                ChatMessage::text(Role::Assistant, "Hello, wor"),
            ],
            max_output_tokens: None,
            thinking_budget: None,
            requester: None,
        });
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"text": "Hello, wor"}]},
                {"role": "user", "parts": [{"text": CONTINUE_INSTRUCTION}]},
            ])
        );
        assert!(body.get("generationConfig").is_none());
    }

    #[test]
    fn hostile_usage_counts_saturate() {
        let usage: Usage = UsageMetadata {
            prompt_token_count: u32::MAX,
            cached_content_token_count: u32::MAX,
            candidates_token_count: u32::MAX,
            thoughts_token_count: u32::MAX,
        }
        .into();
        assert_eq!(usage.output_tokens, u32::MAX);
        assert_eq!(usage.reasoning_tokens, u32::MAX);
    }
}
