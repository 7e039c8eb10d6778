//! Upkeep the server does by itself, hourly, for as long as it runs.

use std::time::Duration;

use super::db::{self, Db};
use super::sessions;

const EVERY: Duration = Duration::from_secs(3600);
/// How long an uploaded file that no message carries is kept.
const UNSENT_FILES_KEPT_MS: i64 = 24 * 3600 * 1000;

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

/// Empties the text of conversations deleted longer than `after` ago (see `db::purge_deleted`),
/// and deletes files uploaded a day ago that no message carries.
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
        // Files uploaded but never sent are kept a day (a draft waiting to be sent).
        let day_ago = db::now_ms().saturating_sub(UNSENT_FILES_KEPT_MS);
        match db::attachments::delete_unsent(&db, day_ago).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "deleted files never sent"),
            Err(e) => tracing::warn!("could not delete files never sent: {e}"),
        }
    }
}

/// Forgets the counts of the limits and throttles replicas share (`db::limits`,
/// `db::throttles`) once no check reads them (Postgres; nothing to do on SQLite).
pub async fn forget_old_counts(db: Db) {
    let mut hourly = tokio::time::interval(EVERY);
    loop {
        hourly.tick().await;
        if let Err(e) = db::limits::forget_old(&db).await {
            tracing::warn!("could not forget old counts of runs: {e}");
        }
        if let Err(e) = db::throttles::forget_old(&db).await {
            tracing::warn!("could not forget old counts of sign-ins: {e}");
        }
    }
}
