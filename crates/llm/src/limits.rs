//! Bounds on what Rill reads from a provider: how long it waits for a byte, and how large one SSE
//! event may grow. Two stream adapters sit between the HTTP body and the SSE parser
//! (`eventsource-stream`, which has no bound of its own).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use crate::error::Oversized;
use crate::LlmError;

#[derive(Clone, Debug)]
pub struct StreamLimits {
    /// The longest wait for the response headers, and for each body chunk after them. Any byte
    /// counts as life (SSE comments, pings), so a slow model that keeps the line warm is not cut.
    pub idle: Duration,
    /// The largest SSE line or event.
    pub max_event_bytes: usize,
    /// How much of a non-success answer's body is read.
    pub max_error_body_bytes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(120),
            max_event_bytes: 1024 * 1024,
            max_error_body_bytes: 64 * 1024,
        }
    }
}

pub(crate) type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, LlmError>> + Send>>;

/// Fails with [`LlmError::Idle`] when no chunk arrives within `idle`; the deadline restarts at
/// every chunk. Ends after an error.
pub(crate) struct IdleBound {
    inner: Option<Chunks>,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl IdleBound {
    pub(crate) fn new(inner: Chunks, idle: Duration) -> Self {
        Self {
            inner: Some(inner),
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl Stream for IdleBound {
    type Item = Result<Bytes, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // Data first: a chunk that is already there counts even if the reader was slow to ask.
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let now = tokio::time::Instant::now();
                // A limit too large to add is no limit: a year is as good as forever here.
                let next = now
                    .checked_add(this.idle)
                    .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
                this.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => {
                // An error or the end: let go of the body (and its connection) now.
                this.inner = None;
                Poll::Ready(other)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.inner = None;
                    Poll::Ready(Some(Err(LlmError::Idle { after: this.idle })))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Fails with [`LlmError::TooLarge`] as soon as one SSE event (bytes since the last blank line)
/// exceeds the limit, so the parser behind it never buffers much more than that; and with
/// [`LlmError::Malformed`] on bytes that are not UTF-8 (the parser would keep them forever).
pub(crate) struct EventBound {
    inner: Option<Chunks>,
    size: EventSize,
    utf8: Utf8Tail,
}

impl EventBound {
    pub(crate) fn new(inner: Chunks, max_event_bytes: usize) -> Self {
        Self {
            inner: Some(inner),
            size: EventSize::new(max_event_bytes),
            utf8: Utf8Tail::default(),
        }
    }
}

impl Stream for EventBound {
    type Item = Result<Bytes, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let item = match inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => match this.size.feed(&chunk) {
                Err(limit) => Err(LlmError::TooLarge {
                    what: Oversized::Event,
                    limit,
                    detail: "an SSE line or event exceeded the limit".into(),
                }),
                Ok(()) => match this.utf8.feed(&chunk) {
                    Ok(()) => return Poll::Ready(Some(Ok(chunk))),
                    Err(()) => Err(LlmError::Malformed {
                        detail: "the event stream is not valid UTF-8".into(),
                    }),
                },
            },
            Poll::Ready(Some(Err(e))) => Err(e),
            Poll::Ready(None) => {
                this.inner = None;
                return Poll::Ready(None);
            }
        };
        this.inner = None;
        Poll::Ready(Some(item))
    }
}

/// Counts the bytes of the SSE event being received. Line ends are `\n`, `\r\n` or `\r` (a `\r\n`
/// split across chunks is one line end); an empty line ends the event. One pass, O(n).
struct EventSize {
    limit: usize,
    /// Non-line-end bytes since the last blank line.
    event: usize,
    /// No byte yet since the last line end, so the next line end is a blank line.
    at_line_start: bool,
    /// The last byte was `\r`: a `\n` right after it belongs to the same line end.
    after_cr: bool,
}

impl EventSize {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            event: 0,
            at_line_start: true,
            after_cr: false,
        }
    }

    /// `Err(limit)` once the event outgrows the limit.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), usize> {
        for &byte in chunk {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    if self.at_line_start {
                        self.event = 0;
                    }
                    self.at_line_start = true;
                    self.after_cr = byte == b'\r';
                }
                _ => {
                    self.after_cr = false;
                    self.at_line_start = false;
                    self.event += 1;
                    if self.event > self.limit {
                        return Err(self.limit);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks UTF-8 across chunk boundaries, carrying at most the 3 bytes of a split character.
#[derive(Default)]
struct Utf8Tail {
    carry: Vec<u8>,
}

impl Utf8Tail {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), ()> {
        let joined;
        let bytes = if self.carry.is_empty() {
            chunk
        } else {
            joined = [self.carry.as_slice(), chunk].concat();
            &joined
        };
        match std::str::from_utf8(bytes) {
            Ok(_) => {
                self.carry.clear();
                Ok(())
            }
            // Incomplete at the end: keep the start of the character for the next chunk.
            Err(e) if e.error_len().is_none() => {
                self.carry = bytes[e.valid_up_to()..].to_vec();
                Ok(())
            }
            Err(_) => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn chunks(pieces: Vec<&'static [u8]>) -> Chunks {
        Box::pin(futures::stream::iter(
            pieces.into_iter().map(|p| Ok(Bytes::from_static(p))),
        ))
    }

    /// Feeds `body` to an [`EventSize`] in pieces of `size` bytes.
    fn fits(body: &[u8], limit: usize, size: usize) -> bool {
        let mut counter = EventSize::new(limit);
        body.chunks(size.max(1)).all(|c| counter.feed(c).is_ok())
    }

    #[test]
    fn events_up_to_the_limit_pass_in_any_chunking() {
        // The largest event is the last: "event: x" and "data: 12345", 19 bytes.
        let body = b"data: 12345\n\n: comment\r\n\r\nevent: x\rdata: 12345\r\r";
        for size in 1..=body.len() {
            assert!(fits(body, 19, size), "chunk size {size}");
            assert!(!fits(body, 18, size), "chunk size {size}");
        }
    }

    #[test]
    fn lines_of_one_event_add_up() {
        // Three data lines of one event: 3 × 6 bytes.
        let body = b"data:a\ndata:b\ndata:c\n\n";
        for size in 1..=body.len() {
            assert!(fits(body, 18, size));
            assert!(!fits(body, 17, size));
        }
    }

    #[test]
    fn a_crlf_split_across_chunks_is_one_line_end_not_a_blank_line() {
        // If "\r" + "\n" counted as two line ends, each would reset the count and this
        // 4-line event would pass a limit of 8.
        let body = b"data:aa\r\ndata:bb\r\ndata:cc\r\ndata:dd\r\n\r\n";
        for size in 1..=body.len() {
            assert!(!fits(body, 8, size), "chunk size {size}");
            assert!(fits(body, 28, size), "chunk size {size}");
        }
    }

    #[test]
    fn an_endless_line_fails_once_past_the_limit() {
        let mut counter = EventSize::new(1000);
        let piece = [b'x'; 100];
        let mut fed = 0;
        while counter.feed(&piece).is_ok() {
            fed += piece.len();
            assert!(fed <= 1000, "kept accepting");
        }
        assert_eq!(fed, 1000);
    }

    #[test]
    fn utf8_split_across_chunks_is_fine_and_invalid_bytes_are_not() {
        let text = "a é 世 🌍 z".as_bytes();
        for size in 1..=text.len() {
            let mut tail = Utf8Tail::default();
            assert!(text.chunks(size).all(|c| tail.feed(c).is_ok()));
            assert!(tail.carry.is_empty());
        }
        let mut tail = Utf8Tail::default();
        assert!(tail.feed(b"ok \xF0\x9F").is_ok());
        assert!(tail.feed(b"\xFF").is_err());
        assert!(Utf8Tail::default().feed(b"\xC3\x28").is_err());
    }

    #[tokio::test]
    async fn the_bound_ends_the_stream_at_the_first_oversized_event() {
        let bound = EventBound::new(
            chunks(vec![
                b"data: ok\n\n",
                b"data: 0123456789",
                b"data: more\n\n",
            ]),
            10,
        );
        let items: Vec<_> = bound.collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(matches!(
            &items[1],
            Err(LlmError::TooLarge {
                what: Oversized::Event,
                limit: 10,
                ..
            })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_fails_after_a_quiet_spell_and_any_chunk_restarts_it() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, LlmError>>();
        let idle = Duration::from_secs(10);
        let mut bound = IdleBound::new(Box::pin(rx), idle);
        let feeder = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(9)).await;
                let _ = tx.unbounded_send(Ok(Bytes::from_static(b": ping\n\n")));
            }
            // Then silence, holding the "connection" open.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            assert!(matches!(bound.next().await, Some(Ok(_))));
        }
        assert_eq!(
            bound.next().await,
            Some(Err(LlmError::Idle { after: idle }))
        );
        assert_eq!(start.elapsed(), Duration::from_secs(45 + 10));
        assert_eq!(bound.next().await, None);
        feeder.abort();
    }
}
