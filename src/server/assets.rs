//! The site's build output under `/pkg/` (the WASM, its JS glue, the CSS): served precompressed
//! (brotli, else gzip, as the browser accepts; `cargo leptos build --release --precompress`
//! writes the `.br` and `.gz` files) and, when the names carry the build's content hash,
//! cacheable for a year. Other responses that are worth it are compressed as they go.

use std::path::PathBuf;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Version};
use axum::middleware::Next;
use axum::Router;
use leptos::config::LeptosOptions;
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

/// Compresses pages, API answers and the usage export on the fly. Never an event stream (each
/// token must leave at once) nor what is already compressed.
pub fn compression() -> CompressionLayer<impl Predicate> {
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
    CompressionLayer::new()
        .br(true)
        .gzip(true)
        .compress_when(SizeAbove::new(1024).and(worth_it))
}

#[cfg(test)]
mod tests {
    use super::carries_hash;

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
