//! Accounts: passwords (argon2id), sign-in with throttling, sign-up when open, the trusted
//! proxy's users, admin actions, and the audit log they all write.

use std::net::IpAddr;
use std::time::Duration;

use tower_sessions::Session;
use uuid::Uuid;

use super::api_keys;
use super::context::AnonymousRequest;
use super::db::accounts::{self as store, NewAuditEntry, NewUser, User};
use super::db::groups;
use super::db::{self, DbError};
use super::passwords::{PasswordError, Passwords};
use super::principal::{Principal, SessionUser, SESSION_USER};
use super::throttle::Wait;
use super::AppState;
use crate::error::ApiError;
use crate::format::format_cost;
use crate::model::api_keys::{ApiKeyView, CreatedApiKey, NewApiKey};
use crate::model::groups::{MAX_GROUPS, MAX_GROUP_NAME_CHARS};

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
    #[error("open sign-up needs a monthly budget for new users, so that strangers cannot spend without limit")]
    SignupNeedsBudget,
    #[error("no such user")]
    NoSuchUser,
    #[error("a budget is a number of dollars, zero or more")]
    BadBudget,
    #[error("you cannot disable your own account")]
    DisableSelf,
    #[error("passwords belong to the single sign-on proxy here")]
    ViaProxy,
    #[error("passwords do not sign in here; use the sign-in page's button")]
    PasswordsOff,
    #[error("your account signs in through your organization's sign-in; it has no password here")]
    NoOwnPassword,
    #[error("this name belongs to a service account, which never signs in")]
    ServiceAccountSignIn,
    #[error("a service account has no password: scripts use its API keys")]
    ServiceAccountPassword,
    #[error("a service account cannot be an admin")]
    ServiceAccountAdmin,
    #[error("service accounts need accounts (RILL_AUTH=accounts); without them every key acts for the one owner")]
    ServiceAccountsNeedAccounts,
    #[error("that account is a person's: only they make its API keys")]
    NotServiceAccount,
    #[error("no such group")]
    NoSuchGroup,
    #[error("a group named {0:?} exists already")]
    GroupNameTaken(String),
    #[error("a group's name has 1 to {MAX_GROUP_NAME_CHARS} characters")]
    BadGroupName,
    #[error("there are {MAX_GROUPS} groups already; delete one first")]
    TooManyGroups,
    #[error("unknown model {0}")]
    UnknownModel(String),
    #[error("{0}")]
    Passwords(#[from] PasswordError),
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
            AccountError::Disabled
            | AccountError::NotAdmin
            | AccountError::SignupClosed
            | AccountError::PasswordsOff
            | AccountError::NoOwnPassword
            | AccountError::ServiceAccountSignIn => ApiError::Forbidden(message),
            AccountError::Throttled(_) => ApiError::TooManyRequests(message),
            AccountError::NameTaken(_) | AccountError::GroupNameTaken(_) => {
                ApiError::Conflict(message)
            }
            AccountError::BadUsername
            | AccountError::BadPassword
            | AccountError::BadBudget
            | AccountError::DisableSelf
            | AccountError::SignupNeedsBudget
            | AccountError::ViaProxy
            | AccountError::BadGroupName
            | AccountError::ServiceAccountPassword
            | AccountError::ServiceAccountAdmin
            | AccountError::ServiceAccountsNeedAccounts
            | AccountError::NotServiceAccount
            | AccountError::TooManyGroups
            | AccountError::UnknownModel(_) => ApiError::BadRequest(message),
            AccountError::NoSuchUser | AccountError::NoSuchGroup => ApiError::NotFound(message),
            AccountError::Passwords(PasswordError::Busy) => ApiError::Unavailable(message),
            AccountError::Passwords(PasswordError::Stopped) => {
                tracing::error!("{message}");
                ApiError::Internal
            }
            AccountError::Session(e) => {
                tracing::error!("session store: {e}");
                ApiError::Internal
            }
            AccountError::Db(e) => e.into(),
        }
    }
}

impl From<Wait> for AccountError {
    fn from(Wait(wait): Wait) -> Self {
        AccountError::Throttled(wait)
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

/// Refuses password sign-in, sign-up and password changes when only the identity provider signs
/// people in.
fn passwords_sign_in(state: &AppState) -> Result<(), AccountError> {
    match &state.config.oidc {
        Some(oidc) if !oidc.password_sign_in => Err(AccountError::PasswordsOff),
        _ => Ok(()),
    }
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::BadPassword);
    }
    Ok(())
}

