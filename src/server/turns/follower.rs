//! One reader of a run's log: its events as they come, in batches. Every event ready is taken at
//! once, and text that follows text waits for the next tick of [`TEXT_INTERVAL`], so a reader's
//! connection gets one write per tick rather than one per token (at thousands of replies at once
//! the write, and the loopback or network work behind it, was most of the server's CPU; issue
//! 27). The first text, and every other event (the end above all), goes out as soon as it is
//! logged.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::live::{Lines, LiveTurn};
use crate::model::{StreamLine, TurnEvent};

/// How often text is written to a reader at most (on the ticks of [`next_tick`]): 20 times a
/// second, smoother than a provider's own bursts and below what a person reading can tell apart.
pub const TEXT_INTERVAL: Duration = Duration::from_millis(50);

/// Events taken in one batch at most, so a late reader of a long reply is not sent its whole
/// log in one buffer.
const MOST_PER_BATCH: usize = 128;

pub struct Follower {
    turn: Arc<LiveTurn>,
    changed: watch::Receiver<usize>,
    /// Index in the log of the next event to send.
    next: usize,
    heartbeat: Duration,
    quiet: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// Text that comes before this waits for it (set by a write of text).
    text_held_until: Option<Instant>,
    /// [`TEXT_INTERVAL`] (tests set their own).
    text_interval: Duration,
    /// `Finished` was sent.
    done: bool,
}

impl Follower {
    /// A reader of the events after `after_seq`. One past the end of the log (it cannot have
    /// seen those numbers) gets it whole.
    pub fn new(turn: Arc<LiveTurn>, after_seq: u32, heartbeat: Duration) -> Self {
        let changed = turn.subscribe();
        let mut next = after_seq as usize;
        if next > turn.len() {
            next = 0;
        }
        Self {
            turn,
            changed,
            next,
            heartbeat,
            // One timer for the reader, moved later as lines go out (cheap), not one per line.
            quiet: Box::pin(tokio::time::sleep(heartbeat)),
            text_held_until: None,
            text_interval: TEXT_INTERVAL,
            done: false,
        }
    }

    #[cfg(test)]
    fn holding_text_for(mut self, interval: Duration) -> Self {
        self.text_interval = interval;
        self
    }

