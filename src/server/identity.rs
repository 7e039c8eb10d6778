//! Who a request is: the one owner in single-user mode; in accounts mode the user of the session
//! cookie, or of a trusted proxy's header. Requests from nobody reach only the sign-in page, its
//! server functions and the static files.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Response, StatusCode};
use axum::middleware::Next;
use tower_sessions::Session;

use super::accounts;
use super::config::{AccessSettings, AuthMode};
use super::context::{client_address, is_trusted, peer_address};
use super::error_response::api_error;
use super::principal::{Principal, SessionUser, SESSION_USER};
use super::public_paths::{is_public, is_site_file};
use super::AppState;
use crate::error::ApiError;

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
