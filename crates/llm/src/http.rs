//! Sending a provider request: the wait for headers bounded by the idle limit, redirects refused,
//! and non-success answers turned into errors after reading a bounded part of their body.

use std::time::{Duration, SystemTime};

use futures::StreamExt;

use crate::error::error_chain;
use crate::limits::{Chunks, IdleBound, StreamLimits};
use crate::retry::RetryAdvice;
use crate::LlmError;

/// A success response and where it came from (for log details).
pub(crate) struct Answer {
    pub response: reqwest::Response,
    pub target: String,
}

/// Sends `request`; `Ok` only for a 2xx answer.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    limits: &StreamLimits,
) -> Result<Answer, LlmError> {
    let (client, request) = request.build_split();
    let request = request.map_err(|e| LlmError::Connect {
        detail: format!("cannot build the request: {}", error_chain(&e)),
    })?;
    let target = target(request.method(), request.url());
    let response = match tokio::time::timeout(limits.idle, client.execute(request)).await {
        Err(_) => return Err(LlmError::Idle { after: limits.idle }),
        Ok(Err(e)) => {
            return Err(LlmError::Connect {
                detail: format!("{target}: {}", error_chain(&e)),
            })
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if status.is_success() {
        return Ok(Answer { response, target });
    }
    if status.is_redirection() {
        return Err(redirected(&response, &target));
    }
    let advice = RetryAdvice::from_headers(response.headers(), SystemTime::now());
    let limit = limits.max_error_body_bytes;
    let body = read_bounded(response, limit, limits.idle).await;
    let context = format!("{target} ({})", body.note());
    // The status says what went wrong; a body cut at the bound rarely parses, so it only goes
    // to the log.
    Err(LlmError::from_http(
        status.as_u16(),
        &body.bytes,
        advice,
        &context,
    ))
}

fn redirected(response: &reqwest::Response, target: &str) -> LlmError {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Relative locations resolve against the request; only the host is shown to a person.
    let host = response
        .url()
        .join(location)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .filter(|_| !location.is_empty());
    LlmError::Redirected {
        status: response.status().as_u16(),
        host,
        detail: format!("{target}: Location: {location}"),
    }
}

/// "POST http://host:port/path", without credentials or query, for log lines.
fn target(method: &reqwest::Method, url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    let port = url.port().map_or_else(String::new, |p| format!(":{p}"));
    format!("{method} {}://{host}{port}{}", url.scheme(), url.path())
}

/// A body read up to a bound.
pub(crate) struct Bounded {
    pub bytes: Vec<u8>,
    pub end: BodyEnd,
}

pub(crate) enum BodyEnd {
    Complete,
    /// There was more than the bound; reading stopped there.
    TooLarge,
    Idle(Duration),
    Broken(String),
}

impl Bounded {
    fn note(&self) -> String {
        match &self.end {
            BodyEnd::Complete => format!("{} byte body", self.bytes.len()),
            BodyEnd::TooLarge => format!("body cut at {} bytes", self.bytes.len()),
            BodyEnd::Idle(after) => format!("body stalled for {after:?}"),
            BodyEnd::Broken(e) => format!("body broke off: {e}"),
        }
    }
}

/// Reads at most `limit` bytes of `response`, each chunk within `idle`. Dropping the response
/// afterwards closes the connection, so a huge body is never read whole.
pub(crate) async fn read_bounded(
    response: reqwest::Response,
    limit: usize,
    idle: Duration,
) -> Bounded {
    let mut chunks = IdleBound::new(body_chunks(response), idle);
    let mut bytes = Vec::new();
    let end = loop {
        match chunks.next().await {
            None => break BodyEnd::Complete,
            Some(Ok(chunk)) => {
                let room = limit.saturating_sub(bytes.len());
                if chunk.len() > room {
                    bytes.extend_from_slice(&chunk[..room]);
                    break BodyEnd::TooLarge;
                }
                bytes.extend_from_slice(&chunk);
            }
            Some(Err(LlmError::Idle { after })) => break BodyEnd::Idle(after),
            Some(Err(e)) => break BodyEnd::Broken(e.detail()),
        }
    };
    Bounded { bytes, end }
}

/// The body as chunks; a transport error mid-body is a lost connection.
pub(crate) fn body_chunks(response: reqwest::Response) -> Chunks {
    Box::pin(response.bytes_stream().map(|chunk| {
        chunk.map_err(|e| LlmError::StreamBroken {
            detail: error_chain(&e),
        })
    }))
}
