//! Who a request is: the one owner in single-user mode; in accounts mode the user of the session
//! cookie, or of a trusted proxy's header. Requests from nobody reach only the sign-in page, its
//! server functions and the static files.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Response, StatusCode};
use axum::middleware::Next;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::accounts;
use super::config::{AccessSettings, AuthMode};
use super::db::Owner;
use super::AppState;
use crate::error::ApiError;

/// The person a request acts for.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub owner: Owner,
    pub username: String,
    pub is_admin: bool,
    /// The user's row; `None` in single-user mode.
    pub user_id: Option<String>,
    /// Signed in by the trusted proxy's header rather than a session.
    pub via_proxy: bool,
}

impl Principal {
    /// Single-user mode: the configured owner, who is also the admin.
    pub fn single_user(owner: &str) -> Self {
        Self {
            owner: Owner(owner.to_owned()),
            username: owner.to_owned(),
            is_admin: true,
            user_id: None,
            via_proxy: false,
        }
    }

    pub fn of_user(user: &super::db::accounts::User, via_proxy: bool) -> Self {
        Self {
            owner: user.owner(),
            username: user.username.clone(),
            is_admin: user.is_admin,
            user_id: Some(user.id.clone()),
            via_proxy,
        }
    }
}

/// What the session stores about its user: whose it is, the user's session epoch when it
/// signed in (a password change or reset raises the epoch, ending older sessions), and when it
/// signed in (a session ends a fixed time after, however busy).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: String,
    pub epoch: i64,
    /// Unix milliseconds; a session without it is treated as long over.
    #[serde(default)]
    pub signed_in_at: i64,
}

pub const SESSION_USER: &str = "user";

/// Paths anyone may reach: the sign-in page and its functions, the static files, and the
/// operator's endpoints (`/metrics` checks for an admin or its token itself).
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/signin" | "/favicon.svg" | "/api/sign_in" | "/api/sign_up" | "/api/sign_in_options"
    ) || is_site_file(path)
        || super::ops::is_ops_path(path)
}

/// The site's own files (`/pkg/…`), as the path is written: a `..` segment is not one of them.
pub fn is_site_file(path: &str) -> bool {
    path.starts_with("/pkg/") && !path.split('/').any(|segment| segment == "..")
}

/// Finds who the request is, puts the [`Principal`] in its extensions, and turns away anonymous
/// requests for anything not public (pages: to the sign-in page; API: 401).
pub async fn identify(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response<Body> {
    // The site's own files are the same for everyone: no session to read.
    if is_site_file(request.uri().path()) {
        return next.run(request).await;
    }
    let principal = match state.config.access.mode {
        AuthMode::SingleUser => Some(Principal::single_user(&state.config.owner)),
        AuthMode::Accounts => {
            match signed_in(&state, request.extensions(), request.headers()).await {
                Ok(principal) => principal,
                Err(error) => return api_error(&error),
            }
        }
    };
    match principal {
        Some(principal) => {
            request.extensions_mut().insert(principal);
        }
        None if is_public(request.uri().path()) => {}
        None if request.uri().path().starts_with("/api/") => {
            return api_error(&ApiError::Unauthorized(
                "you are signed out; sign in again".into(),
            ))
        }
        None => {
            return Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, "/signin")
                .body(Body::empty())
                .unwrap_or_default()
        }
    }
    next.run(request).await
}

/// The user the trusted proxy names, else the session's; `None` if nobody is signed in.
async fn signed_in(
    state: &AppState,
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let access = &state.config.access;
    if let Some(name) = proxy_user(access, extensions, headers)? {
        let address = client_address(access, extensions, headers);
        let user = accounts::proxy_sign_in(state, name, address).await?;
        return Ok(Some(Principal::of_user(&user, true)));
    }
    let Some(session) = extensions.get::<Session>() else {
        return Ok(None);
    };
    let stored = session
        .get::<SessionUser>(SESSION_USER)
        .await
        .map_err(|e| {
            tracing::error!("could not read the session: {e}");
            ApiError::Internal
        })?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let max_age_ms = i64::try_from(access.session_max_age.as_millis()).unwrap_or(i64::MAX);
    let fresh = super::db::now_ms().saturating_sub(stored.signed_in_at) <= max_age_ms;
    let user = super::db::accounts::user_by_id(&state.db, &stored.id).await?;
    match user {
        Some(user) if fresh && !user.is_disabled() && user.session_epoch == stored.epoch => {
            Ok(Some(Principal::of_user(&user, false)))
        }
        // Too old, disabled, deleted, or signed in before a password change: the session is over.
        _ => {
            let _ = session.flush().await;
            Ok(None)
        }
    }
}

