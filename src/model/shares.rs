//! Wire types of share links: what a person sees of the links they made.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A link anyone may open to read a snapshot of one conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharedLink {
    /// The link's own id (what Revoke names; the token is in `path`).
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// The conversation's title when it was shared.
    pub title: String,
    /// `/s/<token>`: the page's address on this server.
    pub path: String,
    /// When it was made, unix milliseconds.
    pub created_at: i64,
}

/// Links one person may have at once (a bound on their list and on what a page of it costs).
pub const MAX_SHARES: usize = 200;
