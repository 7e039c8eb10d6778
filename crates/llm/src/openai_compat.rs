//! OpenAI chat completions streaming (`POST {base}/chat/completions`, `stream: true`), which is also
//! what Ollama, llama.cpp server, vLLM, OpenRouter and Groq speak.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{excerpt, shown_message, Oversized, StreamFault};
use crate::http::{read_bounded, send, BodyEnd};
use crate::sse::{body_ended, parse_event, stream_sse, Decoded, SseDecoder};
use crate::{
    ChatMessage, ChatRequest, EventStream, FinishReason, LlmError, Provider, ProviderEvent, Role,
    StreamLimits, Usage, CONTINUE_INSTRUCTION,
};

/// The largest model list read (OpenRouter's, with descriptions, is several hundred KiB).
const MAX_MODEL_LIST_BYTES: usize = 8 * 1024 * 1024;

pub struct OpenAiCompatible {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    limits: StreamLimits,
    max_tokens_field: MaxTokensField,
}

/// Where the reply length limit goes in the request body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_tokens`: what Ollama, llama.cpp server, vLLM and most compatible servers read.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: OpenAI's own API (its reasoning models reject `max_tokens`).
    MaxCompletionTokens,
}

/// One entry of a server's model list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    /// The context window, where the server reports it.
    pub context_tokens: Option<u32>,
}

impl OpenAiCompatible {
    /// `base_url` is the API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub fn new(http: reqwest::Client, base_url: &str, api_key: Option<String>) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            limits: StreamLimits::default(),
            max_tokens_field: MaxTokensField::default(),
        }
    }

    pub fn with_limits(mut self, limits: StreamLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn with_max_tokens_field(mut self, field: MaxTokensField) -> Self {
        self.max_tokens_field = field;
        self
    }

    /// The models the server offers (`GET {base}/models`), for servers that list them (Ollama,
    /// llama.cpp server, vLLM, OpenRouter), with their context windows where reported. Bounded by
    /// `timeout` (start-up must not hang on it) and by the body's size.
    pub async fn list_models(&self, timeout: Duration) -> Result<Vec<ListedModel>, LlmError> {
        let mut http = self
            .http
            .get(format!("{}/models", self.base_url))
            .timeout(timeout);
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key);
        }
        let limits = StreamLimits {
            idle: timeout,
            ..self.limits.clone()
        };
        let answer = send(http, &limits).await?;
        let body = read_bounded(answer.response, MAX_MODEL_LIST_BYTES, timeout).await;
        match body.end {
            BodyEnd::Complete => parse_model_list(&body.bytes),
            BodyEnd::TooLarge => Err(LlmError::TooLarge {
                what: Oversized::ModelList,
                limit: MAX_MODEL_LIST_BYTES,
                detail: answer.target,
            }),
            BodyEnd::Idle(after) => Err(LlmError::Idle { after }),
            BodyEnd::Broken(detail) => Err(LlmError::StreamBroken {
                detail: format!("{}: {detail}", answer.target),
            }),
        }
    }
}

/// Reads `{"data": [{"id": ...}, ...]}`; entries without an id are skipped, so one odd entry
/// does not hide the others.
fn parse_model_list(body: &[u8]) -> Result<Vec<ListedModel>, LlmError> {
    let malformed = |why: String| LlmError::Malformed {
        detail: format!("model list: {why}; body: {}", excerpt(body)),
    };
    let list: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let entries = list
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `data` array".into()))?;
    Ok(entries
        .iter()
        .filter_map(|entry| {
            Some(ListedModel {
                id: entry.get("id")?.as_str()?.to_owned(),
                context_tokens: context_tokens(entry),
            })
        })
        .collect())
}

/// The context window as each server family reports it: vLLM `max_model_len`, OpenRouter and
/// Together `context_length`, Groq `context_window`, llama.cpp server `meta.n_ctx` (the window it
/// runs with, when given) or `meta.n_ctx_train`.
fn context_tokens(entry: &Value) -> Option<u32> {
    [
        "/max_model_len",
        "/context_length",
        "/context_window",
        "/meta/n_ctx",
        "/meta/n_ctx_train",
    ]
    .iter()
    .filter_map(|pointer| entry.pointer(pointer)?.as_u64())
    .find(|&n| n > 0)
    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

impl Provider for OpenAiCompatible {
    fn stream_chat(&self, request: ChatRequest) -> EventStream {
        let mut http = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&request_body(&request, self.max_tokens_field));
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key);
        }
        stream_sse(http, self.limits.clone(), ChunkDecoder::default())
    }
}

