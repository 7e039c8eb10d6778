//! Every setting Rill reads, in one place. Each is documented in `.env.example`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::pricing::PriceEntry;

#[derive(Clone, Debug)]
pub struct Config {
    /// SQLite database file (`RILL_DATABASE`, default `data/rill.db`).
    pub database_path: PathBuf,
    /// Start even if other accounts on the machine can read the database's files
    /// (`RILL_UNSAFE_FILE_MODES=yes`; otherwise Rill refuses and says which `chmod` fixes it).
    pub unsafe_file_modes: bool,
    /// In single-user mode, every conversation belongs to this owner (`RILL_OWNER`, default
    /// `local`).
    pub owner: String,
    /// Who may use the server and how requests are checked.
    pub access: AccessSettings,
    /// What one person may ask of the server.
    pub limits: LimitSettings,
    /// How many connections the server holds, and how long it waits for a request.
    pub connections: ConnectionSettings,
    pub providers: Vec<ProviderConfig>,
    /// `provider/model` used for new conversations (`RILL_DEFAULT_MODEL`, default: the first model).
    pub default_model: Option<String>,
    /// Delay between the development model's words (`RILL_DEV_WORD_DELAY_MS`, default 40).
    pub dev_word_delay: Duration,
    /// Per-model prices laid over the shipped table (`[prices."provider/model"]` in the file).
    pub price_overrides: std::collections::HashMap<String, PriceEntry>,
    /// The in-process model; `None` when switched off (`RILL_LOCAL_MODEL=off`).
    pub local_model: Option<LocalModelSettings>,
    pub turns: TurnSettings,
    pub conversations: ConversationSettings,
    /// Logs and metrics.
    pub ops: OpsSettings,
}

/// How the server reports on itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpsSettings {
    /// Log lines as JSON objects for log shippers, or text for people (`RILL_LOG_FORMAT=json`,
    /// default `text`).
    pub log_format: LogFormat,
    /// A bearer token that may read `/metrics` (`RILL_METRICS_TOKEN`); admins may always read it.
    pub metrics_token: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How people are told apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// No sign-in; every request is the one owner. Only on a loopback address (`RILL_AUTH=single-user`,
    /// the default).
    #[default]
    SingleUser,
    /// Sign-in required: local accounts, or a trusted proxy's header (`RILL_AUTH=accounts`).
    Accounts,
}

/// Who may reach the server, and from where.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessSettings {
    pub mode: AuthMode,
    /// The address people use, e.g. `https://chat.example.com` (`RILL_PUBLIC_URL`). Its host is
    /// allowed, and `https` makes the session cookie `Secure`.
    pub public_url: Option<PublicUrl>,
    /// More host names this server answers for (`RILL_ALLOWED_HOSTS`, comma-separated). Loopback
    /// names and IP addresses are always allowed; any other `Host` is refused (421), which ends
    /// DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Serve a non-loopback address without accounts anyway
    /// (`RILL_UNSAFE_NO_AUTH_ON_NETWORK=yes`): anyone who reaches the port is the owner.
    pub unsafe_no_auth_on_network: bool,
    /// Reverse proxies whose `X-Forwarded-For` and single sign-on header are believed
    /// (`RILL_TRUSTED_PROXIES`, comma-separated addresses or CIDR ranges).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header a trusted proxy names the signed-in user with, e.g. `X-Forwarded-User`
    /// (`RILL_SSO_HEADER`; accounts mode only).
    pub sso_header: Option<axum::http::HeaderName>,
    /// How long a sign-in lasts however busy its session is (`RILL_SESSION_MAX_DAYS`, default
    /// 90); a session unused for 30 days ends sooner.
    pub session_max_age: Duration,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            public_url: None,
            allowed_hosts: Vec::new(),
            unsafe_no_auth_on_network: false,
            trusted_proxies: Vec::new(),
            sso_header: None,
            session_max_age: Duration::from_secs(DEFAULT_SESSION_MAX_DAYS * 24 * 3600),
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
        Err(ConfigError::Invalid(format!(
            "refusing to listen on {addr} without accounts: anyone who reaches it would read every \
             conversation and spend your API keys. Set RILL_AUTH=accounts and create an admin with \
             `rill user add --admin NAME`, or listen on 127.0.0.1 (LEPTOS_SITE_ADDR). To serve \
             it open anyway, set RILL_UNSAFE_NO_AUTH_ON_NETWORK=yes."
        )))
    }
}

