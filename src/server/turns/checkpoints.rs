//! Saving the text of running replies: one task writes every running reply's new text in one
//! transaction each [`INTERVAL`], so a crash loses at most about that much of any reply, and many
//! turns at once cost one write lock per interval rather than one each. What each reply writes
//! is mostly a piece, the text since its last checkpoint (see `LiveTurn::unsaved_text`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::registry::Registry;
use crate::server::db::{self, Checkpoint, Db, ReplyRef};

/// How often running text is written to the database.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// Writes checkpoints until `stop` is cancelled.
pub async fn write_checkpoints(db: Db, registry: Arc<Registry>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut saved = Vec::new();
        let mut batch = Vec::new();
        for turn in registry.running() {
            let (Some(record), Some(unsaved)) = (turn.record(), turn.unsaved_text()) else {
                continue;
            };
            batch.push(Checkpoint {
                reply: ReplyRef {
                    owner: record.owner.clone(),
                    message_id: record.reply.id,
                    run: record.reply.run,
                },
                text: unsaved.text.clone(),
                whole: unsaved.whole,
            });
            saved.push((turn, unsaved));
        }
        match db::save_checkpoints(&db, &batch).await {
            Ok(()) => {
                for (turn, unsaved) in &saved {
                    turn.saved(unsaved);
                }
            }
            // The next tick tries again with the newer text.
            Err(e) => tracing::warn!(replies = batch.len(), "could not save running replies: {e}"),
        }
    }
}
