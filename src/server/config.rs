//! Every setting Rill reads. Each environment variable is named once, in the table in
//! [`settings`] with its default, doc and bounds; this module gathers them into [`Config`] for
//! the rest of the server. `.env.example` documents them, and a test holds it to the table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::pricing::PriceEntry;

mod database;
mod oidc;
mod providers;
pub mod settings;

pub use database::Database;
pub use oidc::{OidcSettings, CALLBACK_PATH as OIDC_CALLBACK_PATH};
use providers::FileConfig;
pub use providers::{ProviderConfig, ProviderKind};
use settings::Env;

#[derive(Clone, Debug)]
pub struct Config {
    /// The SQLite file or the Postgres server ([`settings::DATABASE`], or `database` in the file).
    pub database: Database,
    /// Start even if other accounts on the machine can read the database's files
    /// ([`settings::UNSAFE_FILE_MODES`]; otherwise Rill refuses and says which `chmod` fixes it).
    pub unsafe_file_modes: bool,
    /// In single-user mode, every conversation belongs to this owner ([`settings::OWNER`]).
    pub owner: String,
    /// Who may use the server and how requests are checked.
    pub access: AccessSettings,
    /// What one person may ask of the server.
    pub limits: LimitSettings,
    /// How many connections the server holds, and how long it waits for a request.
    pub connections: ConnectionSettings,
    pub providers: Vec<ProviderConfig>,
    /// `provider/model` used for new conversations ([`settings::DEFAULT_MODEL`], or
    /// `default_model` in the file; else the first model).
    pub default_model: Option<String>,
    /// Delay between the development model's words ([`settings::DEV_WORD_DELAY_MS`]).
    pub dev_word_delay: Duration,
    /// Per-model prices laid over the shipped table (`[prices."provider/model"]` in the file).
    pub price_overrides: HashMap<String, PriceEntry>,
    /// The in-process model; `None` when switched off ([`settings::LOCAL_MODEL`] `off`).
    pub local_model: Option<LocalModelSettings>,
    pub turns: TurnSettings,
    pub conversations: ConversationSettings,
    /// Logs and metrics.
    pub ops: OpsSettings,
    /// Sign-in through an OpenID Connect provider; `None`: not set up.
    pub oidc: Option<OidcSettings>,
}

/// How the server reports on itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpsSettings {
    /// Log lines as JSON objects for log shippers, or text for people ([`settings::LOG_FORMAT`]).
    pub log_format: LogFormat,
    /// A bearer token that may read `/metrics` ([`settings::METRICS_TOKEN`]); admins may always
    /// read it.
    pub metrics_token: Option<String>,
}

/// The default is the first of [`settings::LOG_FORMAT`]'s words (a test checks they agree).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How people are told apart ([`settings::AUTH`], whose first word is the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// No sign-in; every request is the one owner. Only on a loopback address.
    #[default]
    SingleUser,
    /// Sign-in required: local accounts, or a trusted proxy's header.
    Accounts,
}

/// Who may reach the server, and from where.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessSettings {
    pub mode: AuthMode,
    /// The address people use, e.g. `https://chat.example.com` ([`settings::PUBLIC_URL`]). Its
    /// host is allowed, and `https` makes the session cookie `Secure`.
    pub public_url: Option<PublicUrl>,
    /// More host names this server answers for ([`settings::ALLOWED_HOSTS`]). Loopback names and
    /// IP addresses are always allowed; any other `Host` is refused (421), which ends DNS
    /// rebinding.
    pub allowed_hosts: Vec<String>,
    /// Web pages that may call `/v1` from the browser ([`settings::API_CORS_ORIGINS`]).
    pub api_cors: ApiCors,
    /// Serve a non-loopback address without accounts anyway
    /// ([`settings::UNSAFE_NO_AUTH_ON_NETWORK`]): anyone who reaches the port is the owner.
    pub unsafe_no_auth_on_network: bool,
    /// Reverse proxies whose `X-Forwarded-For` and single sign-on header are believed
    /// ([`settings::TRUSTED_PROXIES`]).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header a trusted proxy names the signed-in user with, e.g. `X-Forwarded-User`
    /// ([`settings::SSO_HEADER`]; accounts mode only).
    pub sso_header: Option<axum::http::HeaderName>,
    /// How long a sign-in lasts however busy its session is ([`settings::SESSION_MAX_DAYS`]); a
    /// session unused for 30 days ends sooner.
    pub session_max_age: Duration,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            public_url: None,
            allowed_hosts: Vec::new(),
            api_cors: ApiCors::default(),
            unsafe_no_auth_on_network: false,
            trusted_proxies: Vec::new(),
            sso_header: None,
            session_max_age: days(DEFAULT_SESSION_MAX_DAYS),
        }
    }
}

