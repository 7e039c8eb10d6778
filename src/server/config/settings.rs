//! The table of settings: every environment variable Rill reads is named once, here, with what it
//! does (one line; `.env.example` says more), what it accepts and its value when unset. [`Env`]
//! reads a setting from the table, so parsing, defaults, bounds and error messages are the same
//! for every setting of a kind. A test holds `.env.example` to this table.

use std::fmt::Display;
use std::time::Duration;

use super::{AuthMode, ConfigError, LogFormat};

/// One environment variable.
#[derive(Debug)]
pub struct Setting<K> {
    pub name: &'static str,
    /// What it does, in a line.
    pub doc: &'static str,
    /// What it accepts, and its value when unset.
    pub kind: K,
}

/// Text (a path, an address, a name) with a default.
#[derive(Debug)]
pub struct Text(pub &'static str);

/// Text with no default: unset means none, or something worked out at start-up. Keys are this
/// kind, so their values never appear in an error.
#[derive(Debug)]
pub struct Optional;

/// Comma-separated items, blanks skipped; the default is written the same way (`""`: none).
#[derive(Debug)]
pub struct List(pub &'static str);

/// Off unless set to exactly `yes`: these switch a safeguard off, so nothing looser counts.
#[derive(Debug)]
pub struct Yes;

/// One of a few words, each meaning a value; the first is the default.
#[derive(Debug)]
pub struct Words<T: 'static>(pub &'static [(&'static str, T)]);

/// A whole number up to `most` (the largest its field holds, at most). Less than `least` counts
/// as `least`, since a limit of 0 would stop everything rather than nothing.
#[derive(Debug)]
pub struct Whole {
    pub default: u64,
    pub least: u64,
    pub most: u64,
}

/// A [`Whole`] number without a default: unset, the server works one out from the machine.
#[derive(Debug)]
pub struct AutoWhole {
    pub least: u64,
    pub most: u64,
}

/// A time in whole seconds. Less than `least` counts as `least`; more than [`MAX_SECS`] counts
/// as that, so "no limit" written as a huge number is a long limit and every deadline stays
/// computable.
#[derive(Debug)]
pub struct Seconds {
    pub default: u64,
    pub least: u64,
}

/// A whole number of `unit`s from `least` to `most`; anything else is refused.
#[derive(Debug)]
pub struct Range {
    pub default: u64,
    pub least: u64,
    pub most: u64,
    pub unit: &'static str,
}

/// The longest time a [`Seconds`] setting can ask for: 30 days.
pub const MAX_SECS: u64 = 30 * 24 * 3600;
const U32: u64 = u32::MAX as u64;
const USIZE: u64 = usize::MAX as u64;

/// Defines each setting as a constant, its one doc line both its rustdoc and its `doc`, and
/// lists them all in [`ALL`].
macro_rules! settings {
    ($(#[doc = $doc:literal] $id:ident: $kind:ty = $name:literal, $value:expr;)*) => {
        $(
            #[doc = $doc]
            pub const $id: Setting<$kind> = Setting { name: $name, doc: $doc, kind: $value };
        )*
        /// Every setting, in the order `.env.example` documents them.
        pub const ALL: &[&dyn Described] = &[$(&$id),*];
    };
}

settings! {
    // Storage and who may use Rill.
    /// SQLite database file (its directory is created if missing), or a `postgres://` URL.
    DATABASE: Text = "RILL_DATABASE", Text("data/rill.db");
    /// Start even if other accounts on the machine can read the database's files.
    UNSAFE_FILE_MODES: Yes = "RILL_UNSAFE_FILE_MODES", Yes;
    /// Who may use Rill: one owner without sign-in, or accounts.
    AUTH: Words<AuthMode> = "RILL_AUTH",
        Words(&[("single-user", AuthMode::SingleUser), ("accounts", AuthMode::Accounts)]);
    /// In single-user mode, the owner of every conversation.
    OWNER: Text = "RILL_OWNER", Text("local");
    /// Serve a non-loopback address without accounts anyway.
    UNSAFE_NO_AUTH_ON_NETWORK: Yes = "RILL_UNSAFE_NO_AUTH_ON_NETWORK", Yes;
    /// The address people use: its host is allowed, and https makes the session cookie Secure.
    PUBLIC_URL: Optional = "RILL_PUBLIC_URL", Optional;
    /// More host names to answer for.
    ALLOWED_HOSTS: List = "RILL_ALLOWED_HOSTS", List("");
    /// Origins whose web pages may call the API (/v1) with a key (`*`: any).
    API_CORS_ORIGINS: List = "RILL_API_CORS_ORIGINS", List("");
    /// The header in which a trusted proxy names the signed-in user (accounts only).
    SSO_HEADER: Optional = "RILL_SSO_HEADER", Optional;
    /// Proxies (addresses or CIDR ranges) whose forwarding and sign-on headers are believed.
    TRUSTED_PROXIES: List = "RILL_TRUSTED_PROXIES", List("");
    /// A sign-in lasts at most this long, however busy its session.
    SESSION_MAX_DAYS: Range = "RILL_SESSION_MAX_DAYS",
        Range { default: 90, least: 1, most: 3650, unit: "days" };

    /// The OpenID Connect provider's issuer URL: people sign in through it (accounts only).
    OIDC_ISSUER: Optional = "RILL_OIDC_ISSUER", Optional;
    /// Rill's client id at the provider.
    OIDC_CLIENT_ID: Optional = "RILL_OIDC_CLIENT_ID", Optional;
    /// Rill's client secret at the provider.
    OIDC_CLIENT_SECRET: Optional = "RILL_OIDC_CLIENT_SECRET", Optional;
    /// Scopes asked for besides `openid`.
    OIDC_SCOPES: List = "RILL_OIDC_SCOPES", List("email,profile");
    /// Where the provider sends people back (default: the public URL's /auth/oidc/callback).
    OIDC_REDIRECT_URL: Optional = "RILL_OIDC_REDIRECT_URL", Optional;
    /// The provider's name on the sign-in page's button ("Sign in with …").
    OIDC_NAME: Text = "RILL_OIDC_NAME", Text("single sign-on");
    /// Email domains whose people get an account at their first sign-in (`*`: any).
    OIDC_ALLOWED_DOMAINS: List = "RILL_OIDC_ALLOWED_DOMAINS", List("");
    /// Groups whose members get an account at their first sign-in, whatever their address.
    OIDC_ALLOWED_GROUPS: List = "RILL_OIDC_ALLOWED_GROUPS", List("");
    /// The ID token's claim that lists a person's groups.
    OIDC_GROUPS_CLAIM: Text = "RILL_OIDC_GROUPS_CLAIM", Text("groups");
    /// Members of this group are Rill's admins; the provider's other people are not.
    OIDC_ADMIN_GROUP: Optional = "RILL_OIDC_ADMIN_GROUP", Optional;
    /// Whether passwords still sign in (`off` needs an OpenID Connect provider).
    PASSWORD_SIGN_IN: Words<bool> = "RILL_PASSWORD_SIGN_IN", Words(&[("on", true), ("off", false)]);

    // What one person may ask.
    /// Largest request body in bytes; more is refused with 413.
    MAX_REQUEST_BYTES: Whole = "RILL_MAX_REQUEST_BYTES",
        Whole { default: 1 << 20, least: 64 << 10, most: USIZE };
    /// Replies one person may have being written at once.
    MAX_RUNNING_PER_USER: Whole = "RILL_MAX_RUNNING_PER_USER",
        Whole { default: 4, least: 1, most: USIZE };
    /// Messages (sends and Continues) one person may start per minute.
    TURNS_PER_MINUTE: Whole = "RILL_TURNS_PER_MINUTE", Whole { default: 30, least: 1, most: U32 };
    /// Event streams one person may hold open at once.
    MAX_STREAMS_PER_USER: Whole = "RILL_MAX_STREAMS_PER_USER",
        Whole { default: 32, least: 1, most: USIZE };
    /// People with a budget may use models without a price, counted as free.
    ALLOW_UNPRICED_MODELS: Yes = "RILL_ALLOW_UNPRICED_MODELS", Yes;
    /// A URL POSTed a small JSON once a month when spending reaches 80 % and 90 % of a budget.
    BUDGET_WEBHOOK: Optional = "RILL_BUDGET_WEBHOOK", Optional;
    /// Changes other than sends one person may make per minute.
    WRITES_PER_MINUTE: Whole = "RILL_WRITES_PER_MINUTE", Whole { default: 60, least: 1, most: U32 };
    /// Megabytes of text one person may store; 0: no quota.
    STORAGE_QUOTA_MB: Whole = "RILL_STORAGE_QUOTA_MB",
        Whole { default: 1024, least: 0, most: u64::MAX >> 20 };
    /// Megabytes an import's upload may be.
    MAX_IMPORT_MB: Whole = "RILL_MAX_IMPORT_MB",
        Whole { default: 512, least: 1, most: u64::MAX >> 20 };
    /// Megabytes one attached file may be.
    MAX_ATTACHMENT_MB: Whole = "RILL_MAX_ATTACHMENT_MB",
        Whole { default: 20, least: 1, most: u64::MAX >> 20 };
    /// Megabytes of attached files one message may carry.
    MAX_MESSAGE_ATTACHMENTS_MB: Whole = "RILL_MAX_MESSAGE_ATTACHMENTS_MB",
        Whole { default: 50, least: 1, most: u64::MAX >> 20 };
    /// Megabytes of files one person may upload in a day.
    ATTACHMENTS_MB_PER_DAY: Whole = "RILL_ATTACHMENTS_MB_PER_DAY",
        Whole { default: 500, least: 1, most: u64::MAX >> 20 };
    /// Seconds a PDF's text may take to read (its reader is killed then).
    PDF_READ_SECONDS: Whole = "RILL_PDF_READ_SECONDS", Whole { default: 45, least: 1, most: 3600 };
    /// Megabytes of memory the reader of one PDF may take.
    PDF_READ_MB: Whole = "RILL_PDF_READ_MB", Whole { default: 768, least: 64, most: 1 << 20 };

    // Connections.
    /// Open connections in all (default: from the open-files limit).
    MAX_CONNECTIONS: AutoWhole = "RILL_MAX_CONNECTIONS", AutoWhole { least: 1, most: USIZE };
    /// Open connections from one client address (default: a share of the total).
    MAX_CONNECTIONS_PER_ADDRESS: AutoWhole = "RILL_MAX_CONNECTIONS_PER_ADDRESS",
        AutoWhole { least: 1, most: USIZE };
    /// A request's headers must arrive within this; an idle kept-alive connection is closed.
    HEADER_TIMEOUT_SECS: Seconds = "RILL_HEADER_TIMEOUT_SECS", Seconds { default: 15, least: 1 };
    /// A request's body must arrive whole within this (later: 408).
    BODY_TIMEOUT_SECS: Seconds = "RILL_BODY_TIMEOUT_SECS", Seconds { default: 30, least: 1 };

    // Hosted providers: each is added when its key is set.
    /// OpenAI's API key.
    OPENAI_KEY: Optional = "OPENAI_API_KEY", Optional;
    /// OpenAI's API root.
    OPENAI_BASE_URL: Text = "RILL_OPENAI_BASE_URL", Text("https://api.openai.com/v1");
    /// OpenAI models offered.
    OPENAI_MODELS: List = "RILL_OPENAI_MODELS", List("gpt-4o-mini,gpt-4o");
    /// Anthropic's API key.
    ANTHROPIC_KEY: Optional = "ANTHROPIC_API_KEY", Optional;
    /// Anthropic's API root.
    ANTHROPIC_BASE_URL: Text = "RILL_ANTHROPIC_BASE_URL", Text("https://api.anthropic.com/v1");
    /// Anthropic models offered.
    ANTHROPIC_MODELS: List = "RILL_ANTHROPIC_MODELS", List("claude-sonnet-4-5,claude-haiku-4-5");
    /// Google Gemini's API key.
    GEMINI_KEY: Optional = "GEMINI_API_KEY", Optional;
    /// Google Gemini's API root.
    GEMINI_BASE_URL: Text = "RILL_GEMINI_BASE_URL",
        Text("https://generativelanguage.googleapis.com/v1beta");
    /// Google Gemini models offered.
    GEMINI_MODELS: List = "RILL_GEMINI_MODELS", List("gemini-2.5-flash,gemini-2.5-pro");

    // An OpenAI-compatible server.
    /// Its API root; setting it adds the provider.
    OPENAI_COMPAT_URL: Optional = "RILL_OPENAI_COMPAT_URL", Optional;
    /// Its provider id, the prefix of its model ids.
    OPENAI_COMPAT_NAME: Text = "RILL_OPENAI_COMPAT_NAME", Text("compat");
    /// Models to offer besides those the server lists.
    OPENAI_COMPAT_MODELS: List = "RILL_OPENAI_COMPAT_MODELS", List("");
    /// Its API key, if it wants one.
    OPENAI_COMPAT_API_KEY: Optional = "RILL_OPENAI_COMPAT_API_KEY", Optional;

    // The built-in local model.
    /// Its GGUF file, or `off`.
    LOCAL_MODEL: Text = "RILL_LOCAL_MODEL", Text("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    /// Inference threads.
    LOCAL_THREADS: Whole = "RILL_LOCAL_THREADS", Whole { default: 1, least: 1, most: USIZE };
    /// Longest local reply, in tokens.
    LOCAL_MAX_TOKENS: Whole = "RILL_LOCAL_MAX_TOKENS", Whole { default: 512, least: 1, most: U32 };
    /// Token cells of its key/value cache: the longest prompt plus reply.
    LOCAL_CONTEXT: Whole = "RILL_LOCAL_CONTEXT", Whole { default: 8192, least: 256, most: USIZE };
    /// Requests that may wait behind the one it is generating.
    LOCAL_QUEUE: Whole = "RILL_LOCAL_QUEUE", Whole { default: 8, least: 0, most: USIZE };
    /// Longest a request waits for it before being told it is busy.
    LOCAL_QUEUE_WAIT_SECS: Seconds = "RILL_LOCAL_QUEUE_WAIT_SECS",
        Seconds { default: 120, least: 1 };

    /// A TOML file with more providers, prices, the database and the default model.
    CONFIG: Optional = "RILL_CONFIG", Optional;

    // Bounds on every turn.
    /// A provider silent this long fails the turn.
    PROVIDER_IDLE_SECS: Seconds = "RILL_PROVIDER_IDLE_SECS", Seconds { default: 120, least: 1 };
    /// Longest a turn may run, waiting for a busy model included.
    TURN_MAX_SECS: Seconds = "RILL_TURN_MAX_SECS", Seconds { default: 900, least: 1 };
    /// Cap on tokens generated per reply.
    MAX_OUTPUT_TOKENS: Whole = "RILL_MAX_OUTPUT_TOKENS",
        Whole { default: 8192, least: 1, most: U32 };
    /// Longest reply kept, in characters.
    MAX_REPLY_CHARS: Whole = "RILL_MAX_REPLY_CHARS",
        Whole { default: 400_000, least: 1, most: USIZE };
    /// Context window assumed for models whose window is unknown.
    DEFAULT_CONTEXT_TOKENS: Whole = "RILL_DEFAULT_CONTEXT_TOKENS",
        Whole { default: 8192, least: 512, most: U32 };
    /// On SIGTERM, how long running replies get to finish.
    SHUTDOWN_GRACE_SECS: Seconds = "RILL_SHUTDOWN_GRACE_SECS", Seconds { default: 8, least: 0 };

    // Conversations.
    /// The system prompt every new conversation starts with.
    DEFAULT_SYSTEM_PROMPT: Optional = "RILL_DEFAULT_SYSTEM_PROMPT", Optional;
    /// A deleted conversation's text is purged this long after.
    PURGE_DELETED_AFTER_SECS: Seconds = "RILL_PURGE_DELETED_AFTER_SECS",
        Seconds { default: 86400, least: 0 };
    /// Keep a conversation's first words as its title: no model is asked for one.
    PLAIN_TITLES: Yes = "RILL_PLAIN_TITLES", Yes;
    /// Model for new conversations, as provider/model (default: the first configured).
    DEFAULT_MODEL: Optional = "RILL_DEFAULT_MODEL", Optional;
    /// Pause between the development model's words, in milliseconds.
    DEV_WORD_DELAY_MS: Whole = "RILL_DEV_WORD_DELAY_MS",
        Whole { default: 40, least: 0, most: u64::MAX };

    // Operations.
    /// Log lines as text for people or JSON objects for log shippers.
    LOG_FORMAT: Words<LogFormat> = "RILL_LOG_FORMAT",
        Words(&[("text", LogFormat::Text), ("json", LogFormat::Json)]);
    /// A bearer token that may read /metrics.
    METRICS_TOKEN: Optional = "RILL_METRICS_TOKEN", Optional;
}

/// What a kind of setting accepts, and how its default is written.
pub trait Kind: Sync {
    /// The value in force with nothing set, as `.env.example` writes it; `None` where there is
    /// nothing to write (the file may show an example instead).
    fn default_text(&self) -> Option<String>;
    /// What it accepts, in words that finish "the setting must be …".
    fn accepts(&self) -> String;
}

impl Kind for Text {
    fn default_text(&self) -> Option<String> {
        Some(self.0.into())
    }
    fn accepts(&self) -> String {
        "text".into()
    }
}

impl Kind for Optional {
    fn default_text(&self) -> Option<String> {
        None
    }
    fn accepts(&self) -> String {
        "text".into()
    }
}

impl Kind for List {
    fn default_text(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.into())
    }
    fn accepts(&self) -> String {
        "a comma-separated list".into()
    }
}

impl Kind for Yes {
    fn default_text(&self) -> Option<String> {
        Some(String::new())
    }
    fn accepts(&self) -> String {
        "yes or unset".into()
    }
}

impl<T: Sync> Kind for Words<T> {
    fn default_text(&self) -> Option<String> {
        self.0.first().map(|(word, _)| (*word).into())
    }
    fn accepts(&self) -> String {
        let words: Vec<&str> = self.0.iter().map(|(word, _)| *word).collect();
        match words.split_last() {
            Some((last, [])) => (*last).into(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => "nothing".into(),
        }
    }
}

impl Kind for Whole {
    fn default_text(&self) -> Option<String> {
        Some(self.default.to_string())
    }
    fn accepts(&self) -> String {
        whole_number(self.most)
    }
}

impl Kind for AutoWhole {
    fn default_text(&self) -> Option<String> {
        Some(String::new())
    }
    fn accepts(&self) -> String {
        whole_number(self.most)
    }
}

impl Kind for Seconds {
    fn default_text(&self) -> Option<String> {
        Some(self.default.to_string())
    }
    fn accepts(&self) -> String {
        "a whole number of seconds".into()
    }
}

impl Kind for Range {
    fn default_text(&self) -> Option<String> {
        Some(self.default.to_string())
    }
    fn accepts(&self) -> String {
        format!(
            "a whole number of {} from {} to {}",
            self.unit, self.least, self.most
        )
    }
}

fn whole_number(most: u64) -> String {
    if most == u64::MAX {
        "a whole number".into()
    } else {
        format!("a whole number up to {most}")
    }
}

/// A setting of any kind, as [`ALL`] lists it.
pub trait Described: Sync {
    fn name(&self) -> &'static str;
    fn doc(&self) -> &'static str;
    fn default_text(&self) -> Option<String>;
    fn accepts(&self) -> String;
}

impl<K: Kind> Described for Setting<K> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn doc(&self) -> &'static str {
        self.doc.trim()
    }
    fn default_text(&self) -> Option<String> {
        self.kind.default_text()
    }
    fn accepts(&self) -> String {
        self.kind.accepts()
    }
}

impl<K: Kind> Setting<K> {
    /// "NAME must be {what}, got "value"": what a refused value gets.
    pub fn refuse_as(&self, what: impl Display, got: &str) -> ConfigError {
        ConfigError::Invalid(format!("{} must be {what}, got {got:?}", self.name))
    }

    /// Refuses a value this kind of setting does not accept.
    pub fn refuse(&self, got: &str) -> ConfigError {
        self.refuse_as(self.kind.accepts(), got)
    }
}

/// Reads settings from a source of variables: the process environment, or a test's map.
pub struct Env<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The value as set, or `None`: for settings whose default comes from elsewhere (the
    /// config file) or that mean something by being set at all.
    pub fn raw<K>(&self, setting: &Setting<K>) -> Option<String> {
        (self.0)(setting.name)
    }

    /// A variable named by the config file rather than by this table (a provider's key).
    pub fn named(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    pub fn text(&self, setting: &Setting<Text>) -> String {
        self.raw(setting)
            .unwrap_or_else(|| setting.kind.0.to_owned())
    }

    pub fn optional(&self, setting: &Setting<Optional>) -> Option<String> {
        self.raw(setting)
    }

    /// The items set, or else the default's; a value with no items counts as unset.
    pub fn list(&self, setting: &Setting<List>) -> Vec<String> {
        split(self.raw(setting).as_deref())
            .or_else(|| split(Some(setting.kind.0)))
            .unwrap_or_default()
    }

    pub fn yes(&self, setting: &Setting<Yes>) -> bool {
        self.raw(setting).as_deref() == Some("yes")
    }

    pub fn word<T: Copy + Sync>(&self, setting: &Setting<Words<T>>) -> Result<T, ConfigError> {
        let choices = setting.kind.0;
        let found = match self.raw(setting) {
            None => choices.first(),
            Some(text) => Some(
                choices
                    .iter()
                    .find(|(word, _)| *word == text.trim())
                    .ok_or_else(|| setting.refuse(&text))?,
            ),
        };
        found
            .map(|(_, value)| *value)
            .ok_or_else(|| setting.refuse(""))
    }

    /// The number set (raised to the least), or the default; refused if not whole, too large
    /// for the table's bound, or (should the bound be wrong) for `T`.
    pub fn whole<T: TryFrom<u64>>(&self, setting: &Setting<Whole>) -> Result<T, ConfigError> {
        let Whole {
            default,
            least,
            most,
        } = setting.kind;
        let n = match self.raw(setting) {
            None => default,
            Some(text) => at_most(&text, most)
                .ok_or_else(|| setting.refuse(&text))?
                .max(least),
        };
        T::try_from(n).map_err(|_| setting.refuse(&n.to_string()))
    }

    /// As [`Env::whole`], `None` when unset.
    pub fn auto_whole<T: TryFrom<u64>>(
        &self,
        setting: &Setting<AutoWhole>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(text) = self.raw(setting) else {
            return Ok(None);
        };
        let AutoWhole { least, most } = setting.kind;
        let n = at_most(&text, most)
            .ok_or_else(|| setting.refuse(&text))?
            .max(least);
        T::try_from(n).map(Some).map_err(|_| setting.refuse(&text))
    }

    pub fn seconds(&self, setting: &Setting<Seconds>) -> Result<Duration, ConfigError> {
        let secs = match self.raw(setting) {
            None => setting.kind.default,
            Some(text) => at_most(&text, u64::MAX)
                .ok_or_else(|| setting.refuse(&text))?
                .max(setting.kind.least),
        };
        Ok(Duration::from_secs(secs.min(MAX_SECS)))
    }

    pub fn range(&self, setting: &Setting<Range>) -> Result<u64, ConfigError> {
        let Range {
            default,
            least,
            most,
            ..
        } = setting.kind;
        match self.raw(setting) {
            None => Ok(default),
            Some(text) => at_most(&text, most)
                .filter(|n| *n >= least)
                .ok_or_else(|| setting.refuse(&text)),
        }
    }
}

/// A whole number no larger than `most`, spaces around it ignored.
fn at_most(text: &str, most: u64) -> Option<u64> {
    text.trim().parse::<u64>().ok().filter(|n| *n <= most)
}

/// Comma-separated items, trimmed, blanks skipped; `None` when there are none.
fn split(value: Option<&str>) -> Option<Vec<String>> {
    let items: Vec<String> = value?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Variables `.env.example` documents that this table does not read: Leptos and the log
    /// filter read their own.
    const READ_ELSEWHERE: [&str; 3] = ["LEPTOS_SITE_ADDR", "LEPTOS_SITE_ROOT", "RUST_LOG"];

    const ENV_EXAMPLE: &str = include_str!("../../../.env.example");

    /// Upper-case words that look like variable names.
    fn words(text: &str) -> Vec<&str> {
        text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .filter(|w| w.len() > 1 && w.starts_with(|c: char| c.is_ascii_uppercase()))
            .collect()
    }

    /// `RILL_*` names in a text (not the bare prefix `RILL_`).
    fn rill_names(text: &str) -> BTreeSet<&str> {
        words(text)
            .into_iter()
            .filter(|w| w.starts_with("RILL_") && !w.ends_with('_'))
            .collect()
    }

    /// A source file without its tests.
    fn code(source: &str) -> &str {
        &source[..source.find("#[cfg(test)]").unwrap_or(source.len())]
    }

    /// The `NAME=value` lines of `.env.example` (commented out or not), in its order.
    fn documented() -> Vec<(&'static str, &'static str)> {
        ENV_EXAMPLE
            .lines()
            .filter_map(|line| {
                let (name, value) = line.trim_start_matches('#').trim_start().split_once('=')?;
                (words(name) == [name]).then_some((name, value))
            })
            .collect()
    }

    /// `.env.example` shows every setting of the table, with the table's default where it has
    /// one, and shows nothing else (but the few variables others read); the names its prose
    /// mentions are real ones.
    #[test]
    fn env_example_shows_each_setting_with_its_default() {
        let shown = documented();
        let documented: BTreeMap<&str, &str> = shown.iter().copied().collect();
        let mut wrong = Vec::new();
        if documented.len() < shown.len() {
            wrong.push("a variable is shown twice".into());
        }
        for setting in ALL {
            match (documented.get(setting.name()), setting.default_text()) {
                (None, _) => wrong.push(format!("{} is not shown", setting.name())),
                (Some(shown), Some(default)) if *shown != default => wrong.push(format!(
                    "{} is shown as {shown:?}, but its default is {default:?}",
                    setting.name()
                )),
                _ => {}
            }
        }
        let known: BTreeSet<&str> = ALL.iter().map(|s| s.name()).collect();
        for name in documented.keys() {
            if !known.contains(name) && !READ_ELSEWHERE.contains(name) {
                wrong.push(format!("{name} is shown but not in the table"));
            }
        }
        // In the table's order, so the two read alike.
        let order: Vec<&str> = shown
            .iter()
            .map(|(name, _)| *name)
            .filter(|n| known.contains(n))
            .collect();
        if order != ALL.iter().map(|s| s.name()).collect::<Vec<_>>() {
            wrong.push("the settings are not in the table's order".into());
        }
        // The command line reads one variable of its own; the prose names it.
        let cli = rill_names(code(include_str!("../cli.rs")));
        for name in rill_names(ENV_EXAMPLE) {
            if !known.contains(name) && !cli.contains(name) {
                wrong.push(format!("{name} is mentioned but nothing reads it"));
            }
        }
        for name in &cli {
            if !ENV_EXAMPLE.contains(name) {
                wrong.push(format!(
                    "{name} (read by the command line) is not mentioned"
                ));
            }
        }
        assert!(wrong.is_empty(), ".env.example:\n{}", wrong.join("\n"));
    }

    /// Each variable's name is written once in the configuration's code (here, in the table):
    /// everything else refers to its setting. So every `RILL_*` variable read is in the table.
    #[test]
    fn each_variable_is_named_once() {
        let code = [
            code(include_str!("../config.rs")),
            code(include_str!("settings.rs")),
            code(include_str!("providers.rs")),
        ]
        .concat();
        let written = words(&code);
        let mut names = BTreeSet::new();
        for setting in ALL {
            let name = setting.name();
            assert!(names.insert(name), "{name} is in the table twice");
            let times = written.iter().filter(|w| **w == name).count();
            assert_eq!(times, 1, "{name} is written {times} times");
            assert!(!setting.doc().is_empty(), "{name} has no doc");
        }
        let unlisted: Vec<&str> = rill_names(&code)
            .into_iter()
            .filter(|n| !names.contains(n))
            .collect();
        assert!(unlisted.is_empty(), "not in the table: {unlisted:?}");
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn readers_apply_defaults_and_bounds() {
        let none = env(&[]);
        let none = Env(&none);
        assert_eq!(none.whole::<u32>(&TURNS_PER_MINUTE).ok(), Some(30));
        assert_eq!(none.list(&OPENAI_MODELS), ["gpt-4o-mini", "gpt-4o"]);
        assert_eq!(none.word(&AUTH).ok(), Some(AuthMode::default()));
        assert_eq!(none.word(&LOG_FORMAT).ok(), Some(LogFormat::default()));
        assert!(!none.yes(&UNSAFE_FILE_MODES));
        let set = env(&[
            ("RILL_TURN_MAX_SECS", "0"),
            ("RILL_PROVIDER_IDLE_SECS", "99999999999"),
            ("RILL_OPENAI_MODELS", " , "),
            ("RILL_UNSAFE_FILE_MODES", "Yes"),
            ("RILL_LOCAL_MAX_TOKENS", "4294967296"),
        ]);
        let set = Env(&set);
        assert_eq!(
            set.seconds(&TURN_MAX_SECS).ok(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            set.seconds(&PROVIDER_IDLE_SECS).ok(),
            Some(Duration::from_secs(MAX_SECS))
        );
        // A list with no items is no list: the default stands.
        assert_eq!(set.list(&OPENAI_MODELS), ["gpt-4o-mini", "gpt-4o"]);
        // Only `yes` switches a safeguard off.
        assert!(!set.yes(&UNSAFE_FILE_MODES));
        let err = set.whole::<u32>(&LOCAL_MAX_TOKENS).expect_err("past u32");
        assert_eq!(
            err.to_string(),
            "RILL_LOCAL_MAX_TOKENS must be a whole number up to 4294967295, got \"4294967296\""
        );
    }
}
