//! An [`ApiError`] as an HTTP answer outside a server function (a middleware's refusal, a plain
//! route), shaped like a server function's so that the page reads both alike.

use axum::body::Body;
use axum::http::{header, Response, StatusCode};
use server_fn::error::SERVER_FN_ERROR_HEADER;

use crate::error::ApiError;

/// An API error as server functions answer it, so the page reads it like theirs.
pub fn api_error(error: &ApiError) -> Response<Body> {
    let body = serde_json::to_vec(error).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .header(SERVER_FN_ERROR_HEADER, "1")
        .body(Body::from(body))
        .unwrap_or_default()
}
