//! A fake LLM provider for tests and benchmarks, speaking three documented streaming wire formats:
//!
//! - OpenAI chat completions (`POST /v1/chat/completions`): `chat.completion.chunk` SSE events, a
//!   final usage chunk with empty `choices` when `stream_options.include_usage` is set, `[DONE]`;
//! - Anthropic Messages (`POST /v1/messages`): `message_start` … `message_stop`, with `ping`s;
//! - Gemini (`POST /v1beta/models/{model}:streamGenerateContent?alt=sse`).
//!
//! It can inject faults (HTTP errors with retry headers and huge bodies, redirects, a lost
//! connection, an error event, bad JSON, a stall, endless keep-alives, a line that never ends),
//! replay a recorded stream verbatim, and records what it was sent and when a client went away
//! mid-reply.

mod body;
pub mod oidc;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How the fake answers; changeable at run time (`POST /_fake/config`, which takes the whole
/// config: fields left out take their defaults). Each `*_after: Some(K)` fault applies after K
/// tokens (K < `tokens`); when several name the same K, the first listed here wins.
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
    /// Answer chat requests and the model list with this HTTP status and the protocol's error body.
    pub fail_status: Option<u16>,
    /// With `fail_status`: fail only the first N chat requests since this config was set.
    pub fail_times: Option<usize>,
    /// With `fail_status`: pad the error body to this many bytes (the message stays at the front).
    pub error_body_bytes: Option<usize>,
    /// With `fail_status`: the `retry-after` header (429 sends "1" when this is unset).
    pub retry_after: Option<String>,
    /// With `fail_status`: a `retry-after-ms` header.
    pub retry_after_ms: Option<String>,
    /// With `fail_status`: an `x-should-retry` header.
    pub should_retry: Option<bool>,
    /// Answer every chat request with `307 Temporary Redirect` to this `Location`.
    pub redirect_to: Option<String>,
    /// Close the connection after this many tokens, without a finish or `[DONE]`.
    pub break_after: Option<usize>,
    /// Send the protocol's error event after this many tokens (OpenAI: an `error` object;
    /// Anthropic: `event: error` with `overloaded_error`; Gemini: an `error` chunk with 503).
    pub error_after: Option<usize>,
    /// After this many tokens send nothing more, keeping the connection open until the client
    /// goes (at most 10 minutes).
    pub stall_after: Option<usize>,
    /// After this many tokens send an event whose data is not JSON (`data: {not json`), then end
    /// the body.
    pub malformed_after: Option<usize>,
    /// After this many tokens start a `data: ` line and write 64 KiB pieces of it, never a newline,
    /// until the client goes (or 256 MiB were sent; then the body ends).
    pub endless_line_after: Option<usize>,
    /// After this many tokens send only keep-alives (OpenAI, Gemini: `: keep-alive` comments;
    /// Anthropic: `ping` events) every `keepalive_interval_ms`, until the client goes (or
    /// 100,000 were sent).
    pub keepalive_after: Option<usize>,
    pub keepalive_interval_ms: u64,
    pub cached_tokens: u32,
    /// Anthropic only: prompt tokens written to the cache.
    pub cache_write_tokens: u32,
    pub reasoning_tokens: u32,
    /// `GET /v1/models` reports this context window (`max_model_len`, as vLLM does).
    pub context_tokens: Option<u32>,
    /// Answer with this recorded stream verbatim instead (the body of an SSE response).
    pub replay: Option<String>,
    /// Send these tokens, in this order, instead of [`token`]'s words; `tokens` is then their
    /// count. For replies with chosen text (markdown, hostile markup split at awkward places).
    pub script: Option<Vec<String>>,
    /// End every reply as one cut at the request's output cap: finish reason `length`
    /// (Anthropic `max_tokens`, Gemini `MAX_TOKENS`) instead of a natural stop.
    pub hit_token_limit: bool,
    /// Reasoning tokens streamed before the text, in each protocol's own shape: OpenAI-compatible
    /// `reasoning_content` deltas (always, as DeepSeek and vLLM do), Anthropic `thinking` blocks
    /// and Gemini thought parts (only when the request asks for thinking, as the real APIs do).
    pub thinking: Option<Vec<String>>,
    /// A request for a conversation's title (its system text starts with [`TITLE_REQUEST`]) is
    /// answered with this, word by word; by default with the first line of its question (so a
    /// title reads as the first words did). Title requests are kept apart: not in `requests`,
    /// `calls` or `completed`, and no fault above applies to them.
    pub title: Option<String>,
    /// Title requests fail with this status instead.
    pub title_fail_status: Option<u16>,
    /// Milliseconds before a title's first word.
    pub title_delay_ms: u64,
}

/// How Rill's request for a title begins (`server/turns/titles.rs`).
pub const TITLE_REQUEST: &str = "Write a short title";

impl FakeConfig {
    /// How many text tokens a reply has.
    pub fn token_count(&self) -> usize {
        self.script.as_ref().map_or(self.tokens, Vec::len)
    }

