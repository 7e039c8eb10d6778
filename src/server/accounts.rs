//! Accounts: passwords (argon2id), sign-in with throttling, sign-up when open, the trusted
//! proxy's users, admin actions, and the audit log they all write.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::OnceLock;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_sessions::Session;

use super::db::accounts::{self as store, NewAuditEntry, NewUser, User};
use super::db::{self, DbError};
use super::identity::{AnonymousRequest, Principal, SessionUser, SESSION_USER};
use super::AppState;
use crate::error::ApiError;
use crate::format::format_cost;

/// Sign-in attempts at one account from one address per minute (a burst of this many, then one
/// every 12 s). Keyed by the pair, so that guessing from one address cannot lock the owner out
/// from another.
const ATTEMPTS_PER_ACCOUNT_AND_ADDRESS: u32 = 5;
/// Sign-in attempts at one account from all addresses per hour: bounds a guesser with many
/// addresses (at the price that such a guesser can lock the account for a while).
const ATTEMPTS_PER_ACCOUNT_HOURLY: u32 = 60;
/// Sign-in attempts per client address per minute.
const ATTEMPTS_PER_ADDRESS: u32 = 20;
/// Passwords: at least this many characters…
pub const MIN_PASSWORD_CHARS: usize = 8;
/// …and at most this many bytes, so hashing cannot be made to take long.
const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_USERNAME_CHARS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("wrong username or password")]
    WrongCredentials,
    #[error("this account is disabled; ask an admin")]
    Disabled,
    #[error("too many sign-in attempts; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("the username {0:?} is taken")]
    NameTaken(String),
    #[error("a username has 1 to 64 letters (a–z), digits, and . _ - @")]
    BadUsername,
    #[error("a password has at least {MIN_PASSWORD_CHARS} characters (and at most {MAX_PASSWORD_BYTES} bytes)")]
    BadPassword,
    #[error("sign-up is closed; ask an admin for an account")]
    SignupClosed,
    #[error("only admins can do this")]
    NotAdmin,
    #[error("no such user")]
    NoSuchUser,
    #[error("a budget is a number of dollars, zero or more")]
    BadBudget,
    #[error("you cannot disable your own account")]
    DisableSelf,
    #[error("passwords belong to the single sign-on proxy here")]
    ViaProxy,
    #[error("the session could not be stored")]
    Session(#[from] tower_sessions::session::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        let message = error.to_string();
        match error {
            AccountError::WrongCredentials => ApiError::Unauthorized(message),
            AccountError::Disabled | AccountError::NotAdmin | AccountError::SignupClosed => {
                ApiError::Forbidden(message)
            }
            AccountError::Throttled(_) => ApiError::TooManyRequests(message),
            AccountError::NameTaken(_) => ApiError::Conflict(message),
            AccountError::BadUsername
            | AccountError::BadPassword
            | AccountError::BadBudget
            | AccountError::DisableSelf
            | AccountError::ViaProxy => ApiError::BadRequest(message),
            AccountError::NoSuchUser => ApiError::NotFound(message),
            AccountError::Session(e) => {
                tracing::error!("session store: {e}");
                ApiError::Internal
            }
            AccountError::Db(e) => e.into(),
        }
    }
}

/// Sign-in throttles, shared by every request.
pub struct SignInThrottle {
    by_account_and_address: DefaultKeyedRateLimiter<(String, Option<IpAddr>)>,
    by_account: DefaultKeyedRateLimiter<String>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        let n = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            by_account_and_address: RateLimiter::keyed(Quota::per_minute(n(
                ATTEMPTS_PER_ACCOUNT_AND_ADDRESS,
            ))),
            by_account: RateLimiter::keyed(Quota::per_hour(n(ATTEMPTS_PER_ACCOUNT_HOURLY))),
            by_address: RateLimiter::keyed(Quota::per_minute(n(ATTEMPTS_PER_ADDRESS))),
        }
    }
}