impl AccessSettings {
    /// Refuses to serve a non-loopback address without accounts, unless explicitly overridden.
    pub fn check_listen(&self, addr: std::net::SocketAddr) -> Result<(), ConfigError> {
        if addr.ip().is_loopback()
            || self.mode == AuthMode::Accounts
            || self.unsafe_no_auth_on_network
        {
            return Ok(());
        }
        let (auth, unsafe_open) = (
            settings::AUTH.name,
            settings::UNSAFE_NO_AUTH_ON_NETWORK.name,
        );
        Err(ConfigError::Invalid(format!(
            "refusing to listen on {addr} without accounts: anyone who reaches it would read every \
             conversation and spend your API keys. Set {auth}=accounts and create an admin with \
             `rill user add --admin NAME`, or listen on 127.0.0.1 (LEPTOS_SITE_ADDR). To serve \
             it open anyway, set {unsafe_open}=yes."
        )))
    }

    fn read(env: &Env) -> Result<Self, ConfigError> {
        let mode = env.word(&settings::AUTH)?;
        let public_url = env
            .optional(&settings::PUBLIC_URL)
            .map(|text| PublicUrl::parse(&text))
            .transpose()?;
        let proxies = &settings::TRUSTED_PROXIES;
        let trusted_proxies = env
            .list(proxies)
            .iter()
            .map(|item| {
                item.parse::<ipnet::IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| proxies.refuse_as("addresses or CIDR ranges", item))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let header = &settings::SSO_HEADER;
        let sso_header = env
            .optional(header)
            .map(|name| {
                axum::http::HeaderName::try_from(name.trim())
                    .map_err(|_| header.refuse_as("a header name", &name))
            })
            .transpose()?;
        if sso_header.is_some() && mode != AuthMode::Accounts {
            return Err(ConfigError::Invalid(format!(
                "{} needs {}=accounts",
                header.name,
                settings::AUTH.name
            )));
        }
        if sso_header.is_some() && trusted_proxies.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{} needs {}: the header is believed only from them",
                header.name, proxies.name
            )));
        }
        Ok(Self {
            mode,
            public_url,
            allowed_hosts: env
                .list(&settings::ALLOWED_HOSTS)
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            api_cors: ApiCors::read(env)?,
            unsafe_no_auth_on_network: env.yes(&settings::UNSAFE_NO_AUTH_ON_NETWORK),
            trusted_proxies,
            sso_header,
            session_max_age: days(env.range(&settings::SESSION_MAX_DAYS)?),
        })
    }
}

/// Which other sites' pages may call `/v1` from a browser. Only a bearer key is read there,
/// never a cookie, so a page that may call it spends only the key its user gave it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ApiCors {
    /// No CORS headers: browsers keep other sites' pages from reading `/v1`'s answers.
    #[default]
    Off,
    /// Any origin (`*`).
    AnyOrigin,
    /// These origins, as browsers write them (`scheme://host[:port]`, lowercase).
    Origins(Vec<String>),
}

impl ApiCors {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        let setting = &settings::API_CORS_ORIGINS;
        let listed = env.list(setting);
        if listed.iter().any(|o| o == "*") {
            return if listed.len() == 1 {
                Ok(Self::AnyOrigin)
            } else {
                Err(setting.refuse_as("`*` alone or a list of origins", &listed.join(",")))
            };
        }
        if listed.is_empty() {
            return Ok(Self::Off);
        }
        listed
            .iter()
            .map(|origin| {
                origin_of(origin).ok_or_else(|| {
                    setting.refuse_as("origins such as https://tools.example.com", origin)
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self::Origins)
    }

    /// Whether a page at `origin` may call `/v1`.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Off => false,
            Self::AnyOrigin => true,
            Self::Origins(origins) => origins.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

/// `origin` as a browser sends it in `Origin` (`http(s)://host[:port]`, the default port left
/// out, lowercase); `None` for anything with a path, query or other scheme.
fn origin_of(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    let serialized = url.origin().ascii_serialization();
    (matches!(url.scheme(), "http" | "https")
        && bare
        && url.username().is_empty()
        && url.password().is_none())
    .then_some(serialized)
}

/// How long a sign-in lasts, unless [`settings::SESSION_MAX_DAYS`] says otherwise.
pub const DEFAULT_SESSION_MAX_DAYS: u64 = settings::SESSION_MAX_DAYS.kind.default;

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 3600)
}

/// The public address, reduced to what the checks need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    pub https: bool,
    /// Lower-case host name or address, without port.
    pub host: String,
}

impl PublicUrl {
    fn parse(text: &str) -> Result<Self, ConfigError> {
        let setting = &settings::PUBLIC_URL;
        let url = url::Url::parse(text.trim())
            .map_err(|e| setting.refuse_as(format_args!("a URL ({e})"), text))?;
        let host = url
            .host_str()
            .filter(|_| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| setting.refuse_as("an http:// or https:// address", text))?;
        Ok(Self {
            https: url.scheme() == "https",
            host: host.trim_matches(['[', ']']).to_ascii_lowercase(),
        })
    }
}

