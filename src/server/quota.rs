//! A person's storage quota: what they store (message text, titles, system prompts) is counted by
//! the database's own triggers (`storage_used`), and a change that would store more than the
//! quota is refused, in words, before anything is written. A send is checked inside the
//! transaction that stores it. Replies being written when the quota is reached may finish past
//! it: at most `RILL_MAX_RUNNING_PER_USER` of them, each at most `RILL_MAX_REPLY_CHARS` of text
//! and as much thinking. A reply's stored rendering is derived data and not counted.

use super::db::{self, Db, Owner};
use crate::error::ApiError;
use crate::format::byte_size;

/// What the person is told when `adding` bytes would not fit.
pub fn refusal(used: u64, quota: u64) -> String {
    format!(
        "your conversations take {} of the {} this server keeps for each person; delete some \
         to make room",
        byte_size(used),
        byte_size(quota)
    )
}

/// Whether `adding` more bytes fit under the owner's `quota` (`None`: no quota).
pub async fn room_for(
    db: &Db,
    quota: Option<u64>,
    owner: &Owner,
    adding: usize,
) -> Result<(), ApiError> {
    let Some(quota) = quota else {
        return Ok(());
    };
    let used = db::stored_bytes(db, owner).await?;
    let adding = u64::try_from(adding).unwrap_or(u64::MAX);
    if used.saturating_add(adding) > quota {
        return Err(ApiError::InsufficientStorage(refusal(used, quota)));
    }
    Ok(())
}
