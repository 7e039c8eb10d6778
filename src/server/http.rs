//! The HTTP surface: Leptos pages (SSR), server functions under `/api`, the usage export,
//! static assets; around them the request checks, sessions and who is asking.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes, ResponseOptions};
use tower_sessions::cookie::{time, SameSite};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::SqliteStore;

use super::guard::{self, HostAllowlist};
use super::{assets, housekeeping, identity, ops, usage, AppState};
use crate::app::{shell, App};
use crate::error::ApiError;

/// The whole app as one router, so tests drive exactly what `main` serves.
pub fn router(state: AppState, leptos_options: LeptosOptions) -> Router {
    let routes = generate_route_list(App);
    let dev_reload = leptos_options.reload_port > 0 && std::env::var_os("LEPTOS_WATCH").is_some();
    let context = {
        let state = state.clone();
        move || {
            provide_context(state.clone());
            // A page gets its policy with the nonce of its hydration script.
            let nonce = leptos::prelude::use_context::<leptos::nonce::Nonce>();
            let response = leptos::prelude::use_context::<ResponseOptions>();
            if let (Some(nonce), Some(response)) = (nonce, response) {
                if let Ok(policy) = HeaderValue::from_str(&guard::page_policy(&nonce, dev_reload)) {
                    response.insert_header(header::CONTENT_SECURITY_POLICY, policy);
                }
            }
        }
    };
    let access = &state.config.access;
    let https = access.public_url.as_ref().is_some_and(|u| u.https);
    let store = SqliteStore::new(state.db.writer().clone());
    tokio::spawn(housekeeping::sweep_expired_sessions(store.clone()));
    tokio::spawn(housekeeping::purge_deleted_conversations(
        state.db.clone(),
        state.config.conversations.purge_deleted_after,
    ));
    let sessions = SessionManagerLayer::new(store)
        // `__Host-`: the browser keeps it only if Secure, for this host alone, on every path.
        .with_name(if https {
            "__Host-rill_session"
        } else {
            "rill_session"
        })
        .with_secure(https)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(30)));
    let hosts = Arc::new(HostAllowlist::new(access));
    let max_request_bytes = state.config.limits.max_request_bytes;
    let usage_routes = Router::new()
        .route("/usage.csv", axum::routing::get(usage::export_csv))
        .with_state(state.clone());
    let asset_routes = assets::routes(&leptos_options);
    let ops_routes = ops::routes(state.clone());
    Router::new()
        .leptos_routes_with_context(&leptos_options, routes, context.clone(), {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context(
            context, shell,
        ))
        .with_state(leptos_options)
        .merge(usage_routes)
        .merge(asset_routes)
        .merge(ops_routes)
        .layer(axum::middleware::map_response(api_error_status))
        .layer(axum::middleware::map_response(event_stream_headers))
        // Outside the layers that read or recognise bodies by their type.
        .layer(assets::compression())
        .layer(axum::middleware::from_fn_with_state(
            state,
            identity::identify,
        ))
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(hosts, guard::check))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            max_request_bytes,
        ))
}

/// Event streams (server functions with streaming output) must reach the browser as they are
/// written: no buffering in a reverse proxy (nginx honours `X-Accel-Buffering`). Like every API
/// answer they are `no-store` (see `guard`).
async fn event_stream_headers(mut response: Response<Body>) -> Response<Body> {
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/octet-stream");
    if is_stream {
        let headers = response.headers_mut();
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    response
}

/// server_fn answers every error with 500; give API errors their real status (400 for bad input,
/// 404 for an unknown conversation, 409 for a busy one, 503 while draining) so clients and logs
/// can tell them apart.
async fn api_error_status(response: Response<Body>) -> Response<Body> {
    let is_api_error = response.status() == StatusCode::INTERNAL_SERVER_ERROR
        && response.headers().contains_key("serverfnerror")
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_api_error {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    if let Ok(error) = serde_json::from_slice::<ApiError>(&bytes) {
        parts.status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// After the drain, how long open connections get to close before the server exits anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Serves until ctrl-c or SIGTERM, then drains: new turns are refused (503) at once, running
/// replies get the configured grace to finish and the rest are stored as interrupted, every event
/// stream ends, and the server exits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    leptos_options: LeptosOptions,
) -> std::io::Result<()> {
    serve_until(listener, state, leptos_options, shutdown_signal()).await
}

/// [`serve`] with the shutdown signal given (tests send their own).
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    state: AppState,
    leptos_options: LeptosOptions,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone(), leptos_options);
    let turns = state.turns.clone();
    let grace = state.config.turns.shutdown_grace;
    let drained = tokio_util::sync::CancellationToken::new();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    // Tokens are small writes: without TCP_NODELAY, Nagle holds each one until the last is
    // acknowledged, and a client's delayed ACK makes that up to 40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let drained = drained.clone();
        async move {
            signal.await;
            tracing::info!(running = turns.running(), "shutting down");
            turns.drain(grace).await;
            drained.cancel();
        }
    });
    tokio::select! {
        served = server => served,
        () = async { drained.cancelled().await; tokio::time::sleep(CLOSE_WAIT).await } => {
            tracing::warn!("connections still open after the drain; exiting anyway");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for ctrl-c: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