/// What one person may ask of the server at once and per minute.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitSettings {
    /// Largest request body in bytes; more is refused with 413 ([`settings::MAX_REQUEST_BYTES`]).
    pub max_request_bytes: usize,
    /// Replies one person may have running at once ([`settings::MAX_RUNNING_PER_USER`]).
    pub running_per_user: usize,
    /// Turns (sends and Continues) one person may start per minute
    /// ([`settings::TURNS_PER_MINUTE`]).
    pub turns_per_minute: u32,
    /// Event streams (a tab's connection, a reply being read) one person may hold open at once
    /// ([`settings::MAX_STREAMS_PER_USER`]).
    pub streams_per_user: usize,
    /// People with a budget (or under a site cap) may use models that have no price, counted
    /// as free ([`settings::ALLOW_UNPRICED_MODELS`]; otherwise such a turn is refused in words).
    pub allow_unpriced_models: bool,
    /// Changes one person may make per minute through the API besides sending (renames,
    /// system prompts, deletes, branch switches, settings…) ([`settings::WRITES_PER_MINUTE`]).
    pub writes_per_minute: u32,
    /// Bytes one person may store (message text, titles, system prompts); past it, what would
    /// store more is refused in words ([`settings::STORAGE_QUOTA_MB`]; `None`: no quota).
    pub storage_quota_bytes: Option<u64>,
    /// Where budget warnings at 80 and 90 % are POSTed ([`settings::BUDGET_WEBHOOK`]).
    pub budget_webhook: Option<reqwest::Url>,
    /// Bytes an import's upload may be ([`settings::MAX_IMPORT_MB`]).
    pub max_import_bytes: u64,
    /// Bytes one attached file may be ([`settings::MAX_ATTACHMENT_MB`]).
    pub max_attachment_bytes: u64,
    /// Bytes of files one message may carry ([`settings::MAX_MESSAGE_ATTACHMENTS_MB`]).
    pub max_message_attachment_bytes: u64,
    /// Bytes of files one person may upload in 24 hours ([`settings::ATTACHMENTS_MB_PER_DAY`]).
    pub attachment_bytes_per_day: u64,
    /// How long a PDF's text may take to read ([`settings::PDF_READ_SECONDS`]; a test may set
    /// less than a second).
    pub pdf_read_time: std::time::Duration,
    /// Bytes of memory the reader of one PDF may take ([`settings::PDF_READ_MB`]).
    pub pdf_read_memory_bytes: u64,
}

// The table's bounds keep each default within its field's type, so these casts lose nothing.
impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_request_bytes: settings::MAX_REQUEST_BYTES.kind.default as usize,
            running_per_user: settings::MAX_RUNNING_PER_USER.kind.default as usize,
            turns_per_minute: settings::TURNS_PER_MINUTE.kind.default as u32,
            streams_per_user: settings::MAX_STREAMS_PER_USER.kind.default as usize,
            allow_unpriced_models: false,
            budget_webhook: None,
            writes_per_minute: settings::WRITES_PER_MINUTE.kind.default as u32,
            storage_quota_bytes: quota_bytes(settings::STORAGE_QUOTA_MB.kind.default),
            max_import_bytes: settings::MAX_IMPORT_MB.kind.default << 20,
            max_attachment_bytes: settings::MAX_ATTACHMENT_MB.kind.default << 20,
            max_message_attachment_bytes: settings::MAX_MESSAGE_ATTACHMENTS_MB.kind.default << 20,
            attachment_bytes_per_day: settings::ATTACHMENTS_MB_PER_DAY.kind.default << 20,
            pdf_read_time: std::time::Duration::from_secs(settings::PDF_READ_SECONDS.kind.default),
            pdf_read_memory_bytes: settings::PDF_READ_MB.kind.default << 20,
        }
    }
}

impl LimitSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            max_request_bytes: env.whole(&settings::MAX_REQUEST_BYTES)?,
            running_per_user: env.whole(&settings::MAX_RUNNING_PER_USER)?,
            turns_per_minute: env.whole(&settings::TURNS_PER_MINUTE)?,
            streams_per_user: env.whole(&settings::MAX_STREAMS_PER_USER)?,
            allow_unpriced_models: env.yes(&settings::ALLOW_UNPRICED_MODELS),
            budget_webhook: budget_webhook(env)?,
            writes_per_minute: env.whole(&settings::WRITES_PER_MINUTE)?,
            storage_quota_bytes: quota_bytes(env.whole(&settings::STORAGE_QUOTA_MB)?),
            max_import_bytes: env
                .whole::<u64>(&settings::MAX_IMPORT_MB)?
                .saturating_mul(1 << 20),
            max_attachment_bytes: env
                .whole::<u64>(&settings::MAX_ATTACHMENT_MB)?
                .saturating_mul(1 << 20),
            max_message_attachment_bytes: env
                .whole::<u64>(&settings::MAX_MESSAGE_ATTACHMENTS_MB)?
                .saturating_mul(1 << 20),
            attachment_bytes_per_day: env
                .whole::<u64>(&settings::ATTACHMENTS_MB_PER_DAY)?
                .saturating_mul(1 << 20),
            pdf_read_time: std::time::Duration::from_secs(
                env.whole::<u64>(&settings::PDF_READ_SECONDS)?,
            ),
            pdf_read_memory_bytes: env
                .whole::<u64>(&settings::PDF_READ_MB)?
                .saturating_mul(1 << 20),
        })
    }
}

