//! A fake OpenAI-compatible chat completions server for tests and benchmarks.
//!
//! It follows the documented streaming wire format (`chat.completion.chunk` SSE events, a final
//! usage chunk with empty `choices` when `stream_options.include_usage` is set, then `[DONE]`),
//! can inject faults, and records what it was sent and when a client went away mid-reply.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
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
    pub cached_tokens: u32,
    pub reasoning_tokens: u32,
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
            cached_tokens: 0,
            reasoning_tokens: 0,
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
    pub disconnects: Vec<Disconnect>,
    pub completed: usize,
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

    /// The OpenAI-style API root to configure a client with.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
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
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/_fake/log", get(log))
        .route("/_fake/config", post(set_config))
        .with_state(shared)
}

async fn models() -> Json<Value> {
    Json(
        json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "rill-tests"}]}),
    )
}

async fn log(State(shared): State<Shared>) -> Json<Value> {
    let recorded = lock(&shared.recorded);
    Json(serde_json::to_value(&*recorded).unwrap_or(Value::Null))
}

async fn set_config(State(shared): State<Shared>, Json(config): Json<FakeConfig>) -> StatusCode {
    *lock(&shared.config) = config;
    StatusCode::NO_CONTENT
}

async fn chat_completions(State(shared): State<Shared>, Json(body): Json<Value>) -> Response {
    let config = lock(&shared.config).clone();
    let prompt_tokens = body["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["content"].as_str())
                .map(|c| c.split_whitespace().count() as u32 + 4)
                .sum()
        })
        .unwrap_or(0);
    let model = body["model"].as_str().unwrap_or("fake-model").to_owned();
    let include_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    lock(&shared.recorded).requests.push(body);

    if let Some(status) = config.fail_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let error = json!({"error": {"message": format!("fake failure {}", status.as_u16()), "type": "fake_error"}});
        let mut response = (status, Json(error)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        return response;
    }

    let events = sse_events(&config, &model, prompt_tokens, include_usage);
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

fn sse_events(
    config: &FakeConfig,
    model: &str,
    prompt_tokens: u32,
    include_usage: bool,
) -> Vec<Event> {
    let chunk = |delta: Value, finish: Value, usage: Option<Value>| {
        let mut c = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = usage.unwrap_or(Value::Null);
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut events = vec![Event::Other(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
        None,
    ))];
    for i in 0..config.tokens {
        if config.break_after == Some(i) {
            events.push(Event::Break);
            return events;
        }
        events.push(Event::Token(chunk(
            json!({"content": token(i)}),
            Value::Null,
            None,
        )));
    }
    events.push(Event::Other(chunk(json!({}), json!("stop"), None)));
    if include_usage {
        let completion = config.tokens as u32 + config.reasoning_tokens;
        let usage = json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens + config.cached_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + config.cached_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": config.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": config.reasoning_tokens, "audio_tokens": 0},
            },
        });
        events.push(Event::Other(Bytes::from(format!("data: {usage}\n\n"))));
    }
    events.push(Event::Other(Bytes::from_static(b"data: [DONE]\n\n")));
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