/// The single sign-on header's value, believed only from a trusted proxy. A header given twice,
/// or holding a list, names nobody for sure and is refused (a proxy that appends to a header the
/// client sent would otherwise let the client choose).
fn proxy_user<'r>(
    access: &AccessSettings,
    extensions: &axum::http::Extensions,
    headers: &'r HeaderMap,
) -> Result<Option<&'r str>, ApiError> {
    let Some(header) = access.sso_header.as_ref() else {
        return Ok(None);
    };
    let mut values = headers.get_all(header).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let Some(peer) = peer_address(extensions) else {
        return Ok(None);
    };
    if !is_trusted(access, peer) {
        tracing::warn!(%peer, "ignored a single sign-on header from an untrusted address");
        return Ok(None);
    }
    let value = value.to_str().ok().map(str::trim).filter(|v| !v.is_empty());
    if values.next().is_some() || value.is_some_and(|v| v.contains(',')) {
        tracing::warn!(%peer, "refused a single sign-on header naming more than one user");
        return Err(ApiError::BadRequest(
            "the single sign-on header must name exactly one user".into(),
        ));
    }
    Ok(value)
}

fn peer_address(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

fn is_trusted(access: &AccessSettings, peer: IpAddr) -> bool {
    access.trusted_proxies.iter().any(|net| net.contains(&peer))
}

/// The client's address: the connection's peer, or, when the peer is a trusted proxy, the
/// address it appended to `X-Forwarded-For` (the last one: earlier ones are the client's word).
pub fn client_address(
    access: &AccessSettings,
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = peer_address(extensions)?;
    if !is_trusted(access, peer) {
        return Some(peer);
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|last| last.trim().parse::<IpAddr>().ok())
        .or(Some(peer))
}

/// An API error as server functions answer it, so the page reads it like theirs.
pub fn api_error(error: &ApiError) -> Response<Body> {
    let body = serde_json::to_vec(error).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .header("serverfnerror", "1")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// The request's parts, inside a server function.
pub fn request_parts() -> Result<axum::http::request::Parts, ApiError> {
    leptos::prelude::use_context::<axum::http::request::Parts>().ok_or_else(|| {
        tracing::error!("request parts missing from the server function's context");
        ApiError::Internal
    })
}

/// The state, inside a server function anyone may call.
pub fn state() -> Result<AppState, ApiError> {
    leptos::prelude::use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the request context");
        ApiError::Internal
    })
}

/// What the sign-in functions need of the request: its session, the client's address, and its
/// cookies (the known-device cookie is read and set through them).
pub struct AnonymousRequest {
    pub session: Session,
    pub address: Option<IpAddr>,
    pub cookies: tower_cookies::Cookies,
}

pub fn anonymous() -> Result<(AppState, AnonymousRequest), ApiError> {
    let state = state()?;
    let parts = request_parts()?;
    let layer_missing = || {
        tracing::error!("no session layer in front of the server functions");
        ApiError::Internal
    };
    let session = parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or_else(layer_missing)?;
    let cookies = parts
        .extensions
        .get::<tower_cookies::Cookies>()
        .cloned()
        .ok_or_else(layer_missing)?;
    let address = client_address(&state.config.access, &parts.extensions, &parts.headers);
    Ok((
        state,
        AnonymousRequest {
            session,
            address,
            cookies,
        },
    ))
}

/// The state, who is asking, and from where (for the audit log).
pub fn acting() -> Result<(AppState, Principal, Option<IpAddr>), ApiError> {
    let (state, principal) = AppState::with_principal()?;
    let parts = request_parts()?;
    let address = client_address(&state.config.access, &parts.extensions, &parts.headers);
    Ok((state, principal, address))
}

/// What the page is told of a user who has just signed in (or up) with a password.
pub fn me_as(state: &AppState, user: &super::db::accounts::User) -> crate::model::accounts::Me {
    me(state, &Principal::of_user(user, false))
}

pub fn me(state: &AppState, principal: &Principal) -> crate::model::accounts::Me {
    crate::model::accounts::Me {
        username: principal.username.clone(),
        is_admin: principal.is_admin,
        accounts: state.config.access.mode == AuthMode::Accounts,
        via_proxy: principal.via_proxy,
    }
}