/// How long a sign-in lasts, unless `RILL_SESSION_MAX_DAYS` says otherwise.
pub const DEFAULT_SESSION_MAX_DAYS: u64 = 90;

/// The public address, reduced to what the checks need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    pub https: bool,
    /// Lower-case host name or address, without port.
    pub host: String,
}

/// What one person may ask of the server at once and per minute.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitSettings {
    /// Largest request body in bytes; more is refused with 413 (`RILL_MAX_REQUEST_BYTES`, default
    /// 1048576).
    pub max_request_bytes: usize,
    /// Replies one person may have running at once (`RILL_MAX_RUNNING_PER_USER`, default 4).
    pub running_per_user: usize,
    /// Turns (sends and Continues) one person may start per minute (`RILL_TURNS_PER_MINUTE`,
    /// default 30).
    pub turns_per_minute: u32,
    /// Event streams (a tab's connection, a reply being read) one person may hold open at once
    /// (`RILL_MAX_STREAMS_PER_USER`, default 32).
    pub streams_per_user: usize,
    /// People with a budget (or under a site cap) may use models that have no price, counted
    /// as free (`RILL_ALLOW_UNPRICED_MODELS=yes`; otherwise such a turn is refused in words).
    pub allow_unpriced_models: bool,
    /// Changes one person may make per minute through the API besides sending (renames,
    /// system prompts, deletes, branch switches, settings…) (`RILL_WRITES_PER_MINUTE`, default 60).
    pub writes_per_minute: u32,
    /// Bytes one person may store (message text, titles, system prompts); past it, what would
    /// store more is refused in words (`RILL_STORAGE_QUOTA_MB`, default 1024; 0: no quota).
    pub storage_quota_bytes: Option<u64>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_request_bytes: 1 << 20,
            running_per_user: 4,
            turns_per_minute: 30,
            streams_per_user: 32,
            allow_unpriced_models: false,
            writes_per_minute: 60,
            storage_quota_bytes: Some(1024 * 1024 * 1024),
        }
    }
}