impl SignInThrottle {
    /// Counts one attempt at `username` from `address`; `Err` says how long to wait.
    fn attempt(&self, username: &str, address: Option<IpAddr>) -> Result<(), AccountError> {
        let now = DefaultClock::default().now();
        if let Some(address) = address {
            self.by_address
                .check_key(&address)
                .map_err(|n| AccountError::Throttled(n.wait_time_from(now)))?;
        }
        let account = username.to_ascii_lowercase();
        self.by_account_and_address
            .check_key(&(account.clone(), address))
            .map_err(|n| AccountError::Throttled(n.wait_time_from(now)))?;
        self.by_account
            .check_key(&account)
            .map_err(|n| AccountError::Throttled(n.wait_time_from(now)))?;
        // Forget keys whose limits have recovered, so that guessing many names grows nothing.
        self.by_account_and_address.retain_recent();
        self.by_account.retain_recent();
        self.by_address.retain_recent();
        Ok(())
    }
}

pub fn check_username(username: &str) -> Result<&str, AccountError> {
    let name = username.trim();
    // ASCII only: no lookalikes (a Cyrillic "а" in "аdmin"), and names compare without case.
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if name.is_empty() || name.chars().count() > MAX_USERNAME_CHARS || !name.chars().all(allowed) {
        return Err(AccountError::BadUsername);
    }
    Ok(name)
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::BadPassword);
    }
    Ok(())
}

/// argon2id with the library's recommended parameters; off the async threads (it takes tens
/// of milliseconds of CPU by design).
pub async fn hash_password(password: &str) -> Result<String, AccountError> {
    check_password(password)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password_auth::generate_hash(password))
        .await
        .map_err(|e| {
            tracing::error!("hashing task: {e}");
            AccountError::Db(DbError::Corrupt("hashing failed".into()))
        })
}

/// Whether `password` matches `hash`. An account without a hash (or no account at all) is
/// checked against a stand-in hash, so a wrong name takes as long as a wrong password.
async fn verify_password(password: &str, hash: Option<&str>) -> bool {
    static STAND_IN: OnceLock<String> = OnceLock::new();
    let known = hash.is_some();
    let hash = hash.map(str::to_owned);
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| {
            STAND_IN
                .get_or_init(|| password_auth::generate_hash("x"))
                .clone()
        });
        password_auth::verify_password(password.as_bytes(), &hash).is_ok()
    })
    .await
    .unwrap_or(false)
        && known
}

/// Writes an audit entry; a failure to write is logged, never fatal to the action.
pub async fn audit(
    state: &AppState,
    actor: Option<&str>,
    action: &str,
    target: Option<&str>,
    address: Option<IpAddr>,
    detail: Option<String>,
) {
    let entry = NewAuditEntry {
        actor,
        action,
        target,
        address: address.map(|a| a.to_string()),
        detail,
    };
    tracing::info!(actor, action, target, address = ?address, "audit");
    if let Err(e) = store::audit(&state.db, &entry).await {
        tracing::error!("could not write the audit log: {e}");
    }
}

/// Checks the password and signs the session in (under a new session id).
pub async fn sign_in(
    state: &AppState,
    request: &AnonymousRequest,
    username: &str,
    password: &str,
) -> Result<User, AccountError> {
    let (session, address) = (&request.session, request.address);
    // A name no account can have is a wrong name, refused before anything is stored or hashed.
    let Ok(username) = check_username(username) else {
        return Err(AccountError::WrongCredentials);
    };
    state.sign_in_throttle.attempt(username, address)?;
    let user = store::user_by_name(&state.db, username).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let matches = verify_password(password, hash).await;
    let user = match user {
        Some(user) if matches => user,
        _ => {
            audit(state, None, "sign-in failed", Some(username), address, None).await;
            return Err(AccountError::WrongCredentials);
        }
    };
    if user.is_disabled() {
        audit(
            state,
            None,
            "sign-in refused: disabled",
            Some(&user.username),
            address,
            None,
        )
        .await;
        return Err(AccountError::Disabled);
    }
    start_session(session, &user).await?;
    audit(
        state,
        Some(&user.username),
        "signed in",
        None,
        address,
        None,
    )
    .await;
    Ok(user)
}

async fn start_session(session: &Session, user: &User) -> Result<(), AccountError> {
    // A new id at sign-in: a session id planted before it is worth nothing after.
    session.cycle_id().await?;
    session
        .insert(
            SESSION_USER,
            SessionUser {
                id: user.id.clone(),
                epoch: user.session_epoch,
            },
        )
        .await?;
    Ok(())
}