    /// The text of token `i`.
    pub fn token_text(&self, i: usize) -> String {
        match &self.script {
            Some(script) => script.get(i).cloned().unwrap_or_default(),
            None => token(i),
        }
    }
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            tokens: 24,
            token_delay_ms: 5,
            first_token_delay_ms: 0,
            split_bytes: None,
            fail_status: None,
            fail_times: None,
            error_body_bytes: None,
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
            redirect_to: None,
            break_after: None,
            error_after: None,
            stall_after: None,
            malformed_after: None,
            endless_line_after: None,
            keepalive_after: None,
            keepalive_interval_ms: 1000,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            context_tokens: None,
            replay: None,
            script: None,
            thinking: None,
            hit_token_limit: false,
            title: None,
            title_fail_status: None,
            title_delay_ms: 0,
        }
    }
}

/// A client that closed the connection before the reply was complete.
#[derive(Clone, Debug, Serialize)]
pub struct Disconnect {
    pub tokens_sent: usize,
    #[serde(skip)]
    pub at: Option<Instant>,
    /// When, in milliseconds since the Unix epoch: what a benchmark in another process compares
    /// with the moment it asked to stop (`scripts/bench.sh`).
    pub at_unix_ms: f64,
}

#[derive(Default, Debug, Serialize)]
pub struct Recorded {
    /// Request bodies, in arrival order.
    pub requests: Vec<Value>,
    /// Each request's path and the headers a provider authenticates with, in the same order.
    pub calls: Vec<Call>,
    pub disconnects: Vec<Disconnect>,
    pub completed: usize,
    /// Title requests' bodies, in arrival order.
    pub title_requests: Vec<Value>,
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
    settings: Arc<Mutex<Settings>>,
    recorded: Arc<Mutex<Recorded>>,
}

#[derive(Default)]
struct Settings {
    config: FakeConfig,
    /// Chat requests since `config` was set (what `fail_times` counts).
    chat_requests: usize,
}

impl Settings {
    fn set(&mut self, config: FakeConfig) {
        self.config = config;
        self.chat_requests = 0;
    }

    /// The configured failure, if it still applies after `served` chat requests.
    fn failure(&self, served: usize) -> Option<u16> {
        let status = self.config.fail_status?;
        self.config
            .fail_times
            .is_none_or(|times| served < times)
            .then_some(status)
    }
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
            settings: Arc::new(Mutex::new(Settings {
                config,
                chat_requests: 0,
            })),
            ..Shared::default()
        };
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(shared.clone());
        // Like the providers' own front ends: each event leaves at once (without this, Nagle and
        // the client's delayed ACK add about 40 ms before the first token).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
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

    /// Replaces the config and restarts the count of chat requests that `fail_times` uses.
    pub fn set_config(&self, config: FakeConfig) {
        lock(&self.shared.settings).set(config);
    }

    /// Forgets every recorded request, call, disconnect and completion.
    pub fn reset_log(&self) {
        *lock(&self.shared.recorded) = Recorded::default();
    }

    pub fn title_requests(&self) -> Vec<Value> {
        lock(&self.shared.recorded).title_requests.clone()
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
        .route("/_fake/reset_log", post(reset_log))
        .with_state(shared)
}

/// The model list; `fail_status` applies here too (while `fail_times` has not run out), like a
/// server that offers no list.
async fn models(State(shared): State<Shared>) -> Response {
    let (config, failure) = {
        let settings = lock(&shared.settings);
        let failure = settings.failure(settings.chat_requests);
        (settings.config.clone(), failure)
    };
    if let Some(status) = failure {
        return error_response(Protocol::OpenAi, status, &config);
    }
    let mut model = json!({"id": "fake-model", "object": "model", "owned_by": "rill-tests"});
    if let Some(context) = config.context_tokens {
        model["max_model_len"] = json!(context);
    }
    Json(json!({"object": "list", "data": [model]})).into_response()
}

async fn log(State(shared): State<Shared>) -> Json<Value> {
    let recorded = lock(&shared.recorded);
    Json(serde_json::to_value(&*recorded).unwrap_or(Value::Null))
}

async fn set_config(State(shared): State<Shared>, Json(config): Json<FakeConfig>) -> StatusCode {
    lock(&shared.settings).set(config);
    StatusCode::NO_CONTENT
}