/// Connections: how many are held, and how long a request may take to arrive.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionSettings {
    /// Open connections in all; more are answered 503 and closed (`RILL_MAX_CONNECTIONS`,
    /// default: half the open-files limit left after a reserve of 64, at most 65,536).
    pub max_connections: Option<usize>,
    /// Open connections from one client address (an IPv6 /64 counts as one); trusted proxies
    /// are not counted (`RILL_MAX_CONNECTIONS_PER_ADDRESS`, default: a quarter of the total,
    /// between 8 and 256).
    pub max_per_address: Option<usize>,
    /// A request's headers must arrive within this, and an idle kept-alive connection is closed
    /// after it (`RILL_HEADER_TIMEOUT_SECS`, default 15).
    pub header_timeout: Duration,
    /// A request's body must arrive whole within this; later is 408 (`RILL_BODY_TIMEOUT_SECS`,
    /// default 30).
    pub body_timeout: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            max_connections: None,
            max_per_address: None,
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// What conversations start with, and how long deleted ones are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationSettings {
    /// The system prompt of every new conversation; each person can change it per conversation
    /// (`RILL_DEFAULT_SYSTEM_PROMPT`, default none).
    pub default_system_prompt: String,
    /// A deleted conversation can be undone at once, and its text is purged this long after
    /// (`RILL_PURGE_DELETED_AFTER_SECS`, default 86400: a day, for an operator to undo a mistake
    /// from a backup-free database by hand). Tokens and costs are kept for spending limits.
    pub purge_deleted_after: Duration,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        Self {
            default_system_prompt: String::new(),
            purge_deleted_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// Bounds on every turn, so that no provider can hang one or make it grow without limit.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnSettings {
    /// A provider that sends no bytes at all for this long fails the turn; pings and keep-alives
    /// count as life (`RILL_PROVIDER_IDLE_SECS`, default 120).
    pub provider_idle: Duration,
    /// Longest a turn may run, queueing included (`RILL_TURN_MAX_SECS`, default 900).
    pub max_duration: Duration,
    /// Cap on generated tokens per reply, sent to the provider in its own field; lowered to a
    /// model's own maximum where the price table knows it (`RILL_MAX_OUTPUT_TOKENS`, default 8192).
    pub max_output_tokens: u32,
    /// Longest reply Rill keeps, in characters, whatever the provider sends
    /// (`RILL_MAX_REPLY_CHARS`, default 400000).
    pub max_reply_chars: usize,
    /// Context window assumed for models whose window is not known
    /// (`RILL_DEFAULT_CONTEXT_TOKENS`, default 8192).
    pub default_context_tokens: u32,
    /// On SIGTERM, how long running replies get to finish before they are stored as interrupted
    /// (`RILL_SHUTDOWN_GRACE_SECS`, default 8: inside `docker stop`'s 10 s).
    pub shutdown_grace: Duration,
    /// How often a quiet event stream carries a heartbeat (fixed in production; tests shorten it).
    pub heartbeat: Duration,
    /// How long an ended turn's event log stays in memory for late readers (then: the database).
    pub keep_finished: Duration,
}

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            provider_idle: Duration::from_secs(120),
            max_duration: Duration::from_secs(900),
            max_output_tokens: 8192,
            max_reply_chars: 400_000,
            default_context_tokens: 8192,
            shutdown_grace: Duration::from_secs(8),
            heartbeat: Duration::from_secs(crate::model::HEARTBEAT_SECS),
            keep_finished: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LocalModelSettings {
    /// GGUF file (`RILL_LOCAL_MODEL`, default `models/SmolLM2-135M-Instruct.Q4_1.gguf`, which
    /// `scripts/fetch-model.sh` puts there).
    pub path: PathBuf,
    /// Inference threads (`RILL_LOCAL_THREADS`, default 1: a second thread only helps on an idle
    /// machine and collapses when the other core is busy serving).
    pub threads: usize,
    /// Longest reply in tokens (`RILL_LOCAL_MAX_TOKENS`, default 512).
    pub max_output_tokens: u32,
    /// Token cells of the key/value cache (`RILL_LOCAL_CONTEXT`, default 8192, SmolLM2's own
    /// context length; never more than the model's). Also the longest prompt plus reply. The
    /// cells are shared by the conversations whose cache is kept, and cost about 17 KB each
    /// with SmolLM2-135M: 140 MB at the default.
    pub context_tokens: usize,
    /// Requests that may wait for the local model behind the one generating; more are refused
    /// as busy (`RILL_LOCAL_QUEUE`, default 8).
    pub queue: usize,
    /// Longest a request waits for its turn before it is refused as busy
    /// (`RILL_LOCAL_QUEUE_WAIT_SECS`, default 120).
    pub queue_wait: Duration,
}