/// Creates an account from the sign-in page, when an admin has opened sign-up.
pub async fn sign_up(
    state: &AppState,
    request: &AnonymousRequest,
    username: &str,
    password: &str,
) -> Result<User, AccountError> {
    let (session, address) = (&request.session, request.address);
    let settings = store::site_settings(&state.db).await?;
    if !settings.open_signup {
        return Err(AccountError::SignupClosed);
    }
    let username = check_username(username)?;
    // Sign-ups count against the same throttles as sign-ins.
    state.sign_in_throttle.attempt(username, address)?;
    let hash = hash_password(password).await?;
    let user = store::create_user(
        &state.db,
        NewUser {
            username,
            password_hash: Some(&hash),
            is_admin: false,
            monthly_budget_usd: settings.default_budget_usd,
        },
    )
    .await?
    .ok_or_else(|| AccountError::NameTaken(username.to_owned()))?;
    start_session(session, &user).await?;
    audit(
        state,
        Some(&user.username),
        "signed up",
        None,
        address,
        None,
    )
    .await;
    Ok(user)
}

pub async fn sign_out(
    state: &AppState,
    session: &Session,
    principal: &Principal,
    address: Option<IpAddr>,
) -> Result<(), AccountError> {
    session.flush().await?;
    audit(
        state,
        Some(&principal.username),
        "signed out",
        None,
        address,
        None,
    )
    .await;
    Ok(())
}

/// Changes the signed-in user's own password; their other sessions end, this one stays.
pub async fn change_password(
    state: &AppState,
    session: &Session,
    principal: &Principal,
    current: &str,
    new: &str,
    address: Option<IpAddr>,
) -> Result<(), AccountError> {
    if principal.via_proxy {
        return Err(AccountError::ViaProxy);
    }
    let id = principal
        .user_id
        .as_deref()
        .ok_or(AccountError::NoSuchUser)?;
    let user = store::user_by_id(&state.db, id)
        .await?
        .ok_or(AccountError::NoSuchUser)?;
    // Checking the current password is a sign-in attempt, and throttled like one.
    state.sign_in_throttle.attempt(&user.username, address)?;
    if !verify_password(current, user.password_hash.as_deref()).await {
        audit(
            state,
            Some(&user.username),
            "password change refused",
            None,
            address,
            None,
        )
        .await;
        return Err(AccountError::WrongCredentials);
    }
    let hash = hash_password(new).await?;
    store::set_password(&state.db, id, &hash).await?;
    let user = store::user_by_id(&state.db, id)
        .await?
        .ok_or(AccountError::NoSuchUser)?;
    start_session(session, &user).await?;
    audit(
        state,
        Some(&user.username),
        "changed password",
        None,
        address,
        None,
    )
    .await;
    Ok(())
}

/// The user a trusted proxy names: created on first sight (not an admin, the default budget).
pub async fn proxy_sign_in(
    state: &AppState,
    username: &str,
    address: Option<IpAddr>,
) -> Result<User, ApiError> {
    if let Some(user) = store::user_by_name(&state.db, username).await? {
        if user.is_disabled() {
            return Err(AccountError::Disabled.into());
        }
        return Ok(user);
    }
    let username = check_username(username)?;
    let settings = store::site_settings(&state.db).await?;
    let created = store::create_user(
        &state.db,
        NewUser {
            username,
            password_hash: None,
            is_admin: false,
            monthly_budget_usd: settings.default_budget_usd,
        },
    )
    .await?;
    match created {
        Some(user) => {
            audit(
                state,
                Some(username),
                "created by single sign-on",
                None,
                address,
                None,
            )
            .await;
            Ok(user)
        }
        // Another request created it a moment ago.
        None => store::user_by_name(&state.db, username)
            .await?
            .ok_or(ApiError::Internal),
    }
}

/// Admin actions: each checks the actor is an admin and is written to the audit log.
pub struct Admin<'a> {
    pub state: &'a AppState,
    pub actor: &'a Principal,
    pub address: Option<IpAddr>,
}

impl<'a> Admin<'a> {
    pub fn new(
        state: &'a AppState,
        actor: &'a Principal,
        address: Option<IpAddr>,
    ) -> Result<Self, AccountError> {
        if !actor.is_admin {
            return Err(AccountError::NotAdmin);
        }
        Ok(Self {
            state,
            actor,
            address,
        })
    }

