//! The streamed body of a reply: events written with the configured pacing, the time-based faults
//! (a stall, keep-alives forever, an endless line), and the record of a client that went away.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::{lock, Disconnect, FakeConfig, Recorded};

/// How long a stall holds the connection before the fake gives up on the client.
const STALL_CAP: Duration = Duration::from_secs(600);
/// Keep-alives sent at most, after which the body ends.
const KEEPALIVE_CAP: usize = 100_000;
/// An endless line is written in pieces of this size, a few milliseconds apart…
const ENDLESS_PIECE: usize = 64 * 1024;
const ENDLESS_PAUSE: Duration = Duration::from_millis(2);
/// …up to this many bytes, then the body ends.
const ENDLESS_CAP: usize = 256 * 1024 * 1024;

pub(crate) enum Event {
    /// One token's event (text or thinking): paced by `token_delay_ms` and counted.
    Token(Bytes),
    Other(Bytes),
    /// End the body here, as the fake intends (a lost connection, or the end after a fault).
    Break,
    /// Send nothing more, keeping the connection open.
    Stall,
    /// Start a line with these bytes and never end it.
    EndlessLine(Bytes),
    /// Send only this keep-alive, every `interval`.
    KeepAlive {
        bytes: Bytes,
        interval: Duration,
    },
}

type Pieces = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

pub(crate) fn stream_response(
    recorded: &Arc<Mutex<Recorded>>,
    config: &FakeConfig,
    events: Vec<Event>,
) -> Response {
    let guard = DisconnectGuard {
        recorded: recorded.clone(),
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
            let pieces: Pieces = match event {
                Event::Token(bytes) => {
                    let wait = if guard.tokens_sent == 0 {
                        first_delay + delay
                    } else {
                        delay
                    };
                    tokio::time::sleep(wait).await;
                    guard.tokens_sent += 1;
                    split_pieces(bytes, split).await
                }
                Event::Other(bytes) => split_pieces(bytes, split).await,
                // Ending the body early is how the fake "loses" the connection; not a client disconnect.
                Event::Break => {
                    guard.complete();
                    return None;
                }
                // A client that goes away drops the body mid-sleep: that is the disconnect recorded.
                Event::Stall => {
                    tokio::time::sleep(STALL_CAP).await;
                    guard.complete();
                    return None;
                }
                Event::EndlessLine(start) => endless_line(start),
                Event::KeepAlive { bytes, interval } => keep_alives(bytes, interval),
            };
            Some((pieces, (events, guard)))
        },
    )
    .flatten();
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Pieces are written with a pause between them so they reach the client as separate reads.
async fn split_pieces(bytes: Bytes, split: Option<usize>) -> Pieces {
    let Some(n) = split.map(|n| n.max(1)) else {
        return Box::pin(futures::stream::iter([Ok(bytes)]));
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    let pieces: Vec<_> = (0..bytes.len())
        .step_by(n)
        .map(|start| Ok(bytes.slice(start..(start + n).min(bytes.len()))))
        .collect();
    Box::pin(futures::stream::iter(pieces))
}

fn endless_line(start: Bytes) -> Pieces {
    let piece = Bytes::from(vec![b'x'; ENDLESS_PIECE]);
    let rest = futures::stream::unfold(0usize, move |sent| {
        let piece = piece.clone();
        async move {
            if sent >= ENDLESS_CAP {
                return None;
            }
            tokio::time::sleep(ENDLESS_PAUSE).await;
            Some((Ok(piece), sent + ENDLESS_PIECE))
        }
    });
    Box::pin(futures::stream::iter([Ok(start)]).chain(rest))
}

fn keep_alives(bytes: Bytes, interval: Duration) -> Pieces {
    Box::pin(futures::stream::iter(0..KEEPALIVE_CAP).then(move |_| {
        let bytes = bytes.clone();
        async move {
            tokio::time::sleep(interval).await;
            Ok(bytes)
        }
    }))
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
                at_unix_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64() * 1_000.0),
            });
        }
    }
}
