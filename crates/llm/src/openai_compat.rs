//! OpenAI chat completions streaming (`POST {base}/chat/completions`, `stream: true`), which is also
//! what Ollama, llama.cpp server, vLLM, OpenRouter and Groq speak.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::json;

use crate::sse::{body_ended, parse_event, stream_sse, Decoded, SseDecoder};
use crate::{
    ChatRequest, EventStream, FinishReason, LlmError, Provider, ProviderEvent, Role, Usage,
};

pub struct OpenAiCompatible {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
}

impl OpenAiCompatible {
    /// `base_url` is the API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub fn new(http: reqwest::Client, base_url: &str, api_key: Option<String>) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
        }
    }
}

impl OpenAiCompatible {
    /// The models the server offers (`GET {base}/models`), for servers that list them (Ollama,
    /// llama.cpp server, vLLM, OpenRouter). Bounded by `timeout`: start-up must not hang on it.
    pub async fn list_models(&self, timeout: std::time::Duration) -> Result<Vec<String>, LlmError> {
        #[derive(Deserialize)]
        struct List {
            data: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            id: String,
        }
        let mut http = self
            .http
            .get(format!("{}/models", self.base_url))
            .timeout(timeout);
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key);
        }
        let response = http
            .send()
            .await
            .map_err(|e| LlmError::Connect(e.to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| LlmError::StreamBroken(e.to_string()))?;
        if !status.is_success() {
            return Err(LlmError::from_status(status.as_u16(), &body, None));
        }
        let list: List = serde_json::from_str(&body)
            .map_err(|e| LlmError::Malformed(format!("model list: {e}")))?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }
}

impl Provider for OpenAiCompatible {
    fn stream_chat(&self, request: ChatRequest) -> EventStream {
        let mut http = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&request_body(&request));
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key);
        }
        stream_sse(http, ChunkDecoder::default())
    }
}

