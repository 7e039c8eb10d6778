//! Upkeep the server does by itself, hourly, for as long as it runs.

use std::time::Duration;

use super::db::{self, Db};
use super::sessions;

const EVERY: Duration = Duration::from_secs(3600);

/// Deletes expired sessions (the store only ignores them).
pub async fn sweep_expired_sessions(store: sessions::Store) {
    use tower_sessions::session_store::ExpiredDeletion;
    let mut hourly = tokio::time::interval(EVERY);
    loop {
        hourly.tick().await;
        if let Err(e) = store.delete_expired().await {
            tracing::warn!("could not delete expired sessions: {e}");
        }
    }
}

/// Empties the text of conversations deleted longer than `after` ago (see `db::purge_deleted`).
pub async fn purge_deleted_conversations(db: Db, after: Duration) {
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    let mut hourly = tokio::time::interval(EVERY);
    loop {
        hourly.tick().await;
        match db::purge_deleted(&db, db::now_ms().saturating_sub(after_ms)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(conversations = n, "purged deleted conversations"),
            Err(e) => tracing::warn!("could not purge deleted conversations: {e}"),
        }
    }
}
