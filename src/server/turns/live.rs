//! The event log of one run of a turn, in memory while it runs (and a while after), and the
//! streams that follow it.

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::model::{Outcome, StreamLine, TurnEnvelope, TurnEvent};
use crate::server::db::{Owner, ReplyText, TurnRecord};

/// Why a claimed turn id did not become a run; readers that found the claim get the same answer
/// as the request that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    NoSuchConversation,
    NoSuchTurn,
    Busy,
    /// The owner's limits refused it.
    Limited(crate::server::limits::LimitError),
    /// The reply had been continued already: this is its run now.
    AlreadyContinued(u32),
    /// Storing the turn failed (the details are in the log).
    NotStored,
    /// Storing the question would take its owner past their storage quota (the words say so).
    OverQuota(String),
}

/// Why a turn was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// The person pressed Stop.
    Stop,
    /// The server is shutting down and the grace period is over.
    Shutdown,
}

pub struct LiveTurn {
    pub turn_id: Uuid,
    pub owner: Owner,
    /// The run this log is of, until the record says.
    claimed_run: u32,
    /// Set once the turn is stored and about to run; readers may arrive before.
    record: OnceLock<TurnRecord>,
    /// The log was rebuilt from the database: its numbers are not those of the live log.
    replay: std::sync::atomic::AtomicBool,
    /// Set when the claim did not become a run.
    refusal: OnceLock<Refusal>,
    log: Mutex<Log>,
    /// The number of events in the log, for readers waiting on the next one.
    len: watch::Sender<usize>,
    cancel: CancellationToken,
    cancel_reason: OnceLock<CancelReason>,
    /// Cancelled once `Finished` is logged (readers holding text back wake for it).
    ended: CancellationToken,
    /// Where the ticks its readers hold text until are counted from (`follower.rs`).
    ticks_from: tokio::time::Instant,
}

#[derive(Default)]
struct Log {
    /// Event `seq` is `events[seq - 1]`.
    events: Vec<Logged>,
    /// The reply's text (the `Delta`s of `events` joined) and thinking (the `Thinking`s).
    written: ReplyText,
    /// Bytes of each the database holds (its row and the pieces beside it).
    saved: Saved,
    /// Bytes of each the reply's row holds (written whole, see [`LiveTurn::unsaved_text`]).
    whole: Saved,
    outcome: Option<Outcome>,
}

/// An event as the log keeps it: a piece of text as its place in the reply's text or thinking
/// (held once, in `Log::written`), so that a reply's log costs a few bytes per event beside its
/// text rather than an event and a copy of its piece each; any other event as it came.
enum Logged {
    Delta(std::ops::Range<usize>),
    Thinking(std::ops::Range<usize>),
    Other(Box<TurnEvent>),
}

impl Logged {
    /// The event as readers get it.
    fn event(&self, written: &ReplyText) -> TurnEvent {
        let piece = |text: &str, range: &std::ops::Range<usize>| {
            text.get(range.clone()).unwrap_or_default().to_owned()
        };
        match self {
            Logged::Delta(range) => TurnEvent::Delta {
                text: piece(&written.content, range),
            },
            Logged::Thinking(range) => TurnEvent::Thinking {
                text: piece(&written.thinking, range),
            },
            Logged::Other(event) => (**event).clone(),
        }
    }
}

/// A running reply's row is rewritten whole (and reindexed for search) once the text beside it
/// is at least this long, besides doubling: a short reply's row was rewritten at each of its
/// first checkpoints (four times in 100 tokens), each a search reindex, where its pieces are a
/// row each. A reply under this size is written whole only when it goes quiet and at its end.
const WHOLE_AFTER_BYTES: usize = 16 * 1024;

/// Bytes of a reply's text and thinking that are stored; both only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    content: usize,
    thinking: usize,
}

impl Saved {
    fn of(text: &ReplyText) -> Self {
        Self {
            content: text.content.len(),
            thinking: text.thinking.len(),
        }
    }

    fn total(self) -> usize {
        self.content.saturating_add(self.thinking)
    }
}