/// A message's content: its text, or with images, parts (the text, then each image as a data
/// URL).
fn content(message: &ChatMessage) -> Value {
    if message.images.is_empty() {
        return json!(message.content);
    }
    let mut parts = vec![json!({"type": "text", "text": message.content})];
    parts.extend(message.images.iter().map(|image| {
        let url = format!("data:{};base64,{}", image.mime, image.base64);
        json!({"type": "image_url", "image_url": {"url": url}})
    }));
    Value::Array(parts)
}

fn request_body(request: &ChatRequest, max_tokens_field: MaxTokensField) -> Value {
    let role = |role: Role| match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let mut messages: Vec<Value> = request
        .system
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| json!({"role": "system", "content": s}))
        .collect();
    let (history, partial) = request.split_partial();
    messages.extend(
        history
            .iter()
            .map(|m| json!({"role": role(m.role), "content": content(m)})),
    );
    // No portable prefill: show the partial reply and ask for the rest.
    if let Some(partial) = partial {
        messages.push(json!({"role": "assistant", "content": partial}));
        messages.push(json!({"role": "user", "content": CONTINUE_INSTRUCTION}));
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(max) = request.max_output_tokens {
        let field = match max_tokens_field {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        };
        body[field] = json!(max);
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
    /// Reasoning as DeepSeek, vLLM and llama.cpp's server stream it.
    reasoning_content: Option<String>,
    /// The same as OpenRouter and Ollama name it.
    reasoning: Option<String>,
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
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<Value>,
}

impl WireError {
    /// A server fault or rate limit mid-stream is the same fault as a 5xx or 429 before it (and
    /// as transient); anything else is the provider's own error.
    fn into_llm_error(self, data: &str) -> LlmError {
        let message = self.message.as_deref().and_then(shown_message);
        let code = self.code.as_ref().and_then(Value::as_str);
        let fault = match (self.kind.as_deref(), code) {
            (Some("server_error" | "overloaded_error"), _) => StreamFault::Overloaded,
            (Some("rate_limit_error" | "rate_limit_exceeded"), _)
            | (_, Some("rate_limit_exceeded")) => StreamFault::RateLimited,
            _ => StreamFault::Other,
        };
        LlmError::mid_stream(fault, None, message, data)
    }
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
            return out.push_back(Err(error.into_llm_error(data)));
        }
        for choice in chunk.choices {
            let delta = choice.delta;
            let thinking = delta.reasoning_content.or(delta.reasoning);
            if let Some(text) = thinking.filter(|t| !t.is_empty()) {
                out.push_back(Ok(ProviderEvent::ThinkingDelta(text)));
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
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
    async fn reasoning_content_and_reasoning_are_thinking() {
        // DeepSeek, vLLM and llama.cpp send `reasoning_content` with a null `content`; OpenRouter
        // and Ollama name it `reasoning`.
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"Weigh \"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"reasoning_content\":\"größer\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\" then\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Yes.\",\"reasoning_content\":null},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        for size in [1, 3, body.len()] {
            assert_eq!(
                decode_chunked(body.as_bytes(), size).await,
                vec![
                    Ok(ProviderEvent::ThinkingDelta("Weigh ".into())),
                    Ok(ProviderEvent::ThinkingDelta("größer".into())),
                    Ok(ProviderEvent::ThinkingDelta(" then".into())),
                    Ok(ProviderEvent::TextDelta("Yes.".into())),
                    Ok(ProviderEvent::Finished(FinishReason::Stop)),
                ],
                "chunk size {size}"
            );
        }
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
        assert!(matches!(events[1], Err(LlmError::StreamBroken { .. })));
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
        let Err(error) = &events[1] else {
            panic!("expected an error, got {events:?}");
        };
        assert!(matches!(error, LlmError::Unavailable { status: None, .. }));
        assert_eq!(
            error.to_string(),
            "the provider is overloaded or failing: The server had an error"
        );
    }

    #[tokio::test]
    async fn other_mid_stream_errors_are_the_providers_own() {
        let body = "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\n";
        let events = decode_chunked(body.as_bytes(), 7).await;
        assert!(matches!(&events[..], [Err(LlmError::RateLimited { .. })]));
        let body = "data: {\"error\":{\"message\":\"Invalid prompt\",\"type\":\"invalid_request_error\"}}\n\n";
        let events = decode_chunked(body.as_bytes(), 7).await;
        let [Err(error)] = &events[..] else {
            panic!("expected one error, got {events:?}");
        };
        assert_eq!(
            error.to_string(),
            "the provider reported an error: Invalid prompt"
        );
    }

    #[tokio::test]
    async fn bad_json_is_malformed() {
        let events = decode_chunked(b"data: {not json\n\n", 64).await;
        assert!(matches!(
            events.as_slice(),
            [Err(LlmError::Malformed { .. })]
        ));
    }

    fn user(text: &str) -> ChatMessage {
        ChatMessage::text(Role::User, text)
    }

    fn assistant(text: &str) -> ChatMessage {
        ChatMessage::text(Role::Assistant, text)
    }

    fn chat(messages: Vec<ChatMessage>, max_output_tokens: Option<u32>) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            system: Some("Be brief.".into()),
            messages,
            max_output_tokens,
            thinking_budget: None,
            requester: None,
        }
    }

    #[test]
    fn body_puts_system_first_and_asks_for_usage() {
        let request = chat(vec![user("hi"), assistant("hello"), user("again")], None);
        let body = request_body(&request, MaxTokensField::MaxTokens);
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
        assert!(body.get("max_completion_tokens").is_none());
    }

    #[test]
    fn the_token_cap_goes_in_the_configured_field() {
        let request = chat(vec![user("hi")], Some(256));
        let body = request_body(&request, MaxTokensField::MaxTokens);
        assert_eq!(body["max_tokens"], json!(256));
        assert!(body.get("max_completion_tokens").is_none());
        let body = request_body(&request, MaxTokensField::MaxCompletionTokens);
        assert_eq!(body["max_completion_tokens"], json!(256));
        assert!(body.get("max_tokens").is_none());
    }

    #[test]
    fn a_partial_reply_is_sent_back_with_an_instruction_to_continue() {
        let request = chat(vec![user("hi"), assistant("Hello, wor")], None);
        let body = request_body(&request, MaxTokensField::MaxTokens);
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello, wor"},
                {"role": "user", "content": CONTINUE_INSTRUCTION},
            ])
        );
        // A blank partial is no partial.
        let request = chat(vec![user("hi"), assistant("  ")], None);
        let body = request_body(&request, MaxTokensField::MaxTokens);
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn model_lists_report_context_windows_where_servers_do() {
        let vllm = br#"{"object":"list","data":[{"id":"Qwen/Qwen2.5-7B","object":"model","owned_by":"vllm","max_model_len":32768}]}"#;
        let openrouter = br#"{"data":[{"id":"openai/gpt-4o","name":"GPT-4o","context_length":128000,"top_provider":{"context_length":128000}}]}"#;
        let groq = br#"{"object":"list","data":[{"id":"llama-3.1-8b-instant","object":"model","context_window":131072}]}"#;
        let llama_cpp = br#"{"object":"list","data":[{"id":"smollm2.gguf","object":"model","owned_by":"llamacpp","meta":{"vocab_type":2,"n_vocab":49152,"n_ctx_train":8192,"n_embd":576}}]}"#;
        let ollama = br#"{"object":"list","data":[{"id":"llama3.2:latest","object":"model","created":1,"owned_by":"library"}]}"#;
        let cases: [(&[u8], Option<u32>); 5] = [
            (vllm, Some(32_768)),
            (openrouter, Some(128_000)),
            (groq, Some(131_072)),
            (llama_cpp, Some(8_192)),
            (ollama, None),
        ];
        for (body, expected) in cases {
            let models = parse_model_list(body).expect("parses");
            assert_eq!(models.len(), 1);
            assert_eq!(models[0].context_tokens, expected, "{models:?}");
        }
        let running = br#"{"data":[{"id":"m","meta":{"n_ctx":4096,"n_ctx_train":8192}}]}"#;
        assert_eq!(
            parse_model_list(running).expect("parses")[0].context_tokens,
            Some(4096)
        );
    }

    #[test]
    fn odd_model_list_entries_are_skipped_or_saturated() {
        let body = br#"{"data":[{"object":"model"},{"id":"a","max_model_len":-5},{"id":"b","context_length":"8192"},{"id":"c","max_model_len":99999999999999},{"id":"d","max_model_len":0}]}"#;
        let models = parse_model_list(body).expect("parses");
        let summary: Vec<_> = models
            .iter()
            .map(|m| (m.id.as_str(), m.context_tokens))
            .collect();
        assert_eq!(
            summary,
            vec![("a", None), ("b", None), ("c", Some(u32::MAX)), ("d", None)]
        );
        assert!(matches!(
            parse_model_list(b"<html>"),
            Err(LlmError::Malformed { .. })
        ));
        assert!(matches!(
            parse_model_list(br#"{"models":[]}"#),
            Err(LlmError::Malformed { .. })
        ));
    }
}
