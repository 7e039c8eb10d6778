//! A fake LLM provider for tests and benchmarks, speaking three documented streaming wire formats:
//!
//! - OpenAI chat completions (`POST /v1/chat/completions`): `chat.completion.chunk` SSE events, a
//!   final usage chunk with empty `choices` when `stream_options.include_usage` is set, `[DONE]`;
//! - Anthropic Messages (`POST /v1/messages`): `message_start` … `message_stop`, with `ping`s;
//! - Gemini (`POST /v1beta/models/{model}:streamGenerateContent?alt=sse`).
//!
//! It can inject faults (HTTP errors, a lost connection, an error event mid-stream), replay a
//! recorded stream verbatim, and records what it was sent and when a client went away mid-reply.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How the fake answers; changeable at run time (`POST /_fake/config`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct FakeConfig {
    /// Text tokens per reply (see [`token`]).
    pub tokens: usize,
    pub token_delay_ms: u64,
    /// Extra wait before the first token (the time a real model spends on the prompt).
    pub first_token_delay_ms: u64,
    /// Write every event in pieces of at most this many bytes, so clients see events and
    /// multi-byte characters split across reads.
    pub split_bytes: Option<usize>,
    /// Answer every request with this HTTP status and an OpenAI-style error body.
    pub fail_status: Option<u16>,
    /// Close the connection after this many tokens, without a finish or `[DONE]`.
    pub break_after: Option<usize>,
    /// Send the protocol's error event after this many tokens (OpenAI: an `error` object;
    /// Anthropic: `event: error` with `overloaded_error`; Gemini: an `error` chunk with 503).
    pub error_after: Option<usize>,
    pub cached_tokens: u32,
    /// Anthropic only: prompt tokens written to the cache.
    pub cache_write_tokens: u32,
    pub reasoning_tokens: u32,
    /// Answer with this recorded stream verbatim instead (the body of an SSE response).
    pub replay: Option<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            tokens: 24,
            token_delay_ms: 5,
            first_token_delay_ms: 0,
            split_bytes: None,
            fail_status: None,
            break_after: None,
            error_after: None,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            replay: None,
        }
    }
}

/// A client that closed the connection before the reply was complete.
#[derive(Clone, Debug, Serialize)]
pub struct Disconnect {
    pub tokens_sent: usize,
    #[serde(skip)]
    pub at: Option<Instant>,
}

#[derive(Default, Debug, Serialize)]
pub struct Recorded {
    /// Request bodies, in arrival order.
    pub requests: Vec<Value>,
    /// Each request's path and the headers a provider authenticates with, in the same order.
    pub calls: Vec<Call>,
    pub disconnects: Vec<Disconnect>,
    pub completed: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Call {
    pub path: String,
    pub protocol: Protocol,
    /// `Authorization`, `x-api-key` or `x-goog-api-key`, whichever was sent.
    pub key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    OpenAi,
    Anthropic,
    Gemini,
}

#[derive(Clone, Default)]
struct Shared {
    config: Arc<Mutex<FakeConfig>>,
    recorded: Arc<Mutex<Recorded>>,
}

/// A running fake; stops when dropped.
pub struct FakeProvider {
    pub addr: SocketAddr,
    shared: Shared,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

const WORDS: [&str; 12] = [
    "Hello",
    " wörld",
    ",",
    " this",
    " is",
    " a",
    " fäke",
    " 日本語",
    " reply",
    " 🌍",
    " —",
    " ok.",
];

/// Token `i` of every reply. Cycles through words with multi-byte characters.
pub fn token(i: usize) -> String {
    let word = WORDS[i % WORDS.len()];
    if i % WORDS.len() == WORDS.len() - 1 {
        format!("{word}[{i}]")
    } else {
        word.to_owned()
    }
}

/// The full text of a reply of `n` tokens.
pub fn expected_text(n: usize) -> String {
    (0..n).map(token).collect()
}

impl FakeProvider {
    pub async fn start(config: FakeConfig) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    pub async fn start_on(addr: SocketAddr, config: FakeConfig) -> std::io::Result<Self> {
        let shared = Shared {
            config: Arc::new(Mutex::new(config)),
            ..Shared::default()
        };
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async { drop(rx.await) })
                .await;
        });
        Ok(Self {
            addr,
            shared,
            _shutdown: tx,
        })
    }

    /// The OpenAI- and Anthropic-style API root to configure a client with.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Gemini-style API root.
    pub fn gemini_base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.recorded).calls.clone()
    }

    pub fn set_config(&self, config: FakeConfig) {
        *lock(&self.shared.config) = config;
    }

    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared.recorded).requests.clone()
    }

    pub fn disconnects(&self) -> Vec<Disconnect> {
        lock(&self.shared.recorded).disconnects.clone()
    }

    pub fn completed(&self) -> usize {
        lock(&self.shared.recorded).completed
    }

    /// Waits (polling, bounded by `timeout`) until a client has gone away mid-reply.
    pub async fn wait_for_disconnect(&self, timeout: Duration) -> Option<Disconnect> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(d) = self.disconnects().first().cloned() {
                return Some(d);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the log from the others.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/messages", post(anthropic_messages))
        .route("/v1beta/models/{model_and_method}", post(gemini_generate))
        .route("/v1/models", get(models))
        .route("/_fake/log", get(log))
        .route("/_fake/config", post(set_config))
        .with_state(shared)
}

