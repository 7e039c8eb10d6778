//! This replica among others (issue 28, on Postgres; see `db::replicas`): it keeps its lease,
//! marks interrupted the replies of replicas that died, and acts on what the others tell it —
//! Stop a turn it runs, a turn begun in a conversation its pages follow, running text saved.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::budget;
use super::deps::Deps;
use super::live::CancelReason;
use super::registry::Registry;
use crate::server::db::replicas::{self, Signal, Signals, LEASE, RENEW_EVERY};
use crate::server::db::{Db, DbError, Engine};

/// Joins the replicas before any turn begins: takes a lease, then marks interrupted the replies
/// no living replica writes (after a crash or kill: on SQLite all that were left streaming) and
/// settles their runs. Returns how many replies were interrupted.
pub async fn join(db: &Db, prices: &crate::server::pricing::PriceTable) -> Result<usize, DbError> {
    replicas::register(db).await?;
    interrupt_abandoned(db, prices).await
}

async fn interrupt_abandoned(
    db: &Db,
    prices: &crate::server::pricing::PriceTable,
) -> Result<usize, DbError> {
    let interrupted = crate::server::db::interrupt_abandoned(db, LEASE).await?;
    for message_id in &interrupted {
        budget::settle_open_runs(db, prices, Some(*message_id)).await?;
    }
    Ok(interrupted.len())
}

/// Starts what a replica among others does (nothing on SQLite, whose one process needs no
/// lease and hears from no one).
pub(super) fn start(deps: &Arc<Deps>, registry: &Arc<Registry>, stop: &CancellationToken) {
    if deps.db.engine() != Engine::Postgres {
        return;
    }
    tokio::spawn(keep_lease(deps.clone(), stop.clone()));
    tokio::spawn(hear(deps.db.clone(), registry.clone(), stop.clone()));
}

/// Renews the lease, looks for abandoned replies and forgets the shared limits' old counts
/// every [`RENEW_EVERY`] until `stop`.
async fn keep_lease(deps: Arc<Deps>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = replicas::renew(&deps.db).await {
            tracing::warn!("could not renew this replica's lease: {e}");
            continue;
        }
        match interrupt_abandoned(&deps.db, &deps.prices).await {
            Ok(0) => {}
            Ok(replies) => tracing::warn!(
                replies,
                "replies of a replica that stopped renewing its lease were marked interrupted"
            ),
            Err(e) => tracing::warn!("could not look for abandoned replies: {e}"),
        }
        if let Err(e) = crate::server::db::limits::forget_old(&deps.db).await {
            tracing::warn!("could not forget old counts of runs: {e}");
        }
    }
}

/// Acts on the other replicas' signals until `stop`; listens again after a failure.
async fn hear(db: Db, registry: Arc<Registry>, stop: CancellationToken) {
    const AGAIN_AFTER: Duration = Duration::from_secs(1);
    loop {
        let listening = tokio::select! {
            () = stop.cancelled() => return,
            listening = Signals::listen(&db) => listening,
        };
        let mut signals = match listening {
            Ok(Some(signals)) => signals,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("could not listen to the other replicas: {e}");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(AGAIN_AFTER) => continue,
                }
            }
        };
        // Whatever was said while this replica was not listening is read from the rows.
        registry.poke_all();
        loop {
            let signal = tokio::select! {
                () = stop.cancelled() => return,
                signal = signals.next() => signal,
            };
            match signal {
                Ok(Signal::Stop { turn, owner }) => {
                    if let Some(turn) = registry.get(turn).filter(|t| t.owner == owner) {
                        turn.cancel(CancelReason::Stop);
                    }
                }
                Ok(Signal::Began(conversation_id)) => registry.poke(conversation_id),
                Ok(Signal::Saved) => registry.saved_elsewhere(),
                Err(e) => {
                    tracing::warn!("lost the other replicas' signals: {e}");
                    break;
                }
            }
        }
    }
}
