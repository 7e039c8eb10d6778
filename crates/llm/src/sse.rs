//! Server-sent events → provider events, shared by every HTTP provider.
//!
//! Byte-level SSE framing (events split across reads, multi-line `data:`, comments, UTF-8 split
//! across chunks) is `eventsource-stream`'s job; in front of it, [`crate::limits`] bounds the wait
//! for each chunk and the size of each event. Each protocol supplies an [`SseDecoder`] that turns
//! one event into zero or more [`ProviderEvent`]s.

use std::collections::VecDeque;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

use crate::error::excerpt;
use crate::http::{body_chunks, send};
use crate::limits::{Chunks, EventBound, IdleBound, StreamLimits};
use crate::{EventStream, LlmError, ProviderEvent};

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
    limits: StreamLimits,
    decoder: impl SseDecoder,
) -> EventStream {
    // Boxed apart from the stream: the request's state is let go once the answer's head is in,
    // rather than sized into the box the reply's events are read through for its whole life.
    let response = Box::pin(async move {
        let answer = send(request, &limits).await?;
        let chunks = IdleBound::new(body_chunks(answer.response), limits.idle);
        Ok(decode_events(
            Box::pin(chunks),
            limits.max_event_bytes,
            decoder,
        ))
    });
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
pub(crate) fn decode_events(
    chunks: Chunks,
    max_event_bytes: usize,
    decoder: impl SseDecoder,
) -> impl Stream<Item = Decoded> + Send {
    struct State<S, D> {
        /// `None` once ended, so the body (and its connection) is let go at once.
        events: Option<S>,
        decoder: D,
        pending: VecDeque<Decoded>,
    }
    let state = State {
        events: Some(Box::pin(
            EventBound::new(chunks, max_event_bytes).eventsource(),
        )),
        decoder,
        pending: VecDeque::new(),
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.pending.pop_front() {
                return Some((item, st));
            }
            let events = st.events.as_mut()?;
            let ended = match events.next().await {
                Some(Ok(event)) => {
                    st.decoder
                        .on_event(&event.event, &event.data, &mut st.pending);
                    st.decoder.is_done() || st.pending.iter().any(Result::is_err)
                }
                Some(Err(e)) => {
                    st.pending.push_back(Err(match e {
                        EventStreamError::Transport(e) => e,
                        other => LlmError::Malformed {
                            detail: other.to_string(),
                        },
                    }));
                    true
                }
                None => {
                    if let Err(e) = st.decoder.on_end() {
                        st.pending.push_back(Err(e));
                    }
                    true
                }
            };
            if ended {
                st.events = None;
            }
        }
    })
}

/// The body ended: fine after the protocol's end (`ended`), a lost connection before it.
pub(crate) fn body_ended(ended: bool, expected_end: &str) -> Result<(), LlmError> {
    if ended {
        Ok(())
    } else {
        Err(LlmError::StreamBroken {
            detail: format!("the stream ended before {expected_end}"),
        })
    }
}

/// Parses one event's JSON payload; a payload that does not fit is a malformed stream.
pub(crate) fn parse_event<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, LlmError> {
    serde_json::from_str(data).map_err(|e| LlmError::Malformed {
        detail: format!("{e} in event {}", excerpt(data.as_bytes())),
    })
}

/// Feeds `body` to `decoder` in pieces of `chunk` bytes, as odd network reads would.
#[cfg(test)]
pub(crate) async fn decode_chunked(
    body: &[u8],
    chunk: usize,
    decoder: impl SseDecoder,
) -> Vec<Decoded> {
    let pieces: Vec<Result<bytes::Bytes, LlmError>> = body
        .chunks(chunk)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    decode_events(
        Box::pin(futures::stream::iter(pieces)),
        StreamLimits::default().max_event_bytes,
        decoder,
    )
    .collect()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Oversized;

    /// Collects every event's data; ends after `[END]`.
    #[derive(Default)]
    struct Collect {
        done: bool,
    }

    impl SseDecoder for Collect {
        fn on_event(&mut self, _event: &str, data: &str, out: &mut VecDeque<Decoded>) {
            self.done = data == "[END]";
            out.push_back(Ok(ProviderEvent::TextDelta(data.to_owned())));
        }
        fn is_done(&self) -> bool {
            self.done
        }
        fn on_end(&mut self) -> Result<(), LlmError> {
            body_ended(self.done, "[END]")
        }
    }

    async fn decode(pieces: Vec<Vec<u8>>, max_event_bytes: usize) -> Vec<Decoded> {
        let pieces = pieces.into_iter().map(|p| Ok(bytes::Bytes::from(p)));
        decode_events(
            Box::pin(futures::stream::iter(pieces)),
            max_event_bytes,
            Collect::default(),
        )
        .collect()
        .await
    }

    #[tokio::test]
    async fn an_endless_data_line_is_too_large_not_buffered() {
        // 64 KiB pieces with no newline, far past a 1 KiB limit: stops at the first piece over.
        let mut pieces = vec![b"data: first\n\ndata: ".to_vec()];
        pieces.extend(std::iter::repeat_n(vec![b'x'; 64 * 1024], 1000));
        let events = decode(pieces, 1024).await;
        assert_eq!(
            events,
            vec![
                Ok(ProviderEvent::TextDelta("first".into())),
                Err(LlmError::TooLarge {
                    what: Oversized::Event,
                    limit: 1024,
                    detail: "an SSE line or event exceeded the limit".into()
                })
            ]
        );
    }

    #[tokio::test]
    async fn events_at_the_limit_pass_whatever_the_chunking() {
        let event = format!("data: {}\n\n", "y".repeat(94));
        let body = format!("{event}{event}data: [END]\n\n");
        for size in [1, 2, 3, 7, 100, body.len()] {
            let pieces = body.as_bytes().chunks(size).map(<[u8]>::to_vec).collect();
            let events = decode(pieces, 100).await;
            assert_eq!(events.len(), 3, "chunk size {size}");
            assert!(events.iter().all(Result::is_ok));
        }
    }

    #[tokio::test]
    async fn invalid_utf8_is_malformed() {
        let events = decode(vec![b"data: \xFF\xFE\n\n".to_vec()], 1024).await;
        assert!(matches!(
            events.as_slice(),
            [Err(LlmError::Malformed { .. })]
        ));
    }

    #[tokio::test]
    async fn a_transport_error_keeps_its_kind() {
        let pieces: Vec<Result<bytes::Bytes, LlmError>> = vec![
            Ok(bytes::Bytes::from_static(b"data: a\n\n")),
            Err(LlmError::StreamBroken {
                detail: "reset".into(),
            }),
        ];
        let events: Vec<_> = decode_events(
            Box::pin(futures::stream::iter(pieces)),
            1024,
            Collect::default(),
        )
        .collect()
        .await;
        assert_eq!(
            events[1],
            Err(LlmError::StreamBroken {
                detail: "reset".into()
            })
        );
    }
}