/// The model list; `fail_status` applies here too, like a server that offers no list.
async fn models(State(shared): State<Shared>) -> Response {
    if let Some(status) = lock(&shared.config).fail_status {
        return error_response(Protocol::OpenAi, status);
    }
    Json(json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "rill-tests"}]}))
        .into_response()
}

async fn log(State(shared): State<Shared>) -> Json<Value> {
    let recorded = lock(&shared.recorded);
    Json(serde_json::to_value(&*recorded).unwrap_or(Value::Null))
}

async fn set_config(State(shared): State<Shared>, Json(config): Json<FakeConfig>) -> StatusCode {
    *lock(&shared.config) = config;
    StatusCode::NO_CONTENT
}

async fn openai_chat(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let model = body["model"].as_str().unwrap_or("fake-model").to_owned();
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let prompt = prompt_tokens(body["messages"].as_array(), "content");
    let call = Call {
        path: "/v1/chat/completions".into(),
        protocol: Protocol::OpenAi,
        key: header_value(&headers, "authorization"),
    };
    respond(&shared, call, body, move |config| {
        openai_events(config, &model, prompt, include_usage)
    })
}

async fn anthropic_messages(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let call = Call {
        path: "/v1/messages".into(),
        protocol: Protocol::Anthropic,
        key: header_value(&headers, "x-api-key"),
    };
    // The real API rejects requests without these; so does the fake, to keep the client honest.
    if call.key.is_none()
        || header_value(&headers, "anthropic-version").is_none()
        || body["max_tokens"].as_u64().is_none()
    {
        let error = json!({"type": "error", "error": {"type": "authentication_error", "message": "x-api-key, anthropic-version and max_tokens are required"}});
        return (StatusCode::UNAUTHORIZED, Json(error)).into_response();
    }
    let model = body["model"].as_str().unwrap_or("claude-fake").to_owned();
    let prompt = prompt_tokens(body["messages"].as_array(), "content")
        + body["system"].as_str().map_or(0, word_tokens);
    respond(&shared, call, body, move |config| {
        anthropic_events(config, &model, prompt)
    })
}

