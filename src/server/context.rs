//! What a server function knows of its request: the state, who is asking, and from where. The
//! client's address is worked out here for everyone (the identity layer and the audit log).

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use tower_sessions::Session;

use super::config::AccessSettings;
use super::db::Owner;
use super::principal::Principal;
use super::AppState;
use crate::error::ApiError;

impl AppState {
    /// The state and whose data the request may touch, inside a server function.
    pub fn from_context() -> Result<(Self, Owner), ApiError> {
        let (state, principal) = Self::with_principal()?;
        Ok((state, principal.owner))
    }

    /// The state and who is asking, inside a server function. Nobody signed in is 401 (the
    /// identity layer lets anonymous requests reach only the sign-in functions).
    pub fn with_principal() -> Result<(Self, Principal), ApiError> {
        let state = state()?;
        let principal = request_parts()?
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("sign in first".into()))?;
        Ok((state, principal))
    }
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

pub fn peer_address(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

pub fn is_trusted(access: &AccessSettings, peer: IpAddr) -> bool {
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