/// What a checkpoint writes of a running reply (see [`LiveTurn::unsaved_text`]).
pub struct Unsaved {
    /// The whole text, or what came since the last checkpoint.
    pub text: ReplyText,
    pub whole: bool,
    /// What the database holds once it is written, for [`LiveTurn::saved`].
    pub mark: Saved,
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code holding these locks can panic midway; a poisoned lock still holds valid data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Lines for one reader. The stream ends when the turn has ended (or the server closes it).
pub type Lines = std::pin::Pin<Box<dyn Stream<Item = StreamLine> + Send>>;

/// A chunk is handed on once it holds this much, even with more lines ready.
const CHUNK_BYTES: usize = 64 * 1024;

/// `lines` as newline-delimited JSON for the reader's connection, every line that is ready at
/// once in one chunk: a batch of events is one write, not one per event.
pub fn ndjson_chunks(mut lines: Lines) -> impl Stream<Item = Vec<u8>> + Send {
    use std::task::Poll;
    let mut ended = false;
    futures::stream::poll_fn(move |cx| {
        if ended {
            return Poll::Ready(None);
        }
        let mut chunk = Vec::new();
        loop {
            match lines.as_mut().poll_next(cx) {
                Poll::Ready(Some(line)) => {
                    // Serialising these plain structs into memory cannot fail.
                    if serde_json::to_writer(&mut chunk, &line).is_ok() {
                        chunk.push(b'\n');
                    }
                    if chunk.len() >= CHUNK_BYTES {
                        return Poll::Ready(Some(chunk));
                    }
                }
                Poll::Ready(None) => {
                    ended = true;
                    return Poll::Ready((!chunk.is_empty()).then_some(chunk));
                }
                Poll::Pending if chunk.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Some(chunk)),
            }
        }
    })
}

/// Runs `pump` as a task that feeds a reader's stream; the task ends when the reader goes away.
pub fn spawn_lines<F, Fut>(pump: F) -> Lines
where
    F: FnOnce(mpsc::Sender<StreamLine>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let work = pump(tx.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = work => {}
            () = tx.closed() => {}
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    }))
}

impl LiveTurn {
    /// A turn claimed for run `run`, before it is stored.
    pub fn new(turn_id: Uuid, owner: Owner, run: u32) -> Self {
        Self {
            turn_id,
            owner,
            claimed_run: run,
            record: OnceLock::new(),
            replay: std::sync::atomic::AtomicBool::new(false),
            refusal: OnceLock::new(),
            log: Mutex::default(),
            len: watch::Sender::new(0),
            cancel: CancellationToken::new(),
            cancel_reason: OnceLock::new(),
            ended: CancellationToken::new(),
            ticks_from: tokio::time::Instant::now(),
        }
    }

    /// Where the ticks this turn's readers hold text until are counted from.
    pub fn ticks_from(&self) -> tokio::time::Instant {
        self.ticks_from
    }

    pub fn set_record(&self, record: TurnRecord) {
        // A continuation's row holds the text so far already: checkpoints add what comes after.
        {
            let mut log = lock(&self.log);
            let stored = Saved {
                content: record.reply.content.len(),
                thinking: record.reply.thinking.len(),
            };
            log.saved = stored;
            log.whole = stored;
        }
        let _ = self.record.set(record);
    }

    pub fn record(&self) -> Option<&TurnRecord> {
        self.record.get()
    }

    pub fn run(&self) -> u32 {
        self.record().map_or(self.claimed_run, |r| r.reply.run)
    }

    /// Records why the claim did not become a run, and wakes the readers waiting for it.
    pub fn refuse(&self, refusal: Refusal) {
        let _ = self.refusal.set(refusal);
        self.len.send_modify(|_| {});
    }

    /// Waits until the claim became a run (its first event) or was refused.
    pub async fn begun(&self) -> Result<(), Refusal> {
        let mut changed = self.len.subscribe();
        loop {
            if let Some(refusal) = self.refusal.get() {
                return Err(refusal.clone());
            }
            if !lock(&self.log).events.is_empty() {
                return Ok(());
            }
            if changed.changed().await.is_err() {
                return Err(Refusal::NotStored);
            }
        }
    }