async fn reset_log(State(shared): State<Shared>) -> StatusCode {
    *lock(&shared.recorded) = Recorded::default();
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
        wire::openai_events(config, &model, prompt, include_usage)
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
        .saturating_add(body["system"].as_str().map_or(0, word_tokens));
    let thinking = body["thinking"]["type"] == "enabled";
    respond(&shared, call, body, move |config| {
        wire::anthropic_events(config, &model, prompt, thinking)
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
                .map(|c| json!({"text": text_of(&c["parts"])}))
                .collect()
        })
        .unwrap_or_default();
    let prompt = prompt_tokens(Some(&texts), "text").saturating_add(
        body["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .map_or(0, word_tokens),
    );
    let thinking = body["generationConfig"]["thinkingConfig"]["includeThoughts"] == true;
    respond(&shared, call, body, move |config| {
        wire::gemini_events(config, &model, prompt, thinking)
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
    u32::try_from(text.split_whitespace().count())
        .unwrap_or(u32::MAX)
        .saturating_add(4)
}

fn prompt_tokens(messages: Option<&Vec<Value>>, field: &str) -> u32 {
    messages.map_or(0, |ms| {
        ms.iter()
            .map(|m| word_tokens(&text_of(&m[field])))
            .fold(0, u32::saturating_add)
    })
}

/// A message's text: a string, or the text parts of a list (images beside text are parts too:
/// OpenAI's `image_url`, Anthropic's `image` blocks, Gemini's `inline_data`).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Records the call, then answers with the configured redirect, failure, replay or `events`.
fn respond(
    shared: &Shared,
    call: Call,
    body: Value,
    events: impl FnOnce(&FakeConfig) -> Vec<body::Event>,
) -> Response {
    if let Some(question) = title_request(&body) {
        return answer_title(shared, call.protocol, body, &question, events);
    }
    let (config, failure) = {
        let mut settings = lock(&shared.settings);
        let failure = settings.failure(settings.chat_requests);
        settings.chat_requests = settings.chat_requests.saturating_add(1);
        (settings.config.clone(), failure)
    };
    let protocol = call.protocol;
    {
        let mut recorded = lock(&shared.recorded);
        recorded.requests.push(body);
        recorded.calls.push(call);
    }
    if let Some(location) = &config.redirect_to {
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        if let Ok(value) = header::HeaderValue::from_str(location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return response;
    }
    if let Some(status) = failure {
        return error_response(protocol, status, &config);
    }
    let events = match &config.replay {
        Some(recording) => vec![body::Event::Other(Bytes::from(recording.clone()))],
        None => events(&config),
    };
    body::stream_response(&shared.recorded, &config, events)
}

/// The first line of the question a title request asks about, if `body` is one.
fn title_request(body: &Value) -> Option<String> {
    let mut texts = Vec::new();
    strings(body, &mut texts);
    if !texts.iter().any(|t| t.starts_with(TITLE_REQUEST)) {
        return None;
    }
    let asked = texts.iter().find_map(|t| t.strip_prefix("Question:\n"))?;
    Some(asked.lines().next().unwrap_or_default().trim().to_owned())
}

fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// A title, word by word, in the request's protocol; or the configured title failure.
fn answer_title(
    shared: &Shared,
    protocol: Protocol,
    body: Value,
    question: &str,
    events: impl FnOnce(&FakeConfig) -> Vec<body::Event>,
) -> Response {
    let config = lock(&shared.settings).config.clone();
    lock(&shared.recorded).title_requests.push(body);
    if let Some(status) = config.title_fail_status {
        return error_response(protocol, status, &config);
    }
    let title = config.title.clone().unwrap_or_else(|| question.to_owned());
    let mut words: Vec<String> = Vec::new();
    for (i, word) in title.split(' ').enumerate() {
        words.push(if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        });
    }
    let answer = FakeConfig {
        tokens: words.len(),
        script: Some(words),
        token_delay_ms: config.token_delay_ms,
        first_token_delay_ms: config.title_delay_ms,
        ..FakeConfig::default()
    };
    // Streamed into a record of its own, so the chat's counts stay the chat's.
    let apart = Arc::new(Mutex::new(Recorded::default()));
    body::stream_response(&apart, &answer, events(&answer))
}

/// Each protocol's documented error body (padded to `error_body_bytes`), with the configured retry
/// headers (`retry-after: 1` on a 429 by default).
fn error_response(protocol: Protocol, status: u16, config: &FakeConfig) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!("fake failure {}", status.as_u16());
    let mut error = match protocol {
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
    if let Some(size) = config.error_body_bytes {
        pad(&mut error, size);
    }
    let mut response = (status, Json(error)).into_response();
    let default_retry_after = (status == StatusCode::TOO_MANY_REQUESTS).then_some("1");
    let headers = [
        (
            "retry-after",
            config.retry_after.as_deref().or(default_retry_after),
        ),
        ("retry-after-ms", config.retry_after_ms.as_deref()),
        (
            "x-should-retry",
            config
                .should_retry
                .map(|b| if b { "true" } else { "false" }),
        ),
    ];
    for (name, value) in headers {
        if let Some(value) = value.and_then(|v| header::HeaderValue::from_str(v).ok()) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Grows `error` to `size` bytes of JSON with a `padding` field, which sorts (and is inserted)
/// after `message`: a reader that stops early still sees the message.
fn pad(error: &mut Value, size: usize) {
    error["error"]["padding"] = json!("");
    let base = error.to_string().len();
    error["error"]["padding"] = json!("x".repeat(size.saturating_sub(base)));
}