/// argon2id with the library's recommended parameters, on the hashing threads (see
/// `passwords`).
pub async fn hash_password(passwords: &Passwords, password: &str) -> Result<String, AccountError> {
    check_password(password)?;
    Ok(passwords.hash(password.to_owned()).await?)
}

/// Whether `password` matches `hash`. An account without a hash (or no account at all) is
/// checked against a stand-in hash, so a wrong name takes as long as a wrong password.
async fn verify_password(
    passwords: &Passwords,
    password: &str,
    hash: Option<&str>,
) -> Result<bool, AccountError> {
    Ok(passwords
        .verify(password.to_owned(), hash.map(str::to_owned))
        .await?)
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
    let address = request.address;
    passwords_sign_in(state)?;
    // A name no account can have is a wrong name, refused before anything is stored or hashed.
    let Ok(username) = check_username(username) else {
        return Err(AccountError::WrongCredentials);
    };
    let user = store::user_by_name(&state.db, username).await?;
    let known = known_device(state, request, user.as_ref()).await?;
    state
        .sign_in_throttle
        .attempt_everywhere(&state.db, username, address, known)
        .await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let matches = verify_password(&state.passwords, password, hash).await?;
    let user = match user {
        Some(user) if matches => user,
        _ => {
            audit_failure(state, username, address).await;
            return Err(AccountError::WrongCredentials);
        }
    };
    if !known {
        state
            .sign_in_throttle
            .succeeded_everywhere(&state.db, username)
            .await;
    }
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
    start_session(&request.session, &user).await?;
    remember_device(state, request, &user, known).await;
    // A new browser draws the page in the colours this person chose elsewhere.
    super::preferences::adopt_account_theme(&request.cookies, &user);
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

/// Failed sign-ins are written to the audit log once per account and address an hour, with a
/// count, so a flood of guesses is one line rather than a flood.
async fn audit_failure(state: &AppState, username: &str, address: Option<IpAddr>) {
    let address = address.map(|a| a.to_string());
    tracing::info!(target = username, address, "audit: sign-in failed");
    if let Err(e) = store::audit_failure(&state.db, username, address.as_deref()).await {
        tracing::error!("could not write the audit log: {e}");
    }
}

/// The known-device cookie's name: `__Host-` and `Secure` over https, like the session's.
fn device_cookie_name(state: &AppState) -> &'static str {
    if https(state) {
        "__Host-rill_device"
    } else {
        "rill_device"
    }
}

fn https(state: &AppState) -> bool {
    state
        .config
        .access
        .public_url
        .as_ref()
        .is_some_and(|u| u.https)
}

/// Whether this browser has signed in to `user` before (its device cookie names them).
async fn known_device(
    state: &AppState,
    request: &AnonymousRequest,
    user: Option<&User>,
) -> Result<bool, AccountError> {
    let (Some(user), Some(cookie)) = (user, request.cookies.get(device_cookie_name(state))) else {
        return Ok(false);
    };
    let digest = super::sessions::token_digest(cookie.value());
    Ok(store::device_user(&state.db, &digest).await?.as_deref() == Some(user.id.as_str()))
}

/// How long a browser stays known after it last signed in.
const DEVICE_DAYS: i64 = 365;

/// Marks this browser as one `user` signs in from: a new random token in a long-lived,
/// HTTP-only cookie, its digest stored (a browser already known keeps its token). Failing to
/// remember is logged; the sign-in stands.
async fn remember_device(state: &AppState, request: &AnonymousRequest, user: &User, known: bool) {
    let name = device_cookie_name(state);
    let token = match request.cookies.get(name) {
        Some(cookie) if known => cookie.value().to_owned(),
        _ => format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
    };
    let digest = super::sessions::token_digest(&token);
    if let Err(e) = store::remember_device(&state.db, &user.id, &digest).await {
        tracing::error!("could not remember the browser: {e}");
        return;
    }
    let cookie = tower_sessions::cookie::Cookie::build((name, token))
        .path("/")
        .http_only(true)
        .secure(https(state))
        .same_site(tower_sessions::cookie::SameSite::Lax)
        .max_age(tower_sessions::cookie::time::Duration::days(DEVICE_DAYS))
        .build();
    request.cookies.add(cookie);
}

