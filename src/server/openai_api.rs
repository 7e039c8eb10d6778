//! Rill as an OpenAI-compatible API: `GET /v1/models` and `POST /v1/chat/completions` (streamed
//! as server-sent events or answered whole, `stream_options.include_usage`), in OpenAI's request,
//! response and error shapes, so OpenAI's SDKs and tools that take a base URL work unchanged.
//!
//! Only a bearer API key (`api_keys`) says who asks: this router sits outside the session,
//! identity and write-limit layers, so no cookie is read here and a browser's session cannot
//! reach it. Unless the operator names origins for CORS (`RILL_API_CORS_ORIGINS`), no CORS
//! header is sent, so another site's page cannot read an answer either, and the guard refuses
//! its cross-site writes. Each completion is a run of the turn engine
//! (`turns::completion`): the person's limits, the budgets and the ledger are the same ones.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use llm::{ChatMessage, FinishReason, Role, Usage};
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use uuid::Uuid;

use super::api_keys::{self, KeyRefusal};
use super::config::ApiCors;
use super::limits::LimitError;
use super::turns::{Caller, CompletionError, CompletionEvent, CompletionRequest, RunError};
use super::AppState;

/// What a browser needs to call `/v1` from the configured origins' pages (`None`: no CORS
/// headers at all). Never credentials: the key travels in `Authorization`, which a preflight
/// must name, so requested headers are granted as asked.
pub fn cors(allowed: &ApiCors) -> Option<CorsLayer> {
    let origins = match allowed {
        ApiCors::Off => return None,
        ApiCors::AnyOrigin => AllowOrigin::any(),
        ApiCors::Origins(origins) => {
            AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(3600)),
    )
}

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/v1/chat/completions", post(chat_completions))
        .with_state(state)
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
struct ApiFailure {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<&'static str>,
    retry_after: Option<Duration>,
}

impl ApiFailure {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: String,
    ) -> Self {
        Self {
            status,
            message,
            kind,
            param: None,
            code,
            retry_after: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            message.into(),
        )
    }

    fn param(self, param: &'static str) -> Self {
        Self {
            param: Some(param),
            ..self
        }
    }

    fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(wait) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<KeyRefusal> for ApiFailure {
    fn from(refusal: KeyRefusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            KeyRefusal::Missing => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                message,
            ),
            KeyRefusal::Unknown | KeyRefusal::Revoked | KeyRefusal::Expired => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
                message,
            ),
            KeyRefusal::OwnerDisabled => Self::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                Some("account_disabled"),
                message,
            ),
            KeyRefusal::Unchecked => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                message,
            ),
        }
    }
}

impl From<CompletionError> for ApiFailure {
    fn from(error: CompletionError) -> Self {
        let message = error.to_string();
        match error {
            CompletionError::Draining => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("server_shutting_down"),
                message,
            ),
            CompletionError::NoSuchModel(_) => Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model_not_found"),
                message,
            )
            .param("model"),
            CompletionError::Limited(limit) => {
                let wait = match limit {
                    LimitError::TooFast(wait) | LimitError::TooManyChanges(wait) => wait,
                    LimitError::TooManyRunning(_) | LimitError::TooManyStreams(_) => {
                        Duration::from_secs(1)
                    }
                };
                Self {
                    retry_after: Some(wait),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "requests",
                        Some("rate_limit_exceeded"),
                        message,
                    )
                }
            }
            CompletionError::Refused(refused) => match refused {
                RunError::OverBudget { .. }
                | RunError::OverSiteCap { .. }
                | RunError::OverKeyBudget { .. }
                | RunError::OverGroupBudget { .. } => Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "insufficient_quota",
                    Some("insufficient_quota"),
                    message,
                ),
                RunError::TooLong { .. } => Self::invalid(message)
                    .param("messages")
                    .code("context_length_exceeded"),
                RunError::Unpriced { .. } | RunError::ModelGone(_) => Self::invalid(message)
                    .param("model")
                    .code("model_not_priced"),
                RunError::CannotSee { .. } => Self::invalid(message).param("messages"),
                RunError::ModelNotAllowed { .. } => Self::new(
                    StatusCode::FORBIDDEN,
                    "invalid_request_error",
                    Some("model_not_allowed"),
                    message,
                )
                .param("model"),
                RunError::BudgetUnchecked | RunError::HistoryUnreadable => Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    None,
                    message,
                ),
            },
        }
    }
}