/// The budget webhook's URL, if set: http or https. (Its value is never shown: it may hold a
/// token.)
fn budget_webhook(env: &Env) -> Result<Option<reqwest::Url>, ConfigError> {
    let setting = &settings::BUDGET_WEBHOOK;
    let Some(text) = env.optional(setting) else {
        return Ok(None);
    };
    match reqwest::Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(Some(url)),
        _ => Err(ConfigError::Invalid(format!(
            "{} must be an http or https URL",
            setting.name
        ))),
    }
}

/// Megabytes of quota in bytes; 0 is no quota. The table bounds megabytes so this fits.
fn quota_bytes(mb: u64) -> Option<u64> {
    (mb > 0).then(|| mb.saturating_mul(1024 * 1024))
}

/// Connections: how many are held, and how long a request may take to arrive.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionSettings {
    /// Open connections in all; more are answered 503 and closed ([`settings::MAX_CONNECTIONS`];
    /// `None`: half the open-files limit left after a reserve of 64, at most 65,536).
    pub max_connections: Option<usize>,
    /// Open connections from one client address (an IPv6 /64 counts as one); trusted proxies
    /// are not counted ([`settings::MAX_CONNECTIONS_PER_ADDRESS`]; `None`: a quarter of the
    /// total, between 8 and 256).
    pub max_per_address: Option<usize>,
    /// A request's headers must arrive within this, and an idle kept-alive connection is closed
    /// after it ([`settings::HEADER_TIMEOUT_SECS`]).
    pub header_timeout: Duration,
    /// A request's body must arrive whole within this; later is 408
    /// ([`settings::BODY_TIMEOUT_SECS`]).
    pub body_timeout: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            max_connections: None,
            max_per_address: None,
            header_timeout: Duration::from_secs(settings::HEADER_TIMEOUT_SECS.kind.default),
            body_timeout: Duration::from_secs(settings::BODY_TIMEOUT_SECS.kind.default),
        }
    }
}

impl ConnectionSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            max_connections: env.auto_whole(&settings::MAX_CONNECTIONS)?,
            max_per_address: env.auto_whole(&settings::MAX_CONNECTIONS_PER_ADDRESS)?,
            header_timeout: env.seconds(&settings::HEADER_TIMEOUT_SECS)?,
            body_timeout: env.seconds(&settings::BODY_TIMEOUT_SECS)?,
        })
    }
}

/// What conversations start with, and how long deleted ones are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationSettings {
    /// The system prompt of every new conversation; each person can change it per conversation
    /// ([`settings::DEFAULT_SYSTEM_PROMPT`], default none).
    pub default_system_prompt: String,
    /// A deleted conversation can be undone at once, and its text is purged this long after
    /// ([`settings::PURGE_DELETED_AFTER_SECS`], default a day, for an operator to undo a mistake
    /// from a backup-free database by hand). Tokens and costs are kept for spending limits.
    pub purge_deleted_after: Duration,
    /// Titles stay the first words; no model is asked ([`settings::PLAIN_TITLES`], default no).
    pub plain_titles: bool,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        Self {
            default_system_prompt: String::new(),
            purge_deleted_after: Duration::from_secs(
                settings::PURGE_DELETED_AFTER_SECS.kind.default,
            ),
            plain_titles: false,
        }
    }
}

impl ConversationSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        let prompt = &settings::DEFAULT_SYSTEM_PROMPT;
        let default_system_prompt = env.optional(prompt).unwrap_or_default();
        Ok(Self {
            default_system_prompt: crate::server::input::system_prompt(&default_system_prompt)
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", prompt.name)))?
                .to_owned(),
            purge_deleted_after: env.seconds(&settings::PURGE_DELETED_AFTER_SECS)?,
            plain_titles: env.yes(&settings::PLAIN_TITLES),
        })
    }
}

/// Bounds on every turn, so that no provider can hang one or make it grow without limit.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnSettings {
    /// A provider that sends no bytes at all for this long fails the turn; pings and keep-alives
    /// count as life ([`settings::PROVIDER_IDLE_SECS`]).
    pub provider_idle: Duration,
    /// Longest a turn may run, queueing included ([`settings::TURN_MAX_SECS`]).
    pub max_duration: Duration,
    /// Cap on generated tokens per reply, sent to the provider in its own field; lowered to a
    /// model's own maximum where the price table knows it ([`settings::MAX_OUTPUT_TOKENS`]).
    pub max_output_tokens: u32,
    /// Longest reply Rill keeps, in characters, whatever the provider sends
    /// ([`settings::MAX_REPLY_CHARS`]).
    pub max_reply_chars: usize,
    /// Context window assumed for models whose window is not known
    /// ([`settings::DEFAULT_CONTEXT_TOKENS`]).
    pub default_context_tokens: u32,
    /// On SIGTERM, how long running replies get to finish before they are stored as interrupted
    /// ([`settings::SHUTDOWN_GRACE_SECS`]; the default, 8 s, is inside `docker stop`'s 10 s).
    pub shutdown_grace: Duration,
    /// How often a quiet event stream carries a heartbeat (fixed in production; tests shorten it).
    pub heartbeat: Duration,
    /// How long an ended turn's event log stays in memory for late readers (then: the database).
    pub keep_finished: Duration,
}

