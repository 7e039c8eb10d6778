//! The operator's endpoints: `/healthz` (the process answers), `/readyz` (the database answers
//! and the server is not draining), `/metrics` (Prometheus text, for admins or the configured
//! bearer token), and the client side of `rill healthcheck`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use subtle::ConstantTimeEq;

use super::principal::Principal;
use super::{db, metrics, AppState};

pub fn routes(state: AppState) -> Router {
    // The recorder must exist before the first turn, or that turn's figures are lost.
    if let Some(handle) = metrics::handle() {
        tokio::spawn(metrics::upkeep(handle));
    }
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn healthz() -> Response<Body> {
    text(StatusCode::OK, "ok\n")
}

/// How long the database gets to answer a readiness check.
const READY_WAIT: Duration = Duration::from_secs(2);

async fn readyz(State(state): State<AppState>) -> Response<Body> {
    if state.turns.is_draining() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    match tokio::time::timeout(READY_WAIT, db::ping(&state.db)).await {
        Ok(Ok(())) => text(StatusCode::OK, "ready\n"),
        Ok(Err(e)) => {
            tracing::warn!("readiness: the database did not answer: {e}");
            text(StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
        Err(_) => {
            tracing::warn!("readiness: the database took longer than {READY_WAIT:?}");
            text(StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

async fn metrics_text(State(state): State<AppState>, request: Request) -> Response<Body> {
    let admin = request
        .extensions()
        .get::<Principal>()
        .is_some_and(|p| p.is_admin);
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let token_matches = match (&state.config.ops.metrics_token, bearer) {
        (Some(expected), Some(given)) => bool::from(expected.as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    };
    if !admin && !token_matches {
        let mut response = text(
            StatusCode::UNAUTHORIZED,
            "metrics need an admin's session or the bearer token (RILL_METRICS_TOKEN)\n",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let Some(handle) = metrics::handle() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "metrics are off\n");
    };
    let body = metrics::render(
        handle,
        state.turns.running(),
        state.catalog.local_queue_depth(),
    );
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer from {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{url} answered {status}")]
    Unhealthy { url: String, status: u16 },
}

/// `rill healthcheck`: asks the server listening on `addr` (inside its container) for `/healthz`.
pub async fn probe(addr: SocketAddr) -> Result<(), ProbeError> {
    // A server on every interface is asked on loopback.
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}/healthz", SocketAddr::new(ip, addr.port()));
    let unreachable = |source| ProbeError::Unreachable {
        url: url.clone(),
        source,
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        // Under the image's HEALTHCHECK timeout (3 s), so a slow answer is our failure, not
        // Docker's.
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(unreachable)?;
    let response = client.get(&url).send().await.map_err(unreachable)?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(ProbeError::Unhealthy {
            url,
            status: response.status().as_u16(),
        })
    }
}