async fn gemini_generate(
    State(shared): State<Shared>,
    Path(model_and_method): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let call = Call {
        path: format!("/v1beta/models/{model_and_method}"),
        protocol: Protocol::Gemini,
        key: header_value(&headers, "x-goog-api-key"),
    };
    let Some(model) = model_and_method
        .strip_suffix(":streamGenerateContent")
        .map(str::to_owned)
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": {"code": 404, "message": "unknown method", "status": "NOT_FOUND"}}),
            ),
        )
            .into_response();
    };
    if call.key.is_none() {
        return (StatusCode::FORBIDDEN, Json(json!({"error": {"code": 403, "message": "missing API key", "status": "PERMISSION_DENIED"}}))).into_response();
    }
    let texts: Vec<Value> = body["contents"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| json!({"text": c["parts"][0]["text"].clone()}))
                .collect()
        })
        .unwrap_or_default();
    let prompt = prompt_tokens(Some(&texts), "text")
        + body["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .map_or(0, word_tokens);
    respond(&shared, call, body, move |config| {
        gemini_events(config, &model, prompt)
    })
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A stand-in for a tokenizer: words plus a few tokens of framing per message.
fn word_tokens(text: &str) -> u32 {
    text.split_whitespace().count() as u32 + 4
}

fn prompt_tokens(messages: Option<&Vec<Value>>, field: &str) -> u32 {
    messages.map_or(0, |ms| {
        ms.iter()
            .filter_map(|m| m[field].as_str())
            .map(word_tokens)
            .sum()
    })
}

/// Records the call, then answers with the configured fault, a replay, or `events`.
fn respond(
    shared: &Shared,
    call: Call,
    body: Value,
    events: impl FnOnce(&FakeConfig) -> Vec<Event>,
) -> Response {
    let config = lock(&shared.config).clone();
    let protocol = call.protocol;
    {
        let mut recorded = lock(&shared.recorded);
        recorded.requests.push(body);
        recorded.calls.push(call);
    }
    if let Some(status) = config.fail_status {
        return error_response(protocol, status);
    }
    let events = match &config.replay {
        Some(recording) => vec![Event::Other(Bytes::from(recording.clone()))],
        None => events(&config),
    };
    stream_response(shared, &config, events)
}

/// Each protocol's documented error body, with `retry-after` on 429.
fn error_response(protocol: Protocol, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!("fake failure {}", status.as_u16());
    let error = match protocol {
        Protocol::OpenAi => json!({"error": {"message": message, "type": "fake_error"}}),
        Protocol::Anthropic => {
            let kind = match status.as_u16() {
                401 => "authentication_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        Protocol::Gemini => {
            json!({"error": {"code": status.as_u16(), "message": message, "status": "FAKE"}})
        }
    };
    let mut response = (status, Json(error)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

fn stream_response(shared: &Shared, config: &FakeConfig, events: Vec<Event>) -> Response {
    let guard = DisconnectGuard {
        recorded: shared.recorded.clone(),
        tokens_sent: 0,
        finished: false,
    };
    let delay = Duration::from_millis(config.token_delay_ms);
    let first_delay = Duration::from_millis(config.first_token_delay_ms);
    let split = config.split_bytes;
    let stream = futures::stream::unfold(
        (events.into_iter(), guard),
        move |(mut events, mut guard)| async move {
            let Some(event) = events.next() else {
                guard.complete();
                return None;
            };
            if let Event::Token(_) = event {
                let wait = if guard.tokens_sent == 0 {
                    first_delay + delay
                } else {
                    delay
                };
                tokio::time::sleep(wait).await;
                guard.tokens_sent += 1;
            }
            let bytes = match event {
                Event::Token(b) | Event::Other(b) => b,
                // Ending the body early is how the fake "loses" the connection; not a client disconnect.
                Event::Break => {
                    guard.complete();
                    return None;
                }
            };
            let pieces = match split {
                Some(n) => split_pieces(&bytes, n.max(1)).await,
                None => vec![bytes],
            };
            Some((
                futures::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>)),
                (events, guard),
            ))
        },
    )
    .flatten();
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

enum Event {
    Token(Bytes),
    Other(Bytes),
    Break,
}

fn data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// The token events of a reply, cut short by `break_after` or `error_after`. Returns the events
/// and whether the reply reached its natural end.
fn token_events(
    config: &FakeConfig,
    mut event: impl FnMut(usize) -> Bytes,
    error: Bytes,
) -> (Vec<Event>, bool) {
    let mut events = Vec::new();
    for i in 0..config.tokens {
        if config.break_after == Some(i) {
            events.push(Event::Break);
            return (events, false);
        }
        if config.error_after == Some(i) {
            events.push(Event::Other(error));
            return (events, false);
        }
        events.push(Event::Token(event(i)));
    }
    (events, true)
}

fn openai_events(
    config: &FakeConfig,
    model: &str,
    prompt_tokens: u32,
    include_usage: bool,
) -> Vec<Event> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        data(&c)
    };
    let mut events = vec![Event::Other(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    ))];
    let error = data(
        &json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}),
    );
    let (tokens, whole) = token_events(
        config,
        |i| chunk(json!({"content": token(i)}), Value::Null),
        error,
    );
    events.extend(tokens);
    if !whole {
        return events;
    }
    events.push(Event::Other(chunk(json!({}), json!("stop"))));
    if include_usage {
        let input = prompt_tokens + config.cached_tokens;
        let completion = config.tokens as u32 + config.reasoning_tokens;
        events.push(Event::Other(data(&json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": input,
                "completion_tokens": completion,
                "total_tokens": input + completion,
                "prompt_tokens_details": {"cached_tokens": config.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": config.reasoning_tokens, "audio_tokens": 0},
            },
        }))));
    }
    events.push(Event::Other(Bytes::from_static(b"data: [DONE]\n\n")));
    events
}

