//! Following a turn another replica runs (issue 28). The reader gets the same events as from a
//! live log: `Started`, the text so far, then more text, then `Finished`. The text comes two
//! ways: the replica running the turn sends it as it comes (`Signal::Text`, asked for by
//! `Signal::Watch`, in the batches a reader there gets), and the rows are read again each time a
//! replica says it saved running text (`Signal::Saved`, at every checkpoint and ending) and at
//! least every [`LOOK_EVERY`]. A piece that extends what the reader has goes out at once; one
//! past it (a piece was lost) sends the reader to the row, which stays the truth.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

use crate::model::{MessageStatus, MessageView, StreamLine, TurnEnvelope, TurnEvent};
use crate::server::db::replicas::{self, Signal, TextPiece};
use crate::server::db::{self, Db, Owner};

/// The longest wait between two reads when no replica says anything (a lost signal).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What the reader has been sent of the reply.
struct Sent {
    seq: u32,
    run: u32,
    content: usize,
    thinking: usize,
    last: tokio::time::Instant,
}

impl Sent {
    async fn send(&mut self, out: &mpsc::Sender<StreamLine>, event: TurnEvent) -> bool {
        self.seq = self.seq.saturating_add(1);
        self.last = tokio::time::Instant::now();
        out.send(StreamLine::Event(TurnEnvelope {
            seq: self.seq,
            event,
        }))
        .await
        .is_ok()
    }

    /// Sends what `reply` has that the reader has not seen. False once the reader is gone or
    /// the reply is not the one being followed any more (continued since).
    async fn catch_up(&mut self, out: &mpsc::Sender<StreamLine>, reply: MessageView) -> bool {
        if reply.run != self.run {
            return false;
        }
        let (Some(thinking), Some(content)) = (
            reply.thinking.get(self.thinking..),
            reply.content.get(self.content..),
        ) else {
            // Shorter than what was sent: not the same text. The reader re-attaches.
            return false;
        };
        if !thinking.is_empty() {
            let text = thinking.to_owned();
            self.thinking = reply.thinking.len();
            if !self.send(out, TurnEvent::Thinking { text }).await {
                return false;
            }
        }
        if !content.is_empty() {
            let text = content.to_owned();
            self.content = reply.content.len();
            if !self.send(out, TurnEvent::Delta { text }).await {
                return false;
            }
        }
        true
    }
}

/// What became of a piece of text another replica sent.
enum Applied {
    /// Sent on, or already sent.
    Sent,
    /// It starts past what was sent: one was lost. Read the row.
    Gap,
    /// The reader is gone.
    Gone,
}

impl Sent {
    async fn apply(&mut self, out: &mpsc::Sender<StreamLine>, piece: TextPiece) -> Applied {
        let had = if piece.thinking {
            self.thinking
        } else {
            self.content
        };
        if piece.offset > had {
            return Applied::Gap;
        }
        let Some(new) = piece
            .text
            .get(had - piece.offset..)
            .filter(|t| !t.is_empty())
        else {
            return Applied::Sent;
        };
        let text = new.to_owned();
        let event = if piece.thinking {
            self.thinking = piece.offset + piece.text.len();
            TurnEvent::Thinking { text }
        } else {
            self.content = piece.offset + piece.text.len();
            TurnEvent::Delta { text }
        };
        if self.send(out, event).await {
            Applied::Sent
        } else {
            Applied::Gone
        }
    }
}

/// Sends the reply of `turn_id` to `out` until it ends (then `Finished`), the reader goes, or
/// the reply is continued. `reply` is its row as just read, still streaming.
#[allow(
    clippy::too_many_arguments,
    reason = "what one reader of another replica's turn needs"
)]
pub(super) async fn follow(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    reply: MessageView,
    mut saves: watch::Receiver<u64>,
    mut texts: broadcast::Receiver<TextPiece>,
    heartbeat: Duration,
    out: &mpsc::Sender<StreamLine>,
) {
    let turn_id = reply.turn_id;
    // Asked before the row is caught up with: a piece sent meanwhile only repeats it.
    if let Err(e) = replicas::tell(db, Signal::Watch(turn_id)).await {
        tracing::warn!("could not ask for a reply's text as it comes: {e}");
    }
    let mut sent = Sent {
        seq: 0,
        run: reply.run,
        content: 0,
        thinking: 0,
        last: tokio::time::Instant::now(),
    };
    let started = TurnEvent::Started {
        conversation_id,
        message_id: reply.id,
        model: reply.model.clone().unwrap_or_default(),
        run: reply.run,
        system_prompt_revision: reply.system_prompt_revision,
    };
    if !sent.send(out, started).await {
        return;
    }
    let mut read = Some(reply);
    loop {
        if let Some(reply) = read.take() {
            let status = reply.outcome.status;
            let outcome = reply.outcome.clone();
            if !sent.catch_up(out, reply).await {
                return;
            }
            if status != MessageStatus::Streaming {
                sent.send(out, TurnEvent::Finished(outcome)).await;
                return;
            }
        }
        let read_row = tokio::select! {
            changed = saves.changed() => {
                if changed.is_err() {
                    return;
                }
                true
            }
            piece = texts.recv() => match piece {
                Ok(piece) if piece.turn == turn_id => match sent.apply(out, piece).await {
                    Applied::Sent => false,
                    Applied::Gap => true,
                    Applied::Gone => return,
                },
                Ok(_) => false,
                // Missed some: the row has them.
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = tokio::time::sleep(LOOK_EVERY) => true,
        };
        if sent.last.elapsed() >= heartbeat {
            if out.send(StreamLine::Heartbeat).await.is_err() {
                return;
            }
            sent.last = tokio::time::Instant::now();
        }
        if !read_row {
            continue;
        }
        read = match db::turn(db, owner, turn_id).await {
            Ok(Some((_, reply, _))) => Some(reply),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("could not read a reply another replica writes: {e}");
                None
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(offset: usize, text: &str) -> TextPiece {
        TextPiece {
            turn: Uuid::nil(),
            thinking: false,
            offset,
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn pieces_extend_the_text_once_and_a_lost_one_sends_the_reader_to_the_row() {
        let (out, mut lines) = mpsc::channel(16);
        let mut sent = Sent {
            seq: 1,
            run: 1,
            content: 5,
            thinking: 0,
            last: tokio::time::Instant::now(),
        };
        // Already sent (the row had it): nothing goes out.
        assert!(matches!(
            sent.apply(&out, piece(0, "Hello")).await,
            Applied::Sent
        ));
        // Overlapping what was sent: only the rest goes out.
        assert!(matches!(
            sent.apply(&out, piece(3, "lo, wo")).await,
            Applied::Sent
        ));
        // Right after it.
        assert!(matches!(
            sent.apply(&out, piece(9, "rld")).await,
            Applied::Sent
        ));
        // Past it: one was lost.
        assert!(matches!(
            sent.apply(&out, piece(20, "!")).await,
            Applied::Gap
        ));
        drop(out);
        let mut texts = Vec::new();
        while let Some(StreamLine::Event(event)) = lines.recv().await {
            if let TurnEvent::Delta { text } = event.event {
                texts.push(text);
            }
        }
        assert_eq!(texts, [", wo", "rld"]);
        assert_eq!(sent.content, "Hello, world".len());
    }
}