/// An ended turn's log is kept this long for a page whose connection broke near the end: its
/// first retries (0.5, 1, 2 and 4 s apart) re-attach to it and get only what they missed. A later
/// reader gets the stored reply whole; after a burst the logs do not hold memory (issue 27:
/// 60 s kept about 6 MB after 1,000 replies at once).
const KEEP_FINISHED: Duration = Duration::from_secs(10);

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            provider_idle: Duration::from_secs(settings::PROVIDER_IDLE_SECS.kind.default),
            max_duration: Duration::from_secs(settings::TURN_MAX_SECS.kind.default),
            max_output_tokens: settings::MAX_OUTPUT_TOKENS.kind.default as u32,
            max_reply_chars: settings::MAX_REPLY_CHARS.kind.default as usize,
            default_context_tokens: settings::DEFAULT_CONTEXT_TOKENS.kind.default as u32,
            shutdown_grace: Duration::from_secs(settings::SHUTDOWN_GRACE_SECS.kind.default),
            heartbeat: Duration::from_secs(crate::model::HEARTBEAT_SECS),
            keep_finished: KEEP_FINISHED,
        }
    }
}

impl TurnSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            provider_idle: env.seconds(&settings::PROVIDER_IDLE_SECS)?,
            max_duration: env.seconds(&settings::TURN_MAX_SECS)?,
            max_output_tokens: env.whole(&settings::MAX_OUTPUT_TOKENS)?,
            max_reply_chars: env.whole(&settings::MAX_REPLY_CHARS)?,
            default_context_tokens: env.whole(&settings::DEFAULT_CONTEXT_TOKENS)?,
            shutdown_grace: env.seconds(&settings::SHUTDOWN_GRACE_SECS)?,
            ..Self::default()
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LocalModelSettings {
    /// GGUF file ([`settings::LOCAL_MODEL`]; the default is where `scripts/fetch-model.sh` puts
    /// SmolLM2-135M-Instruct).
    pub path: PathBuf,
    /// Inference threads ([`settings::LOCAL_THREADS`], default 1: a second thread only helps on
    /// an idle machine and collapses when the other core is busy serving).
    pub threads: usize,
    /// Longest reply in tokens ([`settings::LOCAL_MAX_TOKENS`]).
    pub max_output_tokens: u32,
    /// Token cells of the key/value cache ([`settings::LOCAL_CONTEXT`], default 8192, SmolLM2's
    /// own context length; never more than the model's). Also the longest prompt plus reply. The
    /// cells are shared by the conversations whose cache is kept, and cost about 17 KB each
    /// with SmolLM2-135M: 140 MB at the default.
    pub context_tokens: usize,
    /// Requests that may wait for the local model behind the one generating; more are refused
    /// as busy ([`settings::LOCAL_QUEUE`]).
    pub queue: usize,
    /// Longest a request waits for its turn before it is refused as busy
    /// ([`settings::LOCAL_QUEUE_WAIT_SECS`]).
    pub queue_wait: Duration,
}

impl LocalModelSettings {
    /// `None` when the setting is `off`.
    fn read(env: &Env) -> Result<Option<Self>, ConfigError> {
        let path = env.text(&settings::LOCAL_MODEL);
        if path == "off" {
            return Ok(None);
        }
        Ok(Some(Self {
            path: PathBuf::from(path),
            threads: env.whole(&settings::LOCAL_THREADS)?,
            max_output_tokens: env.whole(&settings::LOCAL_MAX_TOKENS)?,
            context_tokens: env.whole(&settings::LOCAL_CONTEXT)?,
            queue: env.whole(&settings::LOCAL_QUEUE)?,
            queue_wait: env.seconds(&settings::LOCAL_QUEUE_WAIT_SECS)?,
        }))
    }
}

pub const DEFAULT_LOCAL_MODEL: &str = settings::LOCAL_MODEL.kind.0;