fn anthropic_event(value: &Value) -> Bytes {
    let name = value["type"].as_str().unwrap_or("unknown");
    Bytes::from(format!("event: {name}\ndata: {value}\n\n"))
}

fn anthropic_events(config: &FakeConfig, model: &str, prompt_tokens: u32) -> Vec<Event> {
    let start = json!({"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": null, "stop_sequence": null,
        "usage": {
            "input_tokens": prompt_tokens,
            "cache_creation_input_tokens": config.cache_write_tokens,
            "cache_read_input_tokens": config.cached_tokens,
            "output_tokens": 1,
        },
    }});
    let mut events = vec![
        Event::Other(anthropic_event(&start)),
        Event::Other(anthropic_event(
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        )),
        Event::Other(anthropic_event(&json!({"type": "ping"}))),
    ];
    let error = anthropic_event(
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    let (tokens, whole) = token_events(
        config,
        |i| {
            anthropic_event(
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token(i)}}),
            )
        },
        error,
    );
    events.extend(tokens);
    if !whole {
        return events;
    }
    let output = config.tokens as u32 + config.reasoning_tokens;
    for end in [
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": output}}),
        json!({"type": "message_stop"}),
    ] {
        events.push(Event::Other(anthropic_event(&end)));
    }
    events
}

fn gemini_events(config: &FakeConfig, model: &str, prompt_tokens: u32) -> Vec<Event> {
    let prompt = prompt_tokens + config.cached_tokens;
    let chunk = |text: String, finish: Option<&str>, sent: usize| {
        let mut candidate =
            json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        let candidates = sent as u32;
        data(&json!({
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": prompt,
                "cachedContentTokenCount": config.cached_tokens,
                "candidatesTokenCount": candidates,
                "thoughtsTokenCount": config.reasoning_tokens,
                "totalTokenCount": prompt + candidates + config.reasoning_tokens,
            },
            "modelVersion": model,
            "responseId": "fake",
        }))
    };
    let error = data(
        &json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}),
    );
    let (mut events, whole) = token_events(config, |i| chunk(token(i), None, i + 1), error);
    if whole {
        events.push(Event::Other(chunk(
            String::new(),
            Some("STOP"),
            config.tokens,
        )));
    }
    events
}

/// Pieces are written with a pause between them so they reach the client as separate reads.
async fn split_pieces(bytes: &Bytes, n: usize) -> Vec<Bytes> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    (0..bytes.len())
        .step_by(n)
        .map(|start| bytes.slice(start..(start + n).min(bytes.len())))
        .collect()
}

/// Owned by the response body: hyper drops the body when the client goes away.
struct DisconnectGuard {
    recorded: Arc<Mutex<Recorded>>,
    tokens_sent: usize,
    finished: bool,
}

impl DisconnectGuard {
    /// The reply ended as the fake intended; dropping now records no disconnect.
    fn complete(mut self) {
        self.finished = true;
    }
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        let mut recorded = lock(&self.recorded);
        if self.finished {
            recorded.completed += 1;
        } else {
            recorded.disconnects.push(Disconnect {
                tokens_sent: self.tokens_sent,
                at: Some(Instant::now()),
            });
        }
    }
}