pub const DEFAULT_LOCAL_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Which wire protocol a provider speaks.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI itself: chat completions, models from the config.
    Openai,
    /// Any server speaking OpenAI chat completions (Ollama, llama.cpp, vLLM, OpenRouter, Groq …):
    /// the key is optional and the models are listed by the server where it offers `GET /models`.
    #[default]
    OpenaiCompatible,
    Anthropic,
    Gemini,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ProviderConfig {
    /// Prefix of this provider's model ids (`openai` → `openai/gpt-4o-mini`).
    pub id: String,
    #[serde(default)]
    pub kind: ProviderKind,
    /// The API root, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The key itself is never put in the file; only the name of the variable holding it.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(skip)]
    pub api_key: Option<String>,
    /// For `openai_compatible`, optional: the server's own list is used where it offers one.
    #[serde(default)]
    pub models: Vec<String>,
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

/// The optional TOML file named by `RILL_CONFIG`; the environment wins over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database: Option<PathBuf>,
    default_model: Option<String>,
    #[serde(default)]
    providers: Vec<ProviderConfig>,
    #[serde(default)]
    prices: std::collections::HashMap<String, PriceEntry>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Builds the config from any variable source, so tests need not touch the process environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = match var("RILL_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })?
            }
            None => FileConfig::default(),
        };
        let mut providers = file.providers;
        for provider in &mut providers {
            provider.api_key = provider.api_key_env.as_deref().and_then(&var);
        }
        // Hosted providers: each is added when its key is set.
        let hosted = [
            (
                ProviderKind::Openai,
                "openai",
                "OPENAI_API_KEY",
                "https://api.openai.com/v1",
                &["gpt-4o-mini", "gpt-4o"][..],
            ),
            (
                ProviderKind::Anthropic,
                "anthropic",
                "ANTHROPIC_API_KEY",
                "https://api.anthropic.com/v1",
                &["claude-sonnet-4-5", "claude-haiku-4-5"][..],
            ),
            (
                ProviderKind::Gemini,
                "gemini",
                "GEMINI_API_KEY",
                "https://generativelanguage.googleapis.com/v1beta",
                &["gemini-2.5-flash", "gemini-2.5-pro"][..],
            ),
        ];
        for (kind, id, key_var, default_url, default_models) in hosted {
            let Some(key) = var(key_var) else { continue };
            let upper = id.to_uppercase();
            providers.push(ProviderConfig {
                id: id.into(),
                kind,
                base_url: var(&format!("RILL_{upper}_BASE_URL"))
                    .unwrap_or_else(|| default_url.into()),
                api_key_env: Some(key_var.into()),
                api_key: Some(key),
                models: list(var(&format!("RILL_{upper}_MODELS")))
                    .unwrap_or_else(|| default_models.iter().map(|m| m.to_string()).collect()),
            });
        }
        if let Some(base_url) = var("RILL_OPENAI_COMPAT_URL") {
            providers.push(ProviderConfig {
                id: var("RILL_OPENAI_COMPAT_NAME").unwrap_or_else(|| "compat".into()),
                kind: ProviderKind::OpenaiCompatible,
                base_url,
                api_key_env: Some("RILL_OPENAI_COMPAT_API_KEY".into()),
                api_key: var("RILL_OPENAI_COMPAT_API_KEY"),
                models: list(var("RILL_OPENAI_COMPAT_MODELS")).unwrap_or_default(),
            });
        }
        for p in &providers {
            if p.id.is_empty() || p.id.contains('/') {
                return Err(ConfigError::Invalid(format!(
                    "provider id {:?} must be non-empty and contain no '/'",
                    p.id
                )));
            }
            if p.id == "local" || p.id == "dev" {
                return Err(ConfigError::Invalid(format!(
                    "provider id {:?} is reserved for the built-in models",
                    p.id
                )));
            }
            if providers.iter().filter(|q| q.id == p.id).count() > 1 {
                return Err(ConfigError::Invalid(format!(
                    "provider id {:?} is used twice",
                    p.id
                )));
            }
            if p.kind != ProviderKind::OpenaiCompatible {
                if p.models.is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "provider {} lists no models",
                        p.id
                    )));
                }
                if p.api_key.is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "provider {} needs an API key: set {}",
                        p.id,
                        p.api_key_env
                            .as_deref()
                            .unwrap_or("its api_key_env variable")
                    )));
                }
            }
        }
        let dev_word_delay = match var("RILL_DEV_WORD_DELAY_MS") {
            Some(ms) => Duration::from_millis(ms.parse().map_err(|_| {
                ConfigError::Invalid(format!("RILL_DEV_WORD_DELAY_MS={ms} is not a number"))
            })?),
            None => Duration::from_millis(40),
        };
        let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
            match var(name) {
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| ConfigError::Invalid(format!("{name}={v} is not a whole number"))),
                None => Ok(default),
            }
        };
        // A whole number, at least `min`, that fits the setting's type.
        let whole = |name: &str, default: u64, min: u64| -> Result<u64, ConfigError> {
            Ok(number(name, default)?.max(min))
        };
        fn fits<T: TryFrom<u64>>(name: &str, value: u64) -> Result<T, ConfigError> {
            T::try_from(value)
                .map_err(|_| ConfigError::Invalid(format!("{name}={value} is too large")))
        }
        // A time limit past this is no limit; the cap keeps every deadline computable.
        const MAX_SECS: u64 = 30 * 24 * 3600;
        let seconds = |name: &str, default: Duration, min: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(
                whole(name, default.as_secs(), min)?.min(MAX_SECS),
            ))
        };
        let d = TurnSettings::default();
        let turns = TurnSettings {
            provider_idle: seconds("RILL_PROVIDER_IDLE_SECS", d.provider_idle, 1)?,
            max_duration: seconds("RILL_TURN_MAX_SECS", d.max_duration, 1)?,
            shutdown_grace: seconds("RILL_SHUTDOWN_GRACE_SECS", d.shutdown_grace, 0)?,
            max_output_tokens: fits(
                "RILL_MAX_OUTPUT_TOKENS",
                whole("RILL_MAX_OUTPUT_TOKENS", d.max_output_tokens.into(), 1)?,
            )?,
            max_reply_chars: fits(
                "RILL_MAX_REPLY_CHARS",
                whole("RILL_MAX_REPLY_CHARS", d.max_reply_chars as u64, 1)?,
            )?,
            default_context_tokens: fits(
                "RILL_DEFAULT_CONTEXT_TOKENS",
                whole(
                    "RILL_DEFAULT_CONTEXT_TOKENS",
                    d.default_context_tokens.into(),
                    512,
                )?,
            )?,
            ..d
        };
        let local_model = match var("RILL_LOCAL_MODEL").as_deref() {
            Some("off") => None,
            path => Some(LocalModelSettings {
                path: PathBuf::from(path.unwrap_or(DEFAULT_LOCAL_MODEL)),
                threads: usize::try_from(number("RILL_LOCAL_THREADS", 1)?.max(1)).unwrap_or(1),
                max_output_tokens: u32::try_from(number("RILL_LOCAL_MAX_TOKENS", 512)?.max(1))
                    .unwrap_or(512),
                context_tokens: usize::try_from(number("RILL_LOCAL_CONTEXT", 8192)?.max(256))
                    .unwrap_or(8192),
                queue: fits("RILL_LOCAL_QUEUE", number("RILL_LOCAL_QUEUE", 8)?)?,
                queue_wait: seconds("RILL_LOCAL_QUEUE_WAIT_SECS", Duration::from_secs(120), 1)?,
            }),
        };
        let c = ConversationSettings::default();
        let default_system_prompt = var("RILL_DEFAULT_SYSTEM_PROMPT").unwrap_or_default();
        let conversations = ConversationSettings {
            default_system_prompt: crate::server::input::system_prompt(&default_system_prompt)
                .map_err(|e| ConfigError::Invalid(format!("RILL_DEFAULT_SYSTEM_PROMPT: {e}")))?
                .to_owned(),
            purge_deleted_after: seconds(
                "RILL_PURGE_DELETED_AFTER_SECS",
                c.purge_deleted_after,
                0,
            )?,
        };
        let access = access_settings(&var)?;
        let ops = OpsSettings {
            log_format: match var("RILL_LOG_FORMAT").as_deref().map(str::trim) {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError::Invalid(format!(
                        "RILL_LOG_FORMAT={other}: use text or json"
                    )))
                }
            },
            metrics_token: match var("RILL_METRICS_TOKEN") {
                Some(token) if token.trim().len() < 16 => {
                    return Err(ConfigError::Invalid(
                        "RILL_METRICS_TOKEN must be at least 16 characters".into(),
                    ))
                }
                token => token.map(|t| t.trim().to_owned()),
            },
        };
        let l = LimitSettings::default();
        let limits = LimitSettings {
            max_request_bytes: fits(
                "RILL_MAX_REQUEST_BYTES",
                whole(
                    "RILL_MAX_REQUEST_BYTES",
                    l.max_request_bytes as u64,
                    64 * 1024,
                )?,
            )?,
            running_per_user: fits(
                "RILL_MAX_RUNNING_PER_USER",
                whole("RILL_MAX_RUNNING_PER_USER", l.running_per_user as u64, 1)?,
            )?,
            turns_per_minute: fits(
                "RILL_TURNS_PER_MINUTE",
                whole("RILL_TURNS_PER_MINUTE", l.turns_per_minute.into(), 1)?,
            )?,
            streams_per_user: fits(
                "RILL_MAX_STREAMS_PER_USER",
                whole("RILL_MAX_STREAMS_PER_USER", l.streams_per_user as u64, 1)?,
            )?,
            allow_unpriced_models: var("RILL_ALLOW_UNPRICED_MODELS").as_deref() == Some("yes"),
            writes_per_minute: fits(
                "RILL_WRITES_PER_MINUTE",
                whole("RILL_WRITES_PER_MINUTE", l.writes_per_minute.into(), 1)?,
            )?,
            storage_quota_bytes: match number("RILL_STORAGE_QUOTA_MB", 1024)? {
                0 => None,
                mb => Some(mb.checked_mul(1024 * 1024).ok_or_else(|| {
                    ConfigError::Invalid(format!("RILL_STORAGE_QUOTA_MB={mb} is too large"))
                })?),
            },
        };
        let optional_count = |name: &str| -> Result<Option<usize>, ConfigError> {
            var(name)
                .map(|_| fits(name, whole(name, 1, 1)?))
                .transpose()
        };
        let shipped = ConnectionSettings::default();
        let connections = ConnectionSettings {
            max_connections: optional_count("RILL_MAX_CONNECTIONS")?,
            max_per_address: optional_count("RILL_MAX_CONNECTIONS_PER_ADDRESS")?,
            header_timeout: seconds("RILL_HEADER_TIMEOUT_SECS", shipped.header_timeout, 1)?,
            body_timeout: seconds("RILL_BODY_TIMEOUT_SECS", shipped.body_timeout, 1)?,
        };
        Ok(Self {
            price_overrides: file.prices,
            local_model,
            database_path: var("RILL_DATABASE")
                .map(PathBuf::from)
                .or(file.database)
                .unwrap_or_else(|| "data/rill.db".into()),
            unsafe_file_modes: var("RILL_UNSAFE_FILE_MODES").as_deref() == Some("yes"),
            owner: var("RILL_OWNER").unwrap_or_else(|| "local".into()),
            access,
            limits,
            connections,
            providers,
            default_model: var("RILL_DEFAULT_MODEL").or(file.default_model),
            dev_word_delay,
            turns,
            conversations,
            ops,
        })
    }
}

