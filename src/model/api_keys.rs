//! Wire types of API keys: what a person sees of the keys they made for Rill's OpenAI-compatible
//! API (`/v1`), and what they ask when making one.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One key, as its owner's list shows it (never the key itself, which is shown once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The key's first characters (`rill_1a2b3c4d`), to tell keys apart.
    pub prefix: String,
    pub monthly_budget_usd: Option<f64>,
    /// What the key has spent (and holds for requests running) this month, USD.
    pub month_spent_usd: f64,
    /// Unix milliseconds.
    pub expires_at: Option<i64>,
    pub created_at: i64,
    /// The last request it made, to a minute; `None`: never used.
    pub last_used_at: Option<i64>,
}

/// What a person asks for when making a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub name: String,
    #[serde(default)]
    pub monthly_budget_usd: Option<f64>,
    /// Days from now until the key stops working; `None`: it does not expire.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A key just made: the key itself, shown this once, and its entry in the list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub key: String,
    pub view: ApiKeyView,
}

/// Keys one person may hold unrevoked at once (a bound on their list).
pub const MAX_API_KEYS: usize = 50;
/// Characters of a key's name.
pub const MAX_KEY_NAME_CHARS: usize = 80;
/// The longest a key may live, in days (ten years: long enough to mean "no expiry" on purpose).
pub const MAX_KEY_DAYS: u32 = 3_650;
