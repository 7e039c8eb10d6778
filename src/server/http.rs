//! The HTTP surface: Leptos pages (SSR), server functions under `/api`, the usage export,
//! static assets; around them the request checks, sessions and who is asking.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes, ResponseOptions};
use server_fn::error::SERVER_FN_ERROR_HEADER;

use super::error_response::api_error;
use super::guard::{self, HostAllowlist};
use super::principal::Principal;
use super::{
    assets, attachments, bodies, connections, housekeeping, identity, oidc, openai_api, ops,
    sessions, shares, transfer, usage, AppState,
};
use crate::app::{shell, App};
use crate::error::ApiError;

/// The pages' routes, found once per process. Finding them renders the app with every resource
/// held back by a process-wide switch (`leptos::server::SuppressResourceLoad`): a page that an
/// earlier router rendered meanwhile would wait forever for a resource that never loaded (seen
/// as a page whose body stopped, in tests that start apps side by side). Found once, before
/// the first router exists, the list is never found while a page renders.
fn page_routes() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The whole app as one router, so tests drive exactly what `main` serves.
pub fn router(state: AppState, leptos_options: LeptosOptions) -> Router {
    let routes = page_routes();
    let dev_reload = leptos_options.reload_port > 0 && std::env::var_os("LEPTOS_WATCH").is_some();
    let context = {
        let state = state.clone();
        move || {
            provide_context(state.clone());
            // The page is drawn in the colours its cookie names (`app::shell`).
            if let Some(parts) = leptos::prelude::use_context::<axum::http::request::Parts>() {
                provide_context(super::preferences::theme_of(&parts.headers));
            }
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
    let store = sessions::store(&state.db);
    tokio::spawn(housekeeping::sweep_expired_sessions(store.clone()));
    tokio::spawn(housekeeping::purge_deleted_conversations(
        state.db.clone(),
        state.config.conversations.purge_deleted_after,
    ));
    tokio::spawn(housekeeping::forget_old_counts(state.db.clone()));
    let sessions = sessions::layer(store, https);
    let hosts = Arc::new(HostAllowlist::new(access));
    let max_request_bytes = state.config.limits.max_request_bytes;
    let bodies = Arc::new(bodies::BodyLimits::new(
        state.config.connections.body_timeout,
        max_request_bytes,
        state.config.access.clone(),
    ));
    let usage_routes = Router::new()
        .route("/usage.csv", axum::routing::get(usage::export_csv))
        .with_state(state.clone());
    let transfer_routes = transfer::routes(state.clone());
    let attachment_routes = attachments::routes(state.clone());
    let asset_routes = assets::routes(&leptos_options);
    let ops_routes = ops::routes(state.clone());
    let share_routes = shares::routes(state.clone(), &leptos_options);
    let oidc_routes = oidc::routes(state.clone());
    // The API for scripts: bearer keys only, so none of the page's layers (sessions, who is
    // signed in, writes per minute, compression); the host check and the response headers, and
    // the size limit, as everywhere.
    let api_routes = openai_api::routes(state.clone())
        .layer(tower::util::option_layer(openai_api::cors(
            &state.config.access.api_cors,
        )))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(HostAllowlist::for_api(access)),
            guard::check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            bodies::SizeLimits {
                request: max_request_bytes,
            },
            bodies::limit_size,
        ));
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
        .merge(transfer_routes)
        .merge(attachment_routes)
        .merge(asset_routes)
        .merge(ops_routes)
        .merge(share_routes)
        .merge(oidc_routes)
        .layer(axum::middleware::map_response(api_error_status))
        .layer(axum::middleware::map_response(event_stream_headers))
        // Outside the layers that read or recognise bodies by their type.
        .layer(axum::middleware::from_fn(assets::compress))
        // Bodies are read once the request is known to be wanted and who sends it.
        .layer(axum::middleware::from_fn_with_state(
            bodies,
            bodies::read_whole,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            identity::identify,
        ))
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(hosts, guard::check))
        .layer(axum::middleware::from_fn_with_state(
            bodies::SizeLimits {
                request: max_request_bytes,
            },
            bodies::limit_size,
        ))
        .merge(api_routes)
}

/// Every server function that changes something counts against its caller's writes per minute
/// (`limits::UNCOUNTED_CALLS` names those it does not count).
async fn limit_writes(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response<Body> {
    let endpoint = request.uri().path().strip_prefix("/api/");
    let principal = request.extensions().get::<Principal>();
    if let (Some(endpoint), Some(principal)) = (endpoint, principal) {
        if let Err(limit) = state.writes.check(&principal.owner, endpoint) {
            return api_error(&ApiError::TooManyRequests(limit.to_string()));
        }
    }
    next.run(request).await
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
        && response.headers().contains_key(SERVER_FN_ERROR_HEADER)
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
    let settings = &state.config.connections;
    let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let listening = connections::Listening {
        listener,
        caps: connections::ConnectionCaps::resolve(settings, open_files),
        header_timeout: settings.header_timeout,
        access: state.config.access.clone(),
    };
    let drained = async move {
        signal.await;
        tracing::info!(running = turns.running(), "shutting down");
        turns.drain(grace).await;
    };
    connections::serve(listening, app, drained, CLOSE_WAIT).await;
    Ok(())
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