    /// The next lines to send: the events logged since the last batch, or a heartbeat after
    /// `heartbeat` of quiet. `None` once `Finished` was sent, or the log was dropped.
    pub async fn next_lines(&mut self) -> Option<Vec<StreamLine>> {
        loop {
            if self.done {
                return None;
            }
            let (events, finished) = self.turn.events_after(self.next, MOST_PER_BATCH);
            if events.is_empty() {
                // Ended, and the reader has every event up to `Finished`.
                if finished {
                    return None;
                }
                if let Some(until) = self.text_held_until.filter(|until| Instant::now() < *until) {
                    // Text that comes now waits for the tick anyway: sleep until then rather
                    // than wake for every token. Only text follows text, but for the end,
                    // which wakes the reader at once.
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = self.turn.ended() => {}
                    }
                    continue;
                }
                tokio::select! {
                    changed = self.changed.changed() => if changed.is_err() { return None },
                    () = self.quiet.as_mut() => {
                        self.sent();
                        return Some(vec![StreamLine::Heartbeat]);
                    }
                }
                continue;
            }
            let all_text = events.iter().all(|e| is_text(&e.event));
            if let Some(until) = self.text_held_until.take() {
                if all_text && Instant::now() < until {
                    // More text gathers meanwhile; the end is not kept waiting.
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = self.turn.ended() => {}
                    }
                    continue;
                }
            }
            self.next = self.next.saturating_add(events.len());
            self.done = events
                .last()
                .is_some_and(|e| matches!(e.event, TurnEvent::Finished(_)));
            if events.iter().any(|e| is_text(&e.event)) {
                self.text_held_until = Some(next_tick(
                    self.turn.ticks_from(),
                    Instant::now(),
                    self.text_interval,
                ));
            }
            self.sent();
            return Some(events.into_iter().map(StreamLine::Event).collect());
        }
    }

    /// Lines went out: the next heartbeat is due `heartbeat` from now.
    fn sent(&mut self) {
        self.quiet.as_mut().reset(Instant::now() + self.heartbeat);
    }

    /// Sends every batch to `out`, line by line; returns once `Finished` is sent (or the reader
    /// left).
    pub async fn pump(mut self, out: &mpsc::Sender<StreamLine>) {
        while let Some(lines) = self.next_lines().await {
            for line in lines {
                if out.send(line).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A reader's stream of the events of `turn` after `after_seq`, polled by the reader's
/// connection itself: no task or channel of its own.
pub fn lines(turn: Arc<LiveTurn>, after_seq: u32, heartbeat: Duration) -> Lines {
    let follower = Follower::new(turn, after_seq, heartbeat);
    Box::pin(
        futures::stream::unfold(follower, |mut follower| async move {
            let lines = follower.next_lines().await?;
            Some((futures::stream::iter(lines), follower))
        })
        .flatten(),
    )
}

/// The first tick after `now` of a clock that ticks every `interval` from `start` (the turn's
/// own): its readers hold text until the same moments, so none of them runs up to an interval
/// behind another that began at another moment (a second tab, or the publisher that sends the
/// text on to another replica's readers, `replicas.rs`). Text still goes out at most once a
/// tick, and readers of different turns are not woken all at once.
fn next_tick(start: Instant, now: Instant, interval: Duration) -> Instant {
    let step = interval.as_nanos().max(1);
    let into = now.saturating_duration_since(start).as_nanos() % step;
    // Below `interval`'s nanoseconds, so it fits.
    let into = Duration::from_nanos(u64::try_from(into).unwrap_or_default());
    now + interval.saturating_sub(into)
}

fn is_text(event: &TurnEvent) -> bool {
    matches!(event, TurnEvent::Delta { .. } | TurnEvent::Thinking { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;
    use crate::server::db::Owner;
    use uuid::Uuid;

    const HEARTBEAT: Duration = Duration::from_secs(60);

    fn turn() -> Arc<LiveTurn> {
        Arc::new(LiveTurn::new(Uuid::new_v4(), Owner("someone".into()), 1))
    }

    fn delta(text: &str) -> TurnEvent {
        TurnEvent::Delta { text: text.into() }
    }

    /// The batch's events as (seq, text of a delta or "end").
    fn seen(lines: &[StreamLine]) -> Vec<(u32, String)> {
        lines
            .iter()
            .filter_map(|line| match line {
                StreamLine::Event(e) => Some(match &e.event {
                    TurnEvent::Delta { text } => (e.seq, text.clone()),
                    TurnEvent::Finished(_) => (e.seq, "end".into()),
                    _ => (e.seq, "other".into()),
                }),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn every_event_ready_goes_out_in_one_batch_and_text_after_text_is_gathered() {
        let turn = turn();
        turn.emit(delta("a"));
        turn.emit(delta("b"));
        // An interval no test outlasts: only the end lets held text go.
        let mut follower =
            Follower::new(turn.clone(), 0, HEARTBEAT).holding_text_for(Duration::from_secs(600));
        let first = follower.next_lines().await.expect("a batch");
        assert_eq!(seen(&first), [(1, "a".into()), (2, "b".into())]);

        let last = {
            // Text right after a write of text waits, and what comes meanwhile joins it.
            turn.emit(delta("c"));
            let mut next = std::pin::pin!(follower.next_lines());
            assert!(futures::poll!(next.as_mut()).is_pending(), "text is held");
            turn.emit(delta("d"));
            assert!(
                futures::poll!(next.as_mut()).is_pending(),
                "text is still held"
            );
            // The end is not held: it wakes the reader, and the held text goes out with it.
            turn.emit(TurnEvent::Finished(Outcome::complete()));
            let std::task::Poll::Ready(last) = futures::poll!(next.as_mut()) else {
                panic!("the end was held back");
            };
            last
        };
        assert_eq!(
            last.map(|l| seen(&l)),
            Some(vec![(3, "c".into()), (4, "d".into()), (5, "end".into())])
        );
        assert!(
            follower.next_lines().await.is_none(),
            "nothing after the end"
        );
    }

    /// Counts the wakes of the task it is the waker of.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl futures::task::ArcWake for Wakes {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn a_reader_holding_text_is_not_woken_by_more_text_but_is_by_the_end() {
        let turn = turn();
        turn.emit(delta("a"));
        let mut follower =
            Follower::new(turn.clone(), 0, HEARTBEAT).holding_text_for(Duration::from_secs(600));
        assert!(follower.next_lines().await.is_some());
        use std::future::Future;
        let wakes = Arc::new(Wakes::default());
        let waker = futures::task::waker(wakes.clone());
        let mut context = std::task::Context::from_waker(&waker);
        let mut next = std::pin::pin!(follower.next_lines());
        assert!(next.as_mut().poll(&mut context).is_pending());
        turn.emit(delta("b"));
        turn.emit(delta("c"));
        let count = || wakes.0.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(count(), 0, "text does not wake a reader that holds text");
        turn.emit(TurnEvent::Finished(Outcome::complete()));
        assert!(count() > 0, "the end wakes it");
        let std::task::Poll::Ready(last) = next.as_mut().poll(&mut context) else {
            panic!("the end was held back");
        };
        assert_eq!(
            last.map(|l| seen(&l)),
            Some(vec![(2, "b".into()), (3, "c".into()), (4, "end".into())])
        );
    }

    #[tokio::test]
    async fn held_text_goes_out_once_the_interval_has_passed() {
        let turn = turn();
        turn.emit(delta("a"));
        let mut follower =
            Follower::new(turn.clone(), 0, HEARTBEAT).holding_text_for(Duration::from_millis(5));
        assert_eq!(
            follower.next_lines().await.map(|l| seen(&l)),
            Some(vec![(1, "a".into())])
        );
        turn.emit(delta("b"));
        assert_eq!(
            follower.next_lines().await.map(|l| seen(&l)),
            Some(vec![(2, "b".into())])
        );
    }

    #[test]
    fn text_is_held_until_the_next_tick_of_the_turns_clock() {
        let interval = Duration::from_millis(50);
        let start = Instant::now();
        let tick = start + interval * 3;
        // Writes at different moments within one interval wait for the same tick.
        for before in [40, 25, 1] {
            let now = tick - Duration::from_millis(before);
            assert_eq!(next_tick(start, now, interval), tick);
        }
        // A write at the tick waits for the next one: at most one write of text a tick.
        assert_eq!(next_tick(start, tick, interval), tick + interval);
    }

    #[tokio::test]
    async fn readers_of_one_turn_that_began_apart_hold_text_until_the_same_tick() {
        let turn = turn();
        turn.emit(delta("a"));
        // An interval no test outlasts: both writes fall before the turn's first tick.
        let interval = Duration::from_secs(600);
        let mut first = Follower::new(turn.clone(), 0, HEARTBEAT).holding_text_for(interval);
        assert!(first.next_lines().await.is_some());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut second = Follower::new(turn.clone(), 0, HEARTBEAT).holding_text_for(interval);
        assert!(second.next_lines().await.is_some());
        assert!(first.text_held_until.is_some());
        assert_eq!(first.text_held_until, second.text_held_until);
        assert_eq!(first.text_held_until, Some(turn.ticks_from() + interval));
    }

    #[tokio::test]
    async fn a_reader_gets_the_log_after_the_event_it_saw() {
        let turn = turn();
        for text in ["a", "b", "c"] {
            turn.emit(delta(text));
        }
        let mut after_two = Follower::new(turn.clone(), 2, HEARTBEAT);
        let lines = after_two.next_lines().await.map(|l| seen(&l));
        assert_eq!(lines, Some(vec![(3, "c".into())]));
        // Past the end of the log: numbers it cannot have seen, so the log whole.
        let mut past = Follower::new(turn, 9, HEARTBEAT);
        assert_eq!(past.next_lines().await.map(|l| seen(&l).len()), Some(3));
    }
}
