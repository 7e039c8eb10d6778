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
    /// The page offers a password change: the account has a password of its own (an identity
    /// provider's people sign in there) and password sign-in is on.
    pub can_change_password: bool,
}

/// What the sign-in page needs to know before anyone is signed in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignInInfo {
    pub open_signup: bool,
    /// The OpenID Connect provider's name for the "Sign in with …" button; `None`: no provider.
    #[serde(default)]
    pub single_sign_on: Option<String>,
    /// Whether the username and password form signs in (off when only the provider does).
    #[serde(default = "yes")]
    pub passwords: bool,
}

fn yes() -> bool {
    true
}

/// Why a sign-in through the identity provider did not happen, as the sign-in page's address
/// carries it (`/signin?oidc=<code>`): a fixed word, so nothing the provider sent reaches the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OidcRefusal {
    /// No sign-in was under way in this browser, or it took too long, or its state was not ours.
    Expired,
    /// The provider did not sign the person in (they cancelled, or it refused).
    Denied,
    /// The provider could not be reached or answered with something unusable.
    Unreachable,
    /// The ID token failed a check: signature, issuer, audience, expiry or nonce.
    Invalid,
    /// The person has no account and their address or groups do not allow one.
    NotAllowed,
    /// The account is disabled.
    Disabled,
    /// Too many sign-ins from one address.
    Busy,
    /// No free username could be made for the person.
    NoName,
}

impl OidcRefusal {
    const ALL: [(Self, &'static str); 8] = [
        (Self::Expired, "expired"),
        (Self::Denied, "denied"),
        (Self::Unreachable, "unreachable"),
        (Self::Invalid, "invalid"),
        (Self::NotAllowed, "not-allowed"),
        (Self::Disabled, "disabled"),
        (Self::Busy, "busy"),
        (Self::NoName, "no-name"),
    ];

    pub fn code(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(r, _)| *r == self)
            .map_or("invalid", |(_, code)| code)
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, c)| *c == code).map(|(r, _)| *r)
    }

    /// What the sign-in page says; `provider` is the configured name of the provider.
    pub fn words(self, provider: &str) -> String {
        match self {
            Self::Expired => "That sign-in was not started here, took too long, or was already \
                              used. Please sign in again."
                .into(),
            Self::Denied => format!("{provider} did not sign you in."),
            Self::Unreachable => format!(
                "Rill could not reach {provider}. Try again in a moment; if it keeps \
                 happening, tell your admin."
            ),
            Self::Invalid => format!(
                "{provider}'s answer did not pass Rill's checks, so you are not signed in. \
                 Tell your admin."
            ),
            Self::NotAllowed => format!(
                "Your {provider} account may not use Rill. Ask an admin to allow your email \
                 domain or group."
            ),
            Self::Disabled => "This account is disabled; ask an admin.".into(),
            Self::Busy => "Too many sign-ins from your network; try again in a minute.".into(),
            Self::NoName => "Rill could not give you a username; tell your admin.".into(),
        }
    }
}

/// A user as the admin page lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    /// A service account: API keys only, never signed in.
    #[serde(default)]
    pub service: bool,
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
    /// The monthly budget a new user starts with; `None`: no limit. Open sign-up needs one.
    pub default_budget_usd: Option<f64>,
    /// Everyone's spending together per calendar month (UTC); `None`: no cap.
    #[serde(default)]
    pub monthly_cap_usd: Option<f64>,
    /// People may share conversations by link; off, every link answers 404 (and comes back
    /// when it is on again, unless revoked).
    #[serde(default = "on")]
    pub sharing: bool,
}

fn on() -> bool {
    true
}

impl SiteSettings {
    /// Sign-up is open only with a budget for the people it lets in (settings stored before
    /// that rule may say open without one).
    pub fn signup_is_open(&self) -> bool {
        self.open_signup && self.default_budget_usd.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// For paging: entries older than one are those with a smaller id.
    pub id: i64,
    /// `2026-11-27 14:55:02` (UTC); for a repeated event, the last time.
    pub at: String,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub address: Option<String>,
    pub detail: Option<String>,
    /// How many times it happened (failed sign-ins are counted an hour at a time).
    pub count: u32,
}

/// An account with failed sign-ins in the last hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lockout {
    pub username: String,
    pub failures: u32,
    /// Locked to browsers it never signed in from, for this many more seconds.
    pub locked_for_secs: Option<u64>,
}

/// Accounts with failed sign-ins the admin page lists: those with the most failures. Names
/// with no account are counted too, so a guesser could make the whole list very long.
pub const LOCKOUTS_SHOWN: usize = 50;

/// Everything the admin page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminView {
    /// The first page of users by name.
    pub users: Vec<UserView>,
    pub settings: SiteSettings,
    /// Everyone's spending this month, against `settings.monthly_cap_usd`.
    pub site_month_cost_usd: f64,
    /// At most [`LOCKOUTS_SHOWN`], the most failures first.
    pub lockouts: Vec<Lockout>,
    /// Accounts (and names) with failed sign-ins in the last hour, listed or not.
    pub lockouts_total: u32,
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
    /// The budgets the person falls under (their own, their groups', their API keys'), for the
    /// warnings.
    pub budgets: Vec<crate::model::groups::BudgetUse>,
    /// The groups the person is in, each one's month.
    pub groups: Vec<crate::model::groups::GroupTotal>,
}

/// One model's replies on one day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// `2026-11-27` (UTC).
    pub day: String,
    pub model: String,
    /// Conversations' titles, not replies: `replies` counts the titles asked.
    #[serde(default)]
    pub titles: bool,
    /// The API key these runs were made with (`/v1`), by its name; `None`: in the page.
    #[serde(default)]
    pub api_key: Option<String>,
    pub replies: u32,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Some figures are estimates (stopped or failed replies the provider did not count).
    pub estimated: bool,
}

/// The colours a person chose for the page. `System` follows the device (`prefers-color-scheme`).
/// Kept in a cookie the server reads when it renders a page (so the first paint is right) and,
/// with accounts, on the account (a new browser gets it at sign-in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Light, Theme::Dark];

    pub fn as_str(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    /// Anything unknown is `System`: a cookie is whatever the browser sends.
    pub fn parse(text: &str) -> Self {
        match text {
            "light" => Theme::Light,
            "dark" => Theme::Dark,
            _ => Theme::System,
        }
    }

    /// The `data-theme` attribute of `<html>`: none when the device decides.
    pub fn attribute(self) -> Option<&'static str> {
        (self != Theme::System).then(|| self.as_str())
    }

    pub fn label(self) -> &'static str {
        match self {
            Theme::System => "System",
            Theme::Light => "Light",
            Theme::Dark => "Dark",
        }
    }
}