impl ApiFailure {
    fn code(self, code: &'static str) -> Self {
        Self {
            code: Some(code),
            ..self
        }
    }
}

/// `GET /v1/models`: the models of the catalog (the built-in ones included) the key's owner may
/// use (their groups may limit them).
async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let holder = match api_keys::authenticate(&state, &headers).await {
        Ok(holder) => holder,
        Err(refusal) => return ApiFailure::from(refusal).into_response(),
    };
    let allowed = match crate::server::groups::allowed_models(&state.db, &holder.owner).await {
        Ok(allowed) => allowed,
        Err(e) => {
            tracing::error!("could not read a key's models: {e}");
            return ApiFailure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                "the server could not list the models; try again".into(),
            )
            .into_response();
        }
    };
    let data: Vec<Value> = state
        .catalog
        .ids()
        .filter(|id| {
            allowed
                .as_ref()
                .is_none_or(|models| models.iter().any(|m| m == id))
        })
        .map(model_object)
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{id}` (an id holds a `/`).
async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let holder = match api_keys::authenticate(&state, &headers).await {
        Ok(holder) => holder,
        Err(refusal) => return ApiFailure::from(refusal).into_response(),
    };
    // A model the owner's groups do not allow is not listed, so not found either.
    let allowed = match crate::server::groups::allowed_models(&state.db, &holder.owner).await {
        Ok(allowed) => allowed.is_none_or(|models| models.contains(&id)),
        Err(e) => {
            tracing::error!("could not read a key's models: {e}");
            false
        }
    };
    if state.catalog.contains(&id) && allowed {
        axum::Json(model_object(&id)).into_response()
    } else {
        ApiFailure::from(CompletionError::NoSuchModel(id)).into_response()
    }
}

fn model_object(id: &str) -> Value {
    let owned_by = id.split_once('/').map_or("rill", |(provider, _)| provider);
    json!({"id": id, "object": "model", "created": 0, "owned_by": owned_by})
}

/// The request body; fields Rill does not use (temperature, top_p, user, …) are accepted and
/// ignored, as OpenAI-compatible servers do.
#[derive(Debug, Deserialize)]
struct ChatBody {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    tools: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

impl Content {
    fn text(self) -> Result<String, ApiFailure> {
        match self {
            Content::Text(text) => Ok(text),
            Content::Parts(parts) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        _ => {
                            return Err(ApiFailure::invalid(format!(
                                "message parts of type `{}` are not supported here; send text",
                                part.kind
                            ))
                            .param("messages"))
                        }
                    }
                }
                Ok(text)
            }
        }
    }
}

impl ChatBody {
    /// The request as the engine takes it: system and developer messages joined as the system
    /// prompt, the rest in order (neighbours of one role joined, as some providers require).
    fn into_request(self) -> Result<(CompletionRequest, bool, bool), ApiFailure> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiFailure::invalid("only n = 1 is supported").param("n"));
        }
        if self.tools.as_ref().is_some_and(|t| !t.is_null()) {
            return Err(
                ApiFailure::invalid("tools are not supported by this server").param("tools"),
            );
        }
        let mut system: Vec<String> = Vec::new();
        let mut messages: Vec<ChatMessage> = Vec::new();
        for message in self.messages {
            let text = message
                .content
                .map(Content::text)
                .transpose()?
                .unwrap_or_default();
            let role = match message.role.as_str() {
                "system" | "developer" => {
                    system.push(text);
                    continue;
                }
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(ApiFailure::invalid(format!(
                        "messages of role `{other}` are not supported here"
                    ))
                    .param("messages"))
                }
            };
            match messages.last_mut() {
                Some(last) if last.role == role => {
                    last.content.push_str("\n\n");
                    last.content.push_str(&text);
                }
                _ => messages.push(ChatMessage::text(role, text)),
            }
        }
        if !messages.iter().any(|m| m.role == Role::User) {
            return Err(
                ApiFailure::invalid("messages must hold at least one user message")
                    .param("messages"),
            );
        }
        let stream = self.stream.unwrap_or(false);
        let include_usage = self
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let request = CompletionRequest {
            model: self.model,
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
        };
        Ok((request, stream, include_usage))
    }
}

/// `POST /v1/chat/completions`.
async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match complete(&state, &headers, body).await {
        Ok(response) => response,
        Err(failure) => failure.into_response(),
    }
}

async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiFailure> {
    // The key first: a request without one costs no more than reading its headers.
    let holder = api_keys::authenticate(state, headers).await?;
    let bytes = read_body(state, body).await?;
    let body: ChatBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiFailure::invalid(format!(
            "the request body is not a chat completion request: {e}"
        ))
    })?;
    let (request, stream, include_usage) = body.into_request()?;
    let model = request.model.clone();
    let caller = Caller {
        owner: holder.owner,
        key: holder.key,
    };
    let events = state.turns.complete(caller, request).await?;
    let id = format!("chatcmpl-{}", Uuid::new_v4().simple());
    let created = state.clock.now_ms() / 1000;
    if stream {
        Ok(streamed(
            events,
            Chunks {
                id,
                created,
                model,
                include_usage,
            },
        ))
    } else {
        whole(events, &id, created, &model).await
    }
}

/// The body, within the request size limit and the body timeout.
async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiFailure> {
    let limit = state.config.limits.max_request_bytes;
    let timeout = state.config.connections.body_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiFailure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            None,
            format!("the request is larger than this server's limit of {limit} bytes"),
        )),
        Err(_) => Err(ApiFailure::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            None,
            "the request's body did not arrive in time".into(),
        )),
    }
}

fn finish_reason(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::Other(other) if other == "content_filter" => "content_filter",
        FinishReason::Stop | FinishReason::Other(_) => "stop",
    }
}

fn usage_object(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens.saturating_add(usage.output_tokens),
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    })
}

/// The whole reply in one `chat.completion` object, once it has ended.
async fn whole(
    mut events: tokio::sync::mpsc::Receiver<CompletionEvent>,
    id: &str,
    created: i64,
    model: &str,
) -> Result<Response, ApiFailure> {
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            CompletionEvent::Text(delta) => text.push_str(&delta),
            CompletionEvent::Failed(error) => return Err(upstream_failure(error)),
            CompletionEvent::Finished { reason, usage } => {
                let body = json!({
                    "id": id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": null,
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": null},
                        "logprobs": null,
                        "finish_reason": finish_reason(&reason),
                    }],
                    "usage": usage_object(&usage),
                });
                return Ok(axum::Json(body).into_response());
            }
        }
    }
    Err(upstream_failure("the reply ended without finishing".into()))
}

fn upstream_failure(message: String) -> ApiFailure {
    ApiFailure::new(
        StatusCode::BAD_GATEWAY,
        "server_error",
        Some("upstream_error"),
        message,
    )
}

/// What every chunk of one streamed reply shares.
struct Chunks {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
}

impl Chunks {
    /// A `chat.completion.chunk` of `choices` (with `usage: null` when usage was asked for,
    /// as OpenAI sends it on every chunk but the last).
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": choices,
        });
        if self.include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        sse_event(&chunk)
    }

    fn delta(&self, delta: Value, finish: Option<&str>) -> Bytes {
        self.chunk(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
            None,
        )
    }
}

fn sse_event(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The reply as server-sent events: the role, each piece of text, the finish reason, the usage
/// (if asked), `[DONE]`. A failure after the first byte is an `error` event, and no `[DONE]`.
/// Dropping the body (the client went away) drops the receiver, which ends the run.
fn streamed(events: tokio::sync::mpsc::Receiver<CompletionEvent>, chunks: Chunks) -> Response {
    let first = chunks.delta(json!({"role": "assistant", "content": ""}), None);
    let received = futures::stream::unfold(events, |mut events| async move {
        events.recv().await.map(|event| (event, events))
    });
    let rest = received.flat_map(move |event| {
        let out: Vec<Bytes> = match event {
            CompletionEvent::Text(text) => vec![chunks.delta(json!({"content": text}), None)],
            CompletionEvent::Finished { reason, usage } => {
                let mut out = vec![chunks.delta(json!({}), Some(finish_reason(&reason)))];
                if chunks.include_usage {
                    out.push(chunks.chunk(json!([]), Some(usage_object(&usage))));
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                out
            }
            CompletionEvent::Failed(error) => vec![sse_event(&upstream_failure(error).body())],
        };
        futures::stream::iter(out)
    });
    let body = futures::stream::once(async move { first })
        .chain(rest)
        .map(Ok::<_, Infallible>);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(body))
        .unwrap_or_default()
}