impl OpsSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        let token = &settings::METRICS_TOKEN;
        let metrics_token = match env.optional(token) {
            // The token is a secret: the message leaves it out.
            Some(t) if t.trim().len() < 16 => {
                return Err(ConfigError::Invalid(format!(
                    "{} must be at least 16 characters",
                    token.name
                )))
            }
            t => t.map(|t| t.trim().to_owned()),
        };
        Ok(Self {
            log_format: env.word(&settings::LOG_FORMAT)?,
            metrics_token,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Builds the config from any variable source, so tests need not touch the process environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&var);
        let file = FileConfig::read(&env)?;
        let access = AccessSettings::read(&env)?;
        let public_url = env.optional(&settings::PUBLIC_URL);
        let oidc = OidcSettings::read(&env, access.mode, public_url.as_deref())?;
        Ok(Self {
            providers: providers::providers(&env, file.providers)?,
            price_overrides: file.prices,
            local_model: LocalModelSettings::read(&env)?,
            database: Database::parse(
                &env.raw(&settings::DATABASE)
                    .or(file.database)
                    .unwrap_or_else(|| settings::DATABASE.kind.0.into()),
            ),
            unsafe_file_modes: env.yes(&settings::UNSAFE_FILE_MODES),
            owner: env.text(&settings::OWNER),
            access,
            limits: LimitSettings::read(&env)?,
            connections: ConnectionSettings::read(&env)?,
            default_model: env
                .optional(&settings::DEFAULT_MODEL)
                .or(file.default_model),
            dev_word_delay: Duration::from_millis(env.whole(&settings::DEV_WORD_DELAY_MS)?),
            turns: TurnSettings::read(&env)?,
            conversations: ConversationSettings::read(&env)?,
            ops: OpsSettings::read(&env)?,
            oidc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_need_nothing() {
        let c = config(&[]).expect("config");
        assert_eq!(c.database, Database::Sqlite(PathBuf::from("data/rill.db")));
        assert_eq!(c.owner, "local");
        assert!(c.providers.is_empty());
        let local = c.local_model.expect("the local model is on by default");
        assert_eq!(local.path, PathBuf::from(DEFAULT_LOCAL_MODEL));
        assert_eq!((local.threads, local.max_output_tokens), (1, 512));
        assert_eq!(c.turns, TurnSettings::default());
    }

    #[test]
    fn turn_bounds_can_be_tuned_and_bad_values_are_explained() {
        let c = config(&[
            ("RILL_PROVIDER_IDLE_SECS", "30"),
            ("RILL_TURN_MAX_SECS", "60"),
            ("RILL_MAX_OUTPUT_TOKENS", "1000"),
            ("RILL_SHUTDOWN_GRACE_SECS", "0"),
        ])
        .expect("config");
        assert_eq!(c.turns.provider_idle, Duration::from_secs(30));
        assert_eq!(c.turns.max_duration, Duration::from_secs(60));
        assert_eq!(c.turns.max_output_tokens, 1000);
        assert_eq!(c.turns.shutdown_grace, Duration::ZERO);
        let err = config(&[("RILL_TURN_MAX_SECS", "soon")]).expect_err("not a number");
        assert!(err.to_string().contains("RILL_TURN_MAX_SECS"), "{err}");
        assert!(config(&[("RILL_MAX_OUTPUT_TOKENS", "99999999999")]).is_err());
        // "No limit", written as a huge number, is a long limit rather than a crash later.
        let c = config(&[("RILL_TURN_MAX_SECS", "18446744073709551615")]).expect("config");
        assert_eq!(c.turns.max_duration, Duration::from_secs(30 * 24 * 3600));
    }

    #[test]
    fn api_cors_origins_are_read_as_browsers_write_them() {
        assert_eq!(config(&[]).expect("config").access.api_cors, ApiCors::Off);
        let c = config(&[(
            "RILL_API_CORS_ORIGINS",
            "https://Tools.Example.com:443, http://127.0.0.1:8080/",
        )])
        .expect("config");
        assert_eq!(
            c.access.api_cors,
            ApiCors::Origins(vec![
                "https://tools.example.com".into(),
                "http://127.0.0.1:8080".into()
            ])
        );
        assert!(c.access.api_cors.allows("https://tools.example.com"));
        assert!(!c.access.api_cors.allows("https://tools.example.com.evil"));
        let c = config(&[("RILL_API_CORS_ORIGINS", "*")]).expect("config");
        assert_eq!(c.access.api_cors, ApiCors::AnyOrigin);
        for bad in [
            "https://tools.example.com/app",
            "tools.example.com",
            "ftp://tools.example.com",
            "*,https://tools.example.com",
            "https://user@tools.example.com",
        ] {
            let err = config(&[("RILL_API_CORS_ORIGINS", bad)]).expect_err(bad);
            assert!(err.to_string().contains("RILL_API_CORS_ORIGINS"), "{err}");
        }
    }

    #[test]
    fn log_format_and_metrics_token_are_read_and_checked() {
        let c = config(&[]).expect("config");
        assert_eq!(c.ops, OpsSettings::default());
        let c = config(&[
            ("RILL_LOG_FORMAT", "json"),
            ("RILL_METRICS_TOKEN", "a-token-long-enough"),
        ])
        .expect("config");
        assert_eq!(c.ops.log_format, LogFormat::Json);
        assert_eq!(c.ops.metrics_token.as_deref(), Some("a-token-long-enough"));
        let err = config(&[("RILL_LOG_FORMAT", "yaml")]).expect_err("unknown format");
        assert!(err.to_string().contains("text or json"), "{err}");
        let err = config(&[("RILL_METRICS_TOKEN", "short")]).expect_err("guessable");
        assert!(err.to_string().contains("16 characters"), "{err}");
    }

    #[test]
    fn access_settings_are_read_and_checked() {
        let c = config(&[
            ("RILL_AUTH", "accounts"),
            ("RILL_PUBLIC_URL", "https://Chat.Example.com/"),
            ("RILL_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8"),
            ("RILL_SSO_HEADER", "X-Forwarded-User"),
        ])
        .expect("config");
        assert_eq!(c.access.mode, AuthMode::Accounts);
        assert_eq!(
            c.access.public_url,
            Some(PublicUrl {
                https: true,
                host: "chat.example.com".into()
            })
        );
        assert_eq!(c.access.trusted_proxies.len(), 2);
        assert!(config(&[("RILL_AUTH", "none")]).is_err());
        assert!(config(&[("RILL_PUBLIC_URL", "ftp://x")]).is_err());
        assert!(config(&[("RILL_TRUSTED_PROXIES", "nowhere")]).is_err());
        // The header alone would let anyone name themselves.
        let err = config(&[("RILL_AUTH", "accounts"), ("RILL_SSO_HEADER", "X-User")])
            .expect_err("no trusted proxies");
        assert!(err.to_string().contains("RILL_TRUSTED_PROXIES"), "{err}");
    }

    #[test]
    fn a_network_address_needs_accounts_or_the_loud_override() {
        let open: std::net::SocketAddr = "0.0.0.0:3000".parse().expect("addr");
        let loopback: std::net::SocketAddr = "127.0.0.1:3000".parse().expect("addr");
        let single = config(&[]).expect("config").access;
        assert!(single.check_listen(loopback).is_ok());
        let err = single.check_listen(open).expect_err("refused");
        assert!(err.to_string().contains("RILL_AUTH=accounts"), "{err}");
        let accounts = config(&[("RILL_AUTH", "accounts")]).expect("config").access;
        assert!(accounts.check_listen(open).is_ok());
        let overridden = config(&[("RILL_UNSAFE_NO_AUTH_ON_NETWORK", "yes")])
            .expect("config")
            .access;
        assert!(overridden.check_listen(open).is_ok());
    }

    #[test]
    fn the_local_model_can_be_switched_off_or_tuned() {
        assert!(config(&[("RILL_LOCAL_MODEL", "off")])
            .expect("config")
            .local_model
            .is_none());
        let c = config(&[
            ("RILL_LOCAL_THREADS", "2"),
            ("RILL_LOCAL_MAX_TOKENS", "64"),
            ("RILL_LOCAL_CONTEXT", "4096"),
        ])
        .expect("config");
        assert_eq!(
            c.local_model
                .map(|l| (l.threads, l.max_output_tokens, l.context_tokens)),
            Some((2, 64, 4096))
        );
        assert!(config(&[("RILL_LOCAL_THREADS", "two")]).is_err());
    }

    /// Reading nothing gives each group's `Default` (which tests build servers from), and
    /// setting every variable to the default the table shows for it changes nothing.
    #[test]
    fn the_tables_defaults_are_the_defaults() {
        let c = config(&[]).expect("config");
        assert_eq!(c.access, AccessSettings::default());
        assert_eq!(c.limits, LimitSettings::default());
        assert_eq!(c.connections, ConnectionSettings::default());
        assert_eq!(c.conversations, ConversationSettings::default());
        assert_eq!(c.ops, OpsSettings::default());
        assert_eq!(c.dev_word_delay, Duration::from_millis(40));
        let shown: Vec<(&str, String)> = settings::ALL
            .iter()
            .filter_map(|s| Some((s.name(), s.default_text()?)))
            .filter(|(_, value)| !value.is_empty())
            .collect();
        let shown: Vec<(&str, &str)> = shown.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let d = config(&shown).expect("every default is accepted");
        assert_eq!(
            (d.database, d.owner, d.local_model, d.dev_word_delay),
            (c.database, c.owner, c.local_model, c.dev_word_delay)
        );
        assert_eq!(
            (d.access, d.limits, d.connections),
            (c.access, c.limits, c.connections)
        );
        assert_eq!(
            (d.turns, d.conversations, d.ops),
            (c.turns, c.conversations, c.ops)
        );
        assert!(d.providers.is_empty());
    }

    #[test]
    fn bad_numbers_are_refused_naming_the_variable_and_what_it_takes() {
        let err = config(&[("RILL_TURNS_PER_MINUTE", "lots")]).expect_err("not a number");
        assert_eq!(
            err.to_string(),
            "RILL_TURNS_PER_MINUTE must be a whole number up to 4294967295, got \"lots\""
        );
        let err = config(&[("RILL_SESSION_MAX_DAYS", "0")]).expect_err("out of range");
        assert_eq!(
            err.to_string(),
            "RILL_SESSION_MAX_DAYS must be a whole number of days from 1 to 3650, got \"0\""
        );
        let err = config(&[("RILL_AUTH", "none")]).expect_err("unknown word");
        assert_eq!(
            err.to_string(),
            "RILL_AUTH must be single-user or accounts, got \"none\""
        );
        // Below a limit's least it counts as the least: 0 would stop everything.
        let c = config(&[
            ("RILL_TURNS_PER_MINUTE", " 0 "),
            ("RILL_MAX_CONNECTIONS", "0"),
        ])
        .expect("config");
        assert_eq!(c.limits.turns_per_minute, 1);
        assert_eq!(c.connections.max_connections, Some(1));
        let c = config(&[("RILL_STORAGE_QUOTA_MB", "0")]).expect("config");
        assert_eq!(c.limits.storage_quota_bytes, None);
        assert!(config(&[("RILL_STORAGE_QUOTA_MB", "17592186044416")]).is_err());
        // The metrics token is a secret: a refusal does not repeat it.
        let err = config(&[("RILL_METRICS_TOKEN", "hunter2")]).expect_err("short");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn env_adds_openai_and_a_compatible_server() {
        let c = config(&[
            ("OPENAI_API_KEY", "sk-test"),
            ("RILL_OPENAI_COMPAT_URL", "http://127.0.0.1:11434/v1"),
            ("RILL_OPENAI_COMPAT_NAME", "ollama"),
            ("RILL_OPENAI_COMPAT_MODELS", "llama3.2, qwen2.5"),
        ])
        .expect("config");
        assert_eq!(c.providers[0].id, "openai");
        assert_eq!(c.providers[0].api_key.as_deref(), Some("sk-test"));
        assert_eq!(c.providers[1].models, vec!["llama3.2", "qwen2.5"]);
    }

    #[test]
    fn hosted_providers_come_with_their_key_and_default_models() {
        let c = config(&[
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("GEMINI_API_KEY", "g-key"),
            ("RILL_GEMINI_MODELS", "gemini-2.5-flash"),
        ])
        .expect("config");
        let anthropic = &c.providers[0];
        assert_eq!(
            (
                anthropic.id.as_str(),
                anthropic.kind,
                anthropic.api_key.as_deref()
            ),
            ("anthropic", ProviderKind::Anthropic, Some("sk-ant"))
        );
        assert_eq!(anthropic.base_url, "https://api.anthropic.com/v1");
        assert!(!anthropic.models.is_empty());
        assert_eq!(c.providers[1].kind, ProviderKind::Gemini);
        assert_eq!(c.providers[1].models, vec!["gemini-2.5-flash"]);
    }

    #[test]
    fn a_compatible_server_may_leave_its_models_to_discovery() {
        let c = config(&[("RILL_OPENAI_COMPAT_URL", "http://127.0.0.1:11434/v1")]).expect("config");
        assert_eq!(c.providers[0].kind, ProviderKind::OpenaiCompatible);
        assert!(c.providers[0].models.is_empty());
    }

    #[test]
    fn bad_provider_settings_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rill.toml");
        std::fs::write(
            &path,
            "[[providers]]\nid = \"claude\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key_env = \"CLAUDE_KEY\"\nmodels = [\"claude-x\"]\n",
        )
        .expect("write");
        let path = path.to_string_lossy().into_owned();
        let err = config(&[("RILL_CONFIG", path.as_str())]).expect_err("no key");
        assert!(err.to_string().contains("CLAUDE_KEY"), "{err}");
        assert!(config(&[("RILL_CONFIG", path.as_str()), ("CLAUDE_KEY", "k")]).is_ok());
        let err = config(&[
            ("RILL_OPENAI_COMPAT_URL", "http://x"),
            ("RILL_OPENAI_COMPAT_NAME", "local"),
        ])
        .expect_err("reserved");
        assert!(err.to_string().contains("reserved"));
    }

    #[test]
    fn file_providers_take_keys_from_named_variables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rill.toml");
        std::fs::write(
            &path,
            "default_model = \"vllm/qwen\"\n[[providers]]\nid = \"vllm\"\nbase_url = \"http://127.0.0.1:8000/v1\"\napi_key_env = \"VLLM_KEY\"\nmodels = [\"qwen\"]\n[prices.\"vllm/qwen\"]\ninput = 0.1\noutput = 0.2\n",
        )
        .expect("write");
        let path = path.to_string_lossy().into_owned();
        let c = config(&[("RILL_CONFIG", path.as_str()), ("VLLM_KEY", "k")]).expect("config");
        assert_eq!(c.providers[0].api_key.as_deref(), Some("k"));
        assert_eq!(c.default_model.as_deref(), Some("vllm/qwen"));
        assert_eq!(
            c.price_overrides.get("vllm/qwen").map(|p| p.price.output),
            Some(0.2)
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "nonsense = 1\n").expect("write");
        let bad = bad.to_string_lossy().into_owned();
        assert!(config(&[("RILL_CONFIG", bad.as_str())]).is_err());
    }
}