fn access_settings(var: &impl Fn(&str) -> Option<String>) -> Result<AccessSettings, ConfigError> {
    let mode = match var("RILL_AUTH").as_deref().map(str::trim) {
        None | Some("single-user") => AuthMode::SingleUser,
        Some("accounts") => AuthMode::Accounts,
        Some(other) => {
            return Err(ConfigError::Invalid(format!(
                "RILL_AUTH={other}: use single-user or accounts"
            )))
        }
    };
    let public_url = var("RILL_PUBLIC_URL")
        .map(|text| {
            let url = url::Url::parse(text.trim()).map_err(|e| {
                ConfigError::Invalid(format!("RILL_PUBLIC_URL={text} is not a URL: {e}"))
            })?;
            let host = url
                .host_str()
                .filter(|_| matches!(url.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "RILL_PUBLIC_URL={text} must be an http:// or https:// address"
                    ))
                })?;
            Ok(PublicUrl {
                https: url.scheme() == "https",
                host: host.trim_matches(['[', ']']).to_ascii_lowercase(),
            })
        })
        .transpose()?;
    let trusted_proxies: Vec<ipnet::IpNet> = list(var("RILL_TRUSTED_PROXIES"))
        .unwrap_or_default()
        .iter()
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::Invalid(format!(
                        "RILL_TRUSTED_PROXIES: {item} is not an address or CIDR range"
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    let sso_header = var("RILL_SSO_HEADER")
        .map(|name| {
            axum::http::HeaderName::try_from(name.trim()).map_err(|_| {
                ConfigError::Invalid(format!("RILL_SSO_HEADER={name} is not a header name"))
            })
        })
        .transpose()?;
    if sso_header.is_some() && mode != AuthMode::Accounts {
        return Err(ConfigError::Invalid(
            "RILL_SSO_HEADER needs RILL_AUTH=accounts".into(),
        ));
    }
    if sso_header.is_some() && trusted_proxies.is_empty() {
        return Err(ConfigError::Invalid(
            "RILL_SSO_HEADER needs RILL_TRUSTED_PROXIES: the header is believed only from them"
                .into(),
        ));
    }
    Ok(AccessSettings {
        mode,
        public_url,
        allowed_hosts: list(var("RILL_ALLOWED_HOSTS"))
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        unsafe_no_auth_on_network: var("RILL_UNSAFE_NO_AUTH_ON_NETWORK").as_deref() == Some("yes"),
        trusted_proxies,
        sso_header,
        session_max_age: Duration::from_secs(
            24 * 3600
                * match var("RILL_SESSION_MAX_DAYS") {
                    Some(days) => days
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|d| (1..=3650).contains(d))
                        .ok_or_else(|| {
                            ConfigError::Invalid(format!(
                                "RILL_SESSION_MAX_DAYS={days}: a whole number of days, 1 to 3650"
                            ))
                        })?,
                    None => DEFAULT_SESSION_MAX_DAYS,
                },
        ),
    })
}

