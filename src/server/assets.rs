//! The site's build output under `/pkg/` (the WASM, its JS glue, the CSS): served precompressed
//! (brotli, else gzip, as the browser accepts; `cargo leptos build --release --precompress`
//! writes the `.br` and `.gz` files) and, when the names carry the build's content hash,
//! cacheable for a year. Other responses that are worth it are compressed as they go.

use std::convert::Infallible;
use std::path::PathBuf;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use leptos::config::LeptosOptions;
use tower::{Layer, ServiceExt};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

/// A year: a hashed name never changes its content (a new build has new names).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Unhashed names (development builds): keep, but ask the server each time (it answers 304).
const REVALIDATE: &str = "no-cache";

pub fn routes(options: &LeptosOptions) -> Router {
    let pkg = PathBuf::from(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    let hashed_build = options.hash_files;
    Router::new()
        .nest_service(
            &format!("/{}", options.site_pkg_dir.trim_matches('/')),
            ServeDir::new(pkg).precompressed_br().precompressed_gzip(),
        )
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| async move {
                let hashed = hashed_build && carries_hash(request.uri().path());
                let mut response = next.run(request).await;
                // Only a file found under its hashed name is kept: a 404 cached for a year
                // would outlive the deploy that fixes it.
                let keep = if hashed && response.status().is_success() {
                    IMMUTABLE
                } else {
                    REVALIDATE
                };
                let headers = response.headers_mut();
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(keep));
                // The answer depends on Accept-Encoding: shared caches keep one copy per encoding.
                headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
                response
            },
        ))
}

/// Whether a file name carries cargo-leptos' content hash (`rill.<hash>.wasm`: an MD5 in
/// unpadded URL-safe base64, 22 characters). wasm-bindgen's `snippets/` files keep their names, and
/// the split loader's unhashed name (`__wasm_split.` and 22 underscores) only looks like one.
fn carries_hash(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    name.split('.').skip(1).any(|part| {
        part.len() == 22
            && part.bytes().any(|b| b != b'_')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// What is compressed as it goes: pages, API answers and the usage export of 1 KB or more. Never
/// an event stream (each token must leave at once) nor what is already compressed.
fn worth_compressing() -> impl Predicate {
    let worth_it = |_: StatusCode, _: Version, headers: &HeaderMap, _: &axum::http::Extensions| {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.starts_with("text/html")
                    || v.starts_with("application/json")
                    || v.starts_with("text/csv")
            })
    };
    SizeAbove::new(1024).and(worth_it)
}

/// Compresses what is [worth compressing](worth_compressing), brotli or gzip as the client
/// accepts, with tower-http's compression. A response that is not is passed on untouched: as a
/// layer around the whole app, tower-http gives every response its own body type, which holds a
/// brotli encoder's state inline, and every open event stream carried that 5.7 KB box for its
/// whole life without ever being compressed (issue 27).
pub async fn compress(request: Request, next: Next) -> Response {
    let accepts: Vec<HeaderValue> = request
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .cloned()
        .collect();
    let response = next.run(request).await;
    if !worth_compressing().should_compress(&response) {
        return response;
    }
    // The layer reads what the client accepts from a request: it gets one that carries only that,
    // and a service that answers it with the response already made.
    let mut made = Some(response);
    let compressing = CompressionLayer::new()
        .br(true)
        .gzip(true)
        .compress_when(worth_compressing())
        .layer(tower::service_fn(move |_: Request| {
            std::future::ready(Ok::<_, Infallible>(made.take().unwrap_or_default()))
        }));
    let mut asking = Request::default();
    for value in accepts {
        asking.headers_mut().append(header::ACCEPT_ENCODING, value);
    }
    match compressing.oneshot(asking).await {
        Ok(compressed) => compressed.into_response(),
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{header, Request};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::{carries_hash, compress};

    /// A page of JSON (over the 1 KB floor), a short one, and an event stream of the same size.
    fn app() -> Router {
        let long = "[".to_owned() + &"1,".repeat(1_000) + "1]";
        let stream = long.clone();
        Router::new()
            .route(
                "/long",
                get(move || async move { ([(header::CONTENT_TYPE, "application/json")], long) }),
            )
            .route(
                "/short",
                get(|| async { ([(header::CONTENT_TYPE, "application/json")], "[1]") }),
            )
            .route(
                "/stream",
                get(move || async move {
                    ([(header::CONTENT_TYPE, "application/octet-stream")], stream)
                }),
            )
            .layer(axum::middleware::from_fn(compress))
    }

    /// The answer's `content-encoding` and `vary`, and its body's length.
    async fn fetch(path: &str, accepts: Option<&str>) -> (Option<String>, Option<String>, usize) {
        let mut request = Request::get(path);
        if let Some(accepts) = accepts {
            request = request.header(header::ACCEPT_ENCODING, accepts);
        }
        let response = app()
            .oneshot(request.body(Body::empty()).expect("a request"))
            .await
            .expect("an answer");
        let text = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &header::HeaderValue| v.to_str().expect("ascii").to_owned())
        };
        let (encoding, vary) = (text(header::CONTENT_ENCODING), text(header::VARY));
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        (encoding, vary, body.len())
    }

    #[tokio::test]
    async fn what_is_worth_it_is_compressed_as_the_client_accepts_and_nothing_else() {
        let vary = Some("accept-encoding".to_owned());
        let (encoding, varies, size) = fetch("/long", Some("br, gzip")).await;
        assert_eq!((encoding.as_deref(), &varies), (Some("br"), &vary));
        assert!(
            size < 200,
            "brotli of a repeated pattern is small: {size} B"
        );
        let (encoding, varies, _) = fetch("/long", Some("gzip")).await;
        assert_eq!((encoding.as_deref(), &varies), (Some("gzip"), &vary));
        // Not accepted: sent plain, but a cache must still tell the two apart.
        assert_eq!(fetch("/long", None).await, (None, vary.clone(), 2_003));
        assert_eq!(fetch("/long", Some("identity")).await, (None, vary, 2_003));
        // Too short, or a stream whose every piece must leave at once: passed on untouched.
        assert_eq!(fetch("/short", Some("br, gzip")).await, (None, None, 3));
        assert_eq!(
            fetch("/stream", Some("br, gzip")).await,
            (None, None, 2_003)
        );
    }

    #[test]
    fn only_names_with_the_build_hash_are_immutable() {
        assert!(carries_hash("/pkg/rill.l5erbZPiJa6CHD1v9808Fg.wasm"));
        assert!(carries_hash("/pkg/rill.4h7VdNigUqupdtFlrjdxSw.js"));
        assert!(carries_hash(
            "/pkg/split___admin_route_view_384788295876754823.c82mGrPXEl1Gsi6dLvSFaA.wasm"
        ));
        assert!(carries_hash("/pkg/__wasm_split.cnjMYG_som83Hj16qHGarw.js"));
        assert!(!carries_hash("/pkg/__wasm_split.______________________.js"));
        assert!(!carries_hash("/pkg/rill.wasm"));
        assert!(!carries_hash("/pkg/snippets/leptos-abc/inline0.js"));
        assert!(!carries_hash("/pkg/rill.l5erbZPiJa6CHD1v9808F.wasm"));
        assert!(!carries_hash("/pkg/l5erbZPiJa6CHD1v9808Fg"));
    }
}