    pub fn mark_replay(&self) {
        self.replay
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_replay(&self) -> bool {
        self.replay.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn emit(&self, event: TurnEvent) {
        let (len, ended) = {
            let mut log = lock(&self.log);
            let logged = match event {
                TurnEvent::Delta { text } => {
                    let start = log.written.content.len();
                    log.written.content.push_str(&text);
                    Logged::Delta(start..log.written.content.len())
                }
                TurnEvent::Thinking { text } => {
                    let start = log.written.thinking.len();
                    log.written.thinking.push_str(&text);
                    Logged::Thinking(start..log.written.thinking.len())
                }
                TurnEvent::Finished(outcome) => {
                    log.outcome = Some(outcome.clone());
                    Logged::Other(Box::new(TurnEvent::Finished(outcome)))
                }
                other @ (TurnEvent::Started { .. } | TurnEvent::Queued { .. }) => {
                    Logged::Other(Box::new(other))
                }
            };
            log.events.push(logged);
            (log.events.len(), log.outcome.is_some())
        };
        self.len.send_replace(len);
        if ended {
            self.ended.cancel();
        }
    }

    /// What the reply has written so far.
    pub fn written(&self) -> ReplyText {
        lock(&self.log).written.clone()
    }

    pub fn outcome(&self) -> Option<Outcome> {
        lock(&self.log).outcome.clone()
    }

    pub fn is_finished(&self) -> bool {
        lock(&self.log).outcome.is_some()
    }

    pub fn cancel(&self, reason: CancelReason) {
        let _ = self.cancel_reason.set(reason);
        self.cancel.cancel();
    }

    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.cancel_reason.get().copied()
    }

    /// What to save of a running reply, if anything. Usually the text since the last save, a
    /// piece appended beside the reply's row; the whole text, rewriting the row (and its search
    /// index), only once it has doubled since the row was last written (and grown by
    /// [`WHOLE_AFTER_BYTES`]), or when the reply has gone quiet with pieces beside its row. So the bytes written for a reply grow with its
    /// length, not with its length times its checkpoints, and its row is never more than one
    /// doubling (or one quiet interval) behind what is saved.
    pub fn unsaved_text(&self) -> Option<Unsaved> {
        let log = lock(&self.log);
        if log.outcome.is_some() {
            return None;
        }
        let now = Saved::of(&log.written);
        let quiet = now == log.saved;
        if quiet && log.whole == log.saved {
            return None;
        }
        let grown = now.total().saturating_sub(log.whole.total());
        let doubled = grown >= log.whole.total().max(WHOLE_AFTER_BYTES);
        let piece = ReplyText {
            content: log
                .written
                .content
                .get(log.saved.content..)
                .map(str::to_owned)?,
            thinking: log
                .written
                .thinking
                .get(log.saved.thinking..)
                .map(str::to_owned)?,
        };
        let whole = quiet || doubled;
        Some(Unsaved {
            text: if whole { log.written.clone() } else { piece },
            whole,
            mark: now,
        })
    }

    /// `unsaved` is stored.
    pub fn saved(&self, unsaved: &Unsaved) {
        let mut log = lock(&self.log);
        let mark = unsaved.mark;
        log.saved = Saved {
            content: log.saved.content.max(mark.content),
            thinking: log.saved.thinking.max(mark.thinking),
        };
        if unsaved.whole {
            log.whole = log.saved;
        }
    }

    /// Waits until the turn has ended, up to `timeout`; its outcome if it did.
    pub async fn wait_finished(&self, timeout: Duration) -> Option<Outcome> {
        let mut changed = self.len.subscribe();
        let _ = tokio::time::timeout(timeout, async {
            while !self.is_finished() {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        self.outcome()
    }

    /// A receiver told of each event logged (the log's length).
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.len.subscribe()
    }

    /// The number of events logged.
    pub fn len(&self) -> usize {
        lock(&self.log).events.len()
    }

    /// Up to `most` events from index `next` of the log, numbered, and whether the run has
    /// ended (one look under one lock: `Finished` and the outcome are set together).
    pub fn events_after(&self, next: usize, most: usize) -> (Vec<TurnEnvelope>, bool) {
        let log = lock(&self.log);
        let events = log
            .events
            .iter()
            .enumerate()
            .skip(next)
            .take(most)
            .map(|(at, logged)| TurnEnvelope {
                seq: u32::try_from(at.saturating_add(1)).unwrap_or(u32::MAX),
                event: logged.event(&log.written),
            })
            .collect();
        (events, log.outcome.is_some())
    }

    /// Resolves once `Finished` is logged.
    pub async fn ended(&self) {
        self.ended.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn lines_ready_at_once_are_one_chunk() {
        let lines: Lines = Box::pin(futures::stream::iter([
            StreamLine::Heartbeat,
            StreamLine::Title { title: "t".into() },
            StreamLine::Heartbeat,
        ]));
        let chunks: Vec<Vec<u8>> = ndjson_chunks(lines).collect().await;
        assert_eq!(chunks.len(), 1, "one write for the three lines");
        let text = String::from_utf8(chunks.concat()).expect("text");
        let mut decoder = crate::model::ndjson::Decoder::default();
        let parsed: Vec<StreamLine> = decoder
            .push(text.as_bytes())
            .into_iter()
            .map(|line| line.expect("a line"))
            .collect();
        assert_eq!(parsed.len(), 3);
        assert!(matches!(&parsed[1], StreamLine::Title { title } if title == "t"));
    }
}
