//! Following a turn another replica runs (issue 28): its rows are the truth, read again each
//! time a replica says it saved running text (`Signal::Saved`, at the commit of every
//! checkpoint and every ending) and at least every [`LOOK_EVERY`]. The reader gets the same
//! events as from a live log: `Started`, the text so far, then what each checkpoint added,
//! then `Finished` — so the text arrives in checkpoint-sized pieces (every 250 ms) rather than
//! token by token.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::model::{MessageStatus, MessageView, StreamLine, TurnEnvelope, TurnEvent};
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

/// Sends the reply of `turn_id` to `out` until it ends (then `Finished`), the reader goes, or
/// the reply is continued. `reply` is its row as just read, still streaming.
pub(super) async fn follow(
    db: &Db,
    owner: &Owner,
    conversation_id: Uuid,
    reply: MessageView,
    mut saves: watch::Receiver<u64>,
    heartbeat: Duration,
    out: &mpsc::Sender<StreamLine>,
) {
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
    let turn_id = reply.turn_id;
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
        tokio::select! {
            changed = saves.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(LOOK_EVERY) => {}
        }
        if sent.last.elapsed() >= heartbeat {
            if out.send(StreamLine::Heartbeat).await.is_err() {
                return;
            }
            sent.last = tokio::time::Instant::now();
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