fn request_body(request: &ChatRequest) -> serde_json::Value {
    let system = request
        .system
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| json!({"role": "system", "content": s}));
    let turns = request.messages.iter().map(|m| {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        json!({"role": role, "content": m.content})
    });
    let mut body = json!({
        "model": request.model,
        "messages": system.chain(turns).collect::<Vec<_>>(),
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(max) = request.max_output_tokens {
        body["max_tokens"] = json!(max);
    }
    body
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u32,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: u32,
}

#[derive(Deserialize)]
struct WireError {
    message: Option<String>,
}

impl From<WireUsage> for Usage {
    // OpenAI's prompt_tokens already include cached tokens and completion_tokens include
    // reasoning tokens: the same shape as `Usage`.
    fn from(u: WireUsage) -> Self {
        Usage {
            input_tokens: u.prompt_tokens,
            cached_input_tokens: u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            cache_write_tokens: 0,
            output_tokens: u.completion_tokens,
            reasoning_tokens: u
                .completion_tokens_details
                .map_or(0, |d| d.reasoning_tokens),
        }
    }
}

#[derive(Default)]
struct ChunkDecoder {
    finished: bool,
    done: bool,
}

impl SseDecoder for ChunkDecoder {
    fn on_event(&mut self, _event: &str, data: &str, out: &mut VecDeque<Decoded>) {
        if data.trim() == "[DONE]" {
            self.done = true;
            return;
        }
        let chunk: Chunk = match parse_event(data) {
            Ok(chunk) => chunk,
            Err(e) => return out.push_back(Err(e)),
        };
        if let Some(error) = chunk.error {
            let message = error.message.unwrap_or_else(|| "unknown error".to_owned());
            return out.push_back(Err(LlmError::Provider(message)));
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                out.push_back(Ok(ProviderEvent::TextDelta(text)));
            }
            if let Some(reason) = choice.finish_reason {
                self.finished = true;
                out.push_back(Ok(ProviderEvent::Finished(match reason.as_str() {
                    "stop" => FinishReason::Stop,
                    "length" => FinishReason::Length,
                    _ => FinishReason::Other(reason),
                })));
            }
        }
        if let Some(usage) = chunk.usage {
            out.push_back(Ok(ProviderEvent::Usage(usage.into())));
        }
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn on_end(&mut self) -> Result<(), LlmError> {
        // Some compatible servers omit `[DONE]`; a finish_reason is an orderly end too.
        body_ended(self.done || self.finished, "the reply was finished")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse;
    use crate::ChatMessage;

    const STREAM: &str = concat!(
        ": keep-alive comment\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Grüße, \"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"世界 🌍\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":31,\"completion_tokens\":12,\"total_tokens\":43,",
        "\"prompt_tokens_details\":{\"cached_tokens\":16},\"completion_tokens_details\":{\"reasoning_tokens\":4}}}\n\n",
        "data: [DONE]\n\n",
    );

    fn expected() -> Vec<Decoded> {
        vec![
            Ok(ProviderEvent::TextDelta("Grüße, ".into())),
            Ok(ProviderEvent::TextDelta("世界 🌍".into())),
            Ok(ProviderEvent::Finished(FinishReason::Stop)),
            Ok(ProviderEvent::Usage(Usage {
                input_tokens: 31,
                cached_input_tokens: 16,
                cache_write_tokens: 0,
                output_tokens: 12,
                reasoning_tokens: 4,
            })),
        ]
    }

    async fn decode_chunked(body: &[u8], chunk: usize) -> Vec<Decoded> {
        sse::decode_chunked(body, chunk, ChunkDecoder::default()).await
    }

    #[tokio::test]
    async fn decodes_whole_stream() {
        assert_eq!(
            decode_chunked(STREAM.as_bytes(), STREAM.len()).await,
            expected()
        );
    }

    #[tokio::test]
    async fn any_chunking_gives_the_same_events() {
        // Sizes 1..=7 split events, `data:` prefixes, line ends and every multi-byte character.
        for size in 1..=7 {
            assert_eq!(
                decode_chunked(STREAM.as_bytes(), size).await,
                expected(),
                "chunk size {size}"
            );
        }
    }

    #[tokio::test]
    async fn a_reasoning_model_reports_cached_and_reasoning_tokens() {
        let body = include_str!("../tests/fixtures/openai_reasoning.sse");
        let events = decode_chunked(body.as_bytes(), 13).await;
        assert_eq!(
            events.last(),
            Some(&Ok(ProviderEvent::Usage(Usage {
                input_tokens: 2_000,
                cached_input_tokens: 1_536,
                cache_write_tokens: 0,
                output_tokens: 900,
                reasoning_tokens: 832,
            })))
        );
        assert_eq!(events[0], Ok(ProviderEvent::TextDelta("Grüße, ".into())));
    }

    #[tokio::test]
    async fn crlf_line_endings_and_multi_line_data() {
        let body = "data: {\"choices\":[{\"delta\":\r\ndata: {\"content\":\"a\"}}]}\r\n\r\ndata: [DONE]\r\n\r\n";
        let events = decode_chunked(body.as_bytes(), 5).await;
        assert_eq!(events, vec![Ok(ProviderEvent::TextDelta("a".into()))]);
    }

    #[tokio::test]
    async fn an_early_end_is_a_lost_connection() {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"half\"}}]}\n\n";
        let events = decode_chunked(body.as_bytes(), 8).await;
        assert_eq!(events[0], Ok(ProviderEvent::TextDelta("half".into())));
        assert!(matches!(events[1], Err(LlmError::StreamBroken(_))));
    }

    #[tokio::test]
    async fn a_mid_stream_error_object_ends_the_stream() {
        let body = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n",
            "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"never\"}}]}\n\n",
        );
        let events = decode_chunked(body.as_bytes(), 64).await;
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[1],
            Err(LlmError::Provider("The server had an error".into()))
        );
    }

    #[tokio::test]
    async fn bad_json_is_malformed() {
        let events = decode_chunked(b"data: {not json\n\n", 64).await;
        assert!(matches!(events.as_slice(), [Err(LlmError::Malformed(_))]));
    }

    #[test]
    fn body_puts_system_first_and_asks_for_usage() {
        let body = request_body(&ChatRequest {
            model: "m".into(),
            system: Some("Be brief.".into()),
            messages: vec![
                ChatMessage {
                    role: Role::User,
                    content: "hi".into(),
                },
                ChatMessage {
                    role: Role::Assistant,
                    content: "hello".into(),
                },
                ChatMessage {
                    role: Role::User,
                    content: "again".into(),
                },
            ],
            max_output_tokens: None,
        });
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            body["messages"][2],
            json!({"role": "assistant", "content": "hello"})
        );
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(4));
        assert_eq!(body["stream_options"]["include_usage"], json!(true));
        assert!(body.get("max_tokens").is_none());
    }
}
