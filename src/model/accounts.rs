//! Wire types of accounts, usage and the admin page.

use serde::{Deserialize, Serialize};

/// Who the page is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Me {
    pub username: String,
    pub is_admin: bool,
    /// Accounts mode: the page offers sign-out and a password change. False in single-user mode.
    pub accounts: bool,
    /// Signed in through the trusted proxy: sign-out and passwords are the proxy's business.
    pub via_proxy: bool,
}

/// What the sign-in page needs to know before anyone is signed in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignInInfo {
    pub open_signup: bool,
}

/// A user as the admin page lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub monthly_budget_usd: Option<f64>,
    /// Spent this calendar month (UTC), in USD.
    pub month_cost_usd: f64,
}

/// Settings an admin changes in the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteSettings {
    /// Anyone who reaches the sign-in page may create an account.
    pub open_signup: bool,
    /// The monthly budget a new user starts with; `None`: no limit.
    pub default_budget_usd: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// `2026-11-27 14:55:02` (UTC).
    pub at: String,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub address: Option<String>,
    pub detail: Option<String>,
}

/// Everything the admin page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminView {
    pub users: Vec<UserView>,
    pub settings: SiteSettings,
    pub audit: Vec<AuditEntry>,
}

/// A person's spending this month, by day and model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub username: String,
    /// `2026-11`: the calendar month (UTC) budgets count.
    pub month: String,
    pub month_cost_usd: f64,
    pub budget_usd: Option<f64>,
    pub rows: Vec<UsageRow>,
}

/// One model's replies on one day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// `2026-11-27` (UTC).
    pub day: String,
    pub model: String,
    pub replies: u32,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Some figures are estimates (stopped or failed replies the provider did not count).
    pub estimated: bool,
}