pub(super) async fn start_session(session: &Session, user: &User) -> Result<(), AccountError> {
    // A new id at sign-in: a session id planted before it is worth nothing after.
    session.cycle_id().await?;
    session
        .insert(
            SESSION_USER,
            SessionUser {
                id: user.id.clone(),
                epoch: user.session_epoch,
                signed_in_at: db::now_ms(),
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
    passwords_sign_in(state)?;
    let settings = store::site_settings(&state.db).await?;
    if !settings.signup_is_open() {
        return Err(AccountError::SignupClosed);
    }
    let username = check_username(username)?;
    // Few accounts per address a day; and the same throttles as sign-ins.
    state
        .sign_in_throttle
        .sign_up_everywhere(&state.db, address)
        .await?;
    state
        .sign_in_throttle
        .attempt_everywhere(&state.db, username, address, false)
        .await?;
    let hash = hash_password(&state.passwords, password).await?;
    let user = store::create_user(
        &state.db,
        NewUser {
            username,
            password_hash: Some(&hash),
            is_admin: false,
            monthly_budget_usd: settings.default_budget_usd,
            service: false,
        },
    )
    .await?
    .ok_or_else(|| AccountError::NameTaken(username.to_owned()))?;
    state
        .sign_in_throttle
        .succeeded_everywhere(&state.db, username)
        .await;
    start_session(session, &user).await?;
    remember_device(state, request, &user, false).await;
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
    request: &AnonymousRequest,
    principal: &Principal,
    current: &str,
    new: &str,
) -> Result<(), AccountError> {
    let (session, address) = (&request.session, request.address);
    if principal.via_proxy {
        return Err(AccountError::ViaProxy);
    }
    passwords_sign_in(state)?;
    let id = principal
        .user_id
        .as_deref()
        .ok_or(AccountError::NoSuchUser)?;
    let user = store::user_by_id(&state.db, id)
        .await?
        .ok_or(AccountError::NoSuchUser)?;
    if user.password_hash.is_none() {
        return Err(AccountError::NoOwnPassword);
    }
    // Checking the current password is a sign-in attempt, and throttled like one.
    let known = known_device(state, request, Some(&user)).await?;
    state
        .sign_in_throttle
        .attempt_everywhere(&state.db, &user.username, address, known)
        .await?;
    if !verify_password(&state.passwords, current, user.password_hash.as_deref()).await? {
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
    if !known {
        state
            .sign_in_throttle
            .succeeded_everywhere(&state.db, &user.username)
            .await;
    }
    let hash = hash_password(&state.passwords, new).await?;
    store::set_password(&state.db, id, &hash).await?;
    let user = store::user_by_id(&state.db, id)
        .await?
        .ok_or(AccountError::NoSuchUser)?;
    start_session(session, &user).await?;
    // The change forgot every known browser; this one, which knows the password, stays known.
    remember_device(state, request, &user, false).await;
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
        return proxy_user(user);
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
            service: false,
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
        // Another request (or an admin) created it a moment ago.
        None => proxy_user(
            store::user_by_name(&state.db, username)
                .await?
                .ok_or(ApiError::Internal)?,
        ),
    }
}

/// An existing account the proxy names, if it may be signed in that way.
fn proxy_user(user: User) -> Result<User, ApiError> {
    if user.service {
        // A person at the proxy with a service account's name gets none of its keys.
        return Err(AccountError::ServiceAccountSignIn.into());
    }
    if user.is_disabled() {
        return Err(AccountError::Disabled.into());
    }
    Ok(user)
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
        let hash = hash_password(&self.state.passwords, password).await?;
        let user = store::create_user(
            &self.state.db,
            NewUser {
                username,
                password_hash: Some(&hash),
                is_admin,
                monthly_budget_usd: budget,
                service: false,
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

    /// An account for scripts and tools: no password, never signed in, used through the API keys
    /// an admin makes for it; its budget and groups work as a person's do. It is never an admin.
    pub async fn create_service_account(
        &self,
        username: &str,
        is_admin: bool,
        monthly_budget_usd: Option<f64>,
    ) -> Result<User, AccountError> {
        if is_admin {
            return Err(AccountError::ServiceAccountAdmin);
        }
        if self.state.config.access.mode != super::config::AuthMode::Accounts {
            return Err(AccountError::ServiceAccountsNeedAccounts);
        }
        let username = check_username(username)?;
        let budget = check_budget(monthly_budget_usd)?;
        let user = store::create_user(
            &self.state.db,
            NewUser {
                username,
                password_hash: None,
                is_admin: false,
                monthly_budget_usd: budget,
                service: true,
            },
        )
        .await?
        .ok_or_else(|| AccountError::NameTaken(username.to_owned()))?;
        self.audit(
            "created service account",
            Some(username),
            Some(format!("budget {}", budget_words(budget))),
        )
        .await;
        Ok(user)
    }

    /// The service account `id`, whose keys an admin manages.
    async fn service_account(&self, id: &str) -> Result<User, AccountError> {
        let user = self.user(id).await?;
        if !user.service {
            return Err(AccountError::NotServiceAccount);
        }
        Ok(user)
    }

    /// Makes an API key for a service account; the answer holds the key, shown this once.
    pub async fn create_service_key(
        &self,
        id: &str,
        asked: NewApiKey,
    ) -> Result<CreatedApiKey, ApiError> {
        let account = self.service_account(id).await?;
        let made = api_keys::create(self.state, &account.owner(), asked).await?;
        self.audit(
            "made API key",
            Some(&account.username),
            Some(format!("{} ({})", made.view.name, made.view.id)),
        )
        .await;
        Ok(made)
    }

    pub async fn service_keys(&self, id: &str) -> Result<Vec<ApiKeyView>, ApiError> {
        let account = self.service_account(id).await?;
        api_keys::list(self.state, &account.owner()).await
    }

    pub async fn revoke_service_key(&self, id: &str, key: Uuid) -> Result<(), ApiError> {
        let account = self.service_account(id).await?;
        api_keys::revoke(self.state, &account.owner(), key).await?;
        self.audit(
            "revoked API key",
            Some(&account.username),
            Some(key.to_string()),
        )
        .await;
        Ok(())
    }

    /// Accounts with failed sign-ins in the last hour: the most failures first, and how many.
    pub async fn lockouts(
        &self,
    ) -> Result<(Vec<crate::model::accounts::Lockout>, usize), AccountError> {
        Ok(self
            .state
            .sign_in_throttle
            .lockouts_everywhere(&self.state.db, crate::model::accounts::LOCKOUTS_SHOWN)
            .await?)
    }

    pub async fn clear_lockout(&self, username: &str) -> Result<(), AccountError> {
        let username = check_username(username)?;
        if self
            .state
            .sign_in_throttle
            .clear_everywhere(&self.state.db, username)
            .await?
        {
            self.audit("cleared sign-in lockout", Some(username), None)
                .await;
        }
        Ok(())
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
        if user.service {
            return Err(AccountError::ServiceAccountPassword);
        }
        let hash = hash_password(&self.state.passwords, password).await?;
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
        check_budget(settings.monthly_cap_usd)?;
        if settings.open_signup && settings.default_budget_usd.is_none() {
            return Err(AccountError::SignupNeedsBudget);
        }
        store::set_site_settings(&self.state.db, settings).await?;
        self.audit(
            "changed settings",
            None,
            Some(format!(
                "open sign-up {}, default budget {}, monthly cap {}, sharing {}",
                if settings.open_signup { "on" } else { "off" },
                budget_words(settings.default_budget_usd),
                settings
                    .monthly_cap_usd
                    .map_or_else(|| "none".to_owned(), format_cost),
                if settings.sharing { "on" } else { "off" },
            )),
        )
        .await;
        Ok(())
    }
}

/// Admin actions on groups: each checked, and written to the audit log by the group's name.
impl Admin<'_> {
    /// The group's name, or [`AccountError::NoSuchGroup`].
    async fn group(&self, id: Uuid) -> Result<String, AccountError> {
        groups::group_name(&self.state.db, id)
            .await?
            .ok_or(AccountError::NoSuchGroup)
    }

    pub async fn create_group(
        &self,
        name: &str,
        budget: Option<f64>,
    ) -> Result<Uuid, AccountError> {
        let name = check_group_name(name)?;
        let budget = check_budget(budget)?;
        let id = Uuid::new_v4();
        changed(
            groups::create_group(&self.state.db, id, name, budget, db::now_ms()).await?,
            name,
        )?;
        self.audit(
            "created group",
            Some(name),
            Some(format!("budget {}", budget_words(budget))),
        )
        .await;
        Ok(id)
    }

    pub async fn rename_group(&self, id: Uuid, name: &str) -> Result<(), AccountError> {
        let name = check_group_name(name)?;
        let old = self.group(id).await?;
        changed(groups::rename_group(&self.state.db, id, name).await?, name)?;
        self.audit("renamed group", Some(name), Some(format!("was {old:?}")))
            .await;
        Ok(())
    }

    pub async fn delete_group(&self, id: Uuid) -> Result<(), AccountError> {
        let name = self.group(id).await?;
        changed(groups::delete_group(&self.state.db, id).await?, &name)?;
        self.audit("deleted group", Some(&name), None).await;
        Ok(())
    }

    pub async fn set_group_budget(
        &self,
        id: Uuid,
        budget: Option<f64>,
    ) -> Result<(), AccountError> {
        let budget = check_budget(budget)?;
        let name = self.group(id).await?;
        changed(
            groups::set_group_budget(&self.state.db, id, budget).await?,
            &name,
        )?;
        self.audit("set group budget", Some(&name), Some(budget_words(budget)))
            .await;
        Ok(())
    }

    /// Links the group to the identity provider's group `idp_group` (blank: unlinks it).
    pub async fn set_group_idp(&self, id: Uuid, idp_group: &str) -> Result<(), AccountError> {
        let idp_group = idp_group.trim();
        let idp_group = if idp_group.is_empty() {
            None
        } else {
            Some(check_group_name(idp_group)?)
        };
        let name = self.group(id).await?;
        changed(
            groups::set_idp_group(&self.state.db, id, idp_group).await?,
            &name,
        )?;
        self.audit(
            "linked group",
            Some(&name),
            Some(idp_group.map_or_else(
                || "to no provider group".to_owned(),
                |g| format!("to {g:?}"),
            )),
        )
        .await;
        Ok(())
    }

    /// Limits the models the group's members may use (none: every model).
    pub async fn set_group_models(&self, id: Uuid, models: &[String]) -> Result<(), AccountError> {
        if let Some(unknown) = models.iter().find(|m| !self.state.catalog.contains(m)) {
            return Err(AccountError::UnknownModel(crate::server::input::shown(
                unknown, 80,
            )));
        }
        let name = self.group(id).await?;
        changed(
            groups::set_group_models(&self.state.db, id, models).await?,
            &name,
        )?;
        let detail = if models.is_empty() {
            "every model".to_owned()
        } else {
            models.join(", ")
        };
        self.audit("set group models", Some(&name), Some(detail))
            .await;
        Ok(())
    }

    pub async fn add_group_member(&self, id: Uuid, username: &str) -> Result<(), AccountError> {
        let user = store::user_by_name(&self.state.db, username.trim())
            .await?
            .ok_or(AccountError::NoSuchUser)?;
        let name = self.group(id).await?;
        changed(
            groups::add_member(&self.state.db, id, &user.id).await?,
            &name,
        )?;
        self.audit("added to group", Some(&user.username), Some(name))
            .await;
        Ok(())
    }

    pub async fn remove_group_member(&self, id: Uuid, user_id: &str) -> Result<(), AccountError> {
        let user = self.user(user_id).await?;
        let name = self.group(id).await?;
        changed(
            groups::remove_member(&self.state.db, id, user_id).await?,
            &name,
        )?;
        self.audit("removed from group", Some(&user.username), Some(name))
            .await;
        Ok(())
    }
}

/// A group change's outcome as an error.
fn changed(outcome: groups::Changed, name: &str) -> Result<(), AccountError> {
    match outcome {
        groups::Changed::Done => Ok(()),
        groups::Changed::NoSuchGroup => Err(AccountError::NoSuchGroup),
        groups::Changed::NoSuchUser => Err(AccountError::NoSuchUser),
        groups::Changed::NameTaken => Err(AccountError::GroupNameTaken(name.to_owned())),
        groups::Changed::TooMany => Err(AccountError::TooManyGroups),
    }
}

fn check_group_name(name: &str) -> Result<&str, AccountError> {
    let name = name.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_GROUP_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AccountError::BadGroupName);
    }
    Ok(name)
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
    let hash = hash_password(&Passwords::start()?, password).await?;
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
            service: false,
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

/// What the page is told of a user who has just signed in (or up) with a password.
pub fn me_as(state: &AppState, user: &User) -> crate::model::accounts::Me {
    me(state, &Principal::of_user(user, false))
}

pub fn me(state: &AppState, principal: &Principal) -> crate::model::accounts::Me {
    let accounts = state.config.access.mode == super::config::AuthMode::Accounts;
    crate::model::accounts::Me {
        username: principal.username.clone(),
        is_admin: principal.is_admin,
        accounts,
        via_proxy: principal.via_proxy,
        can_change_password: accounts
            && !principal.via_proxy
            && principal.has_password
            && passwords_sign_in(state).is_ok(),
    }
}
