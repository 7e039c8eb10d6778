//! Server-sent events → provider events, shared by every HTTP provider.
//!
//! Byte-level SSE framing (events split across reads, multi-line `data:`, comments, UTF-8 split
//! across chunks) is `eventsource-stream`'s job; each protocol supplies an [`SseDecoder`] that turns
//! one event into zero or more [`ProviderEvent`]s.

use std::collections::VecDeque;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};

use crate::{error::parse_retry_after, EventStream, LlmError, ProviderEvent};

pub(crate) type Decoded = Result<ProviderEvent, LlmError>;

pub(crate) trait SseDecoder: Send + 'static {
    /// Handles one event (`event:` name, may be empty, and its joined `data:`).
    fn on_event(&mut self, event: &str, data: &str, out: &mut VecDeque<Decoded>);
    /// True once the protocol's end marker was seen; later bytes are ignored.
    fn is_done(&self) -> bool;
    /// Called when the body ends; an end before the protocol's end marker is a lost connection.
    fn on_end(&mut self) -> Result<(), LlmError>;
}

/// Sends a prepared request and streams its SSE body through `decoder`. Lazy; cancelled by drop.
pub(crate) fn stream_sse(
    request: reqwest::RequestBuilder,
    decoder: impl SseDecoder,
) -> EventStream {
    let response = async move {
        let response = request
            .send()
            .await
            .map_err(|e| LlmError::Connect(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = parse_retry_after(
                response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
            );
            let body = response.text().await.unwrap_or_default();
            return Err(LlmError::from_status(status.as_u16(), &body, retry_after));
        }
        Ok(decode_events(response.bytes_stream(), decoder))
    };
    Box::pin(
        futures::stream::once(response)
            .map(|r| match r {
                Ok(events) => events.left_stream(),
                Err(e) => futures::stream::iter([Err(e)]).right_stream(),
            })
            .flatten(),
    )
}

/// Decodes an SSE byte stream; split out from [`stream_sse`] so tests can feed odd chunkings.
pub(crate) fn decode_events<B, E>(
    bytes: impl Stream<Item = Result<B, E>> + Send + 'static,
    decoder: impl SseDecoder,
) -> impl Stream<Item = Decoded> + Send
where
    B: AsRef<[u8]> + Send,
    E: std::error::Error + Send,
{
    struct State<S, D> {
        events: S,
        decoder: D,
        pending: VecDeque<Decoded>,
        ended: bool,
    }
    let state = State {
        events: Box::pin(bytes.eventsource()),
        decoder,
        pending: VecDeque::new(),
        ended: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.pending.pop_front() {
                return Some((item, st));
            }
            if st.ended {
                return None;
            }
            match st.events.next().await {
                Some(Ok(event)) => {
                    st.decoder
                        .on_event(&event.event, &event.data, &mut st.pending);
                    st.ended = st.decoder.is_done() || st.pending.iter().any(Result::is_err);
                }
                Some(Err(e)) => {
                    st.ended = true;
                    st.pending.push_back(Err(match e {
                        eventsource_stream::EventStreamError::Transport(t) => {
                            LlmError::StreamBroken(error_chain(&t))
                        }
                        other => LlmError::Malformed(other.to_string()),
                    }));
                }
                None => {
                    st.ended = true;
                    if let Err(e) = st.decoder.on_end() {
                        st.pending.push_back(Err(e));
                    }
                }
            }
        }
    })
}

/// The body ended: fine after the protocol's end (`ended`), a lost connection before it.
pub(crate) fn body_ended(ended: bool, expected_end: &str) -> Result<(), LlmError> {
    if ended {
        Ok(())
    } else {
        Err(LlmError::StreamBroken(format!(
            "the stream ended before {expected_end}"
        )))
    }
}

/// Parses one event's JSON payload; a payload that does not fit is a malformed stream.
pub(crate) fn parse_event<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, LlmError> {
    serde_json::from_str(data).map_err(|e| LlmError::Malformed(format!("{e} in event {data:.120}")))
}

/// Feeds `body` to `decoder` in pieces of `chunk` bytes, as odd network reads would.
#[cfg(test)]
pub(crate) async fn decode_chunked(
    body: &[u8],
    chunk: usize,
    decoder: impl SseDecoder,
) -> Vec<Decoded> {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    decode_events(futures::stream::iter(pieces), decoder)
        .collect()
        .await
}

/// reqwest's top-level messages are terse ("error sending request"); the cause says what happened.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