fn list(value: Option<String>) -> Option<Vec<String>> {
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
        assert_eq!(c.database_path, PathBuf::from("data/rill.db"));
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

    /// Every `RILL_*` variable this module (and the command line) reads is documented in
    /// `.env.example`, and the file documents nothing they do not read.
    #[test]
    fn every_setting_is_documented_in_env_example() {
        fn names(text: &str) -> std::collections::BTreeSet<String> {
            text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .filter(|word| word.starts_with("RILL_") && word.len() > "RILL_".len())
                .map(str::to_owned)
                .collect()
        }
        let code = include_str!("config.rs");
        let code = &code[..code.find("#[cfg(test)]").unwrap_or(code.len())];
        let mut read = names(code);
        // The command line's one variable.
        read.extend(names(include_str!("cli.rs")));
        // Built from the provider's name: RILL_{OPENAI,ANTHROPIC,GEMINI}_{BASE_URL,MODELS}.
        read.retain(|n| n != "RILL_" && !n.ends_with('_'));
        for provider in ["OPENAI", "ANTHROPIC", "GEMINI"] {
            for setting in ["BASE_URL", "MODELS"] {
                read.insert(format!("RILL_{provider}_{setting}"));
            }
        }
        let documented = names(include_str!("../../.env.example"));
        assert_eq!(read, documented);
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