    async fn audit(&self, action: &str, target: Option<&str>, detail: Option<String>) {
        audit(
            self.state,
            Some(&self.actor.username),
            action,
            target,
            self.address,
            detail,
        )
        .await;
    }

    async fn user(&self, id: &str) -> Result<User, AccountError> {
        store::user_by_id(&self.state.db, id)
            .await?
            .ok_or(AccountError::NoSuchUser)
    }

    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        is_admin: bool,
        monthly_budget_usd: Option<f64>,
    ) -> Result<User, AccountError> {
        let username = check_username(username)?;
        let budget = check_budget(monthly_budget_usd)?;
        let hash = hash_password(password).await?;
        let user = store::create_user(
            &self.state.db,
            NewUser {
                username,
                password_hash: Some(&hash),
                is_admin,
                monthly_budget_usd: budget,
            },
        )
        .await?
        .ok_or_else(|| AccountError::NameTaken(username.to_owned()))?;
        let role = if is_admin { "admin" } else { "user" };
        self.audit(
            "created user",
            Some(username),
            Some(format!("role {role}, budget {}", budget_words(budget))),
        )
        .await;
        Ok(user)
    }

    pub async fn set_disabled(&self, id: &str, disabled: bool) -> Result<(), AccountError> {
        let user = self.user(id).await?;
        if disabled && self.actor.user_id.as_deref() == Some(id) {
            return Err(AccountError::DisableSelf);
        }
        store::set_disabled(&self.state.db, id, disabled).await?;
        let action = if disabled {
            "disabled user"
        } else {
            "enabled user"
        };
        self.audit(action, Some(&user.username), None).await;
        Ok(())
    }

    pub async fn reset_password(&self, id: &str, password: &str) -> Result<(), AccountError> {
        let user = self.user(id).await?;
        let hash = hash_password(password).await?;
        store::set_password(&self.state.db, id, &hash).await?;
        self.audit("reset password", Some(&user.username), None)
            .await;
        Ok(())
    }

    pub async fn set_budget(&self, id: &str, budget: Option<f64>) -> Result<(), AccountError> {
        let user = self.user(id).await?;
        let budget = check_budget(budget)?;
        store::set_budget(&self.state.db, id, budget).await?;
        self.audit(
            "set budget",
            Some(&user.username),
            Some(budget_words(budget)),
        )
        .await;
        Ok(())
    }

    pub async fn set_site_settings(
        &self,
        settings: &crate::model::accounts::SiteSettings,
    ) -> Result<(), AccountError> {
        check_budget(settings.default_budget_usd)?;
        store::set_site_settings(&self.state.db, settings).await?;
        self.audit(
            "changed settings",
            None,
            Some(format!(
                "open sign-up {}, default budget {}",
                if settings.open_signup { "on" } else { "off" },
                budget_words(settings.default_budget_usd)
            )),
        )
        .await;
        Ok(())
    }
}

fn check_budget(budget: Option<f64>) -> Result<Option<f64>, AccountError> {
    match budget {
        Some(b) if !b.is_finite() || b < 0.0 => Err(AccountError::BadBudget),
        other => Ok(other),
    }
}

fn budget_words(budget: Option<f64>) -> String {
    budget.map_or_else(
        || "none".to_owned(),
        |b| format!("{} a month", format_cost(b)),
    )
}

/// `rill user add`: creates a user from the command line (the first admin, before anyone can
/// sign in). Returns the user, or an error in words.
pub async fn add_user_from_cli(
    db: &db::Db,
    username: &str,
    password: &str,
    is_admin: bool,
) -> Result<User, AccountError> {
    let username = check_username(username)?;
    let hash = hash_password(password).await?;
    let settings = store::site_settings(db).await?;
    let user = store::create_user(
        db,
        NewUser {
            username,
            password_hash: Some(&hash),
            is_admin,
            monthly_budget_usd: if is_admin {
                None
            } else {
                settings.default_budget_usd
            },
        },
    )
    .await?
    .ok_or_else(|| AccountError::NameTaken(username.to_owned()))?;
    let entry = NewAuditEntry {
        actor: None,
        action: "created user from the command line",
        target: Some(username),
        address: None,
        detail: Some(if is_admin { "role admin" } else { "role user" }.into()),
    };
    store::audit(db, &entry).await?;
    Ok(user)
}
