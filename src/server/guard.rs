//! What every request must pass before a handler sees it, and the headers every response
//! carries. Together they keep other web pages out: a foreign `Host` (DNS rebinding) is refused,
//! a state-changing request from another site is refused, and server functions accept JSON only,
//! which no cross-site form or no-cors fetch can send.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use axum::middleware::Next;

use super::config::{AccessSettings, ApiCors};

/// Host names this server answers for, and whether people reach it over https.
#[derive(Clone, Debug)]
pub struct HostAllowlist {
    names: Vec<String>,
    /// The public URL is https: answers tell browsers to use nothing else (HSTS).
    https: bool,
    /// Other sites whose pages may write here (the API's CORS origins; none for the page's
    /// routes, where a cookie would speak for the person).
    cross_site: ApiCors,
}

impl HostAllowlist {
    /// Loopback names and IP addresses always; the public URL's host and the configured names.
    pub fn new(access: &AccessSettings) -> Self {
        let mut names = vec!["localhost".to_owned()];
        names.extend(access.public_url.iter().map(|u| u.host.clone()));
        names.extend(access.allowed_hosts.iter().cloned());
        Self {
            names,
            https: access.public_url.as_ref().is_some_and(|u| u.https),
            cross_site: ApiCors::Off,
        }
    }

    /// The same, for `/v1`, where the pages of the configured CORS origins may also write: only
    /// a bearer key is read there, which such a page has only if its user gave it one.
    pub fn for_api(access: &AccessSettings) -> Self {
        Self {
            cross_site: access.api_cors.clone(),
            ..Self::new(access)
        }
    }

    /// An IP address cannot be rebound to another server, so any is allowed; a name must be
    /// listed (or be a subdomain of `localhost`, which resolves to loopback only).
    fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok()
            || host.ends_with(".localhost")
            || self.names.contains(&host)
    }

    /// Whether a page at `origin` may change state here, asked at `authority` (the request's
    /// `Host`): the same origin; a configured name (the public URL, behind its proxy); or a
    /// loopback page talking to a loopback server (a local proxy in front, which rewrites `Host`).
    fn allows_origin(&self, origin: &str, authority: &str) -> bool {
        let Some((scheme, origin_authority)) = origin.split_once("://") else {
            return false;
        };
        if !matches!(scheme, "http" | "https") || origin_authority.is_empty() {
            return false;
        }
        if origin_authority.eq_ignore_ascii_case(authority) {
            return true;
        }
        let origin_host = host_of_authority(origin_authority).to_ascii_lowercase();
        (origin_host != "localhost" && self.names.contains(&origin_host))
            || (is_loopback(&origin_host) && is_loopback(host_of_authority(authority)))
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host[:port]` or `[v6]:port` → host.
fn host_of_authority(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn refuse(status: StatusCode, message: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(message))
        .unwrap_or_default()
}

/// The checks, in order: the host, then for anything that is not a read, where it comes from
/// and (for server functions) what it is.
pub async fn check(
    State(hosts): State<Arc<HostAllowlist>>,
    request: Request,
    next: Next,
) -> Response<Body> {
    let headers = request.headers();
    let authority = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let host = host_of_authority(authority);
    if !hosts.allows(host) {
        tracing::warn!(host = ?host, "refused a request for a host this server does not answer for");
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "This server does not answer for that host name. Its operator can add the name with RILL_PUBLIC_URL or RILL_ALLOWED_HOSTS.",
        );
    }
    let reads = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let cross_site_allowed = origin.is_some_and(|origin| hosts.cross_site.allows(origin));
    if !reads && !cross_site_allowed {
        let fetch_site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
        if matches!(fetch_site, Some(b"cross-site" | b"same-site")) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Requests from other sites are refused.",
            );
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let allowed = origin
                .to_str()
                .is_ok_and(|origin| hosts.allows_origin(origin, authority));
            if !allowed {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "Requests from other sites are refused.",
                );
            }
        }
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if request.uri().path().starts_with("/api/") && !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Rill's API takes application/json only.",
            );
        }
    }
    let path = request.uri().path();
    let is_asset = super::public_paths::is_site_file(path);
    let is_worker = path == super::public_paths::SERVICE_WORKER;
    let is_public_file = super::public_paths::is_public_file(path);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // Pages set their own policy (with their script nonce, see `page_policy`); anything else
    // is not a document and may run nothing, whatever a handler set.
    let is_page = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_worker {
        // The service worker's policy governs what it fetches: the site's own files only.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(WORKER_POLICY),
        );
    } else if !is_page || !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        );
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if is_public_file {
        // The manifest and icons are fetched with every page: kept a day (the static file
        // handler answers no conditional requests, so `no-cache` would send them again each
        // time). A changed icon shows within a day.
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=86400"),
        );
    } else if !is_asset {
        // Pages and API answers hold private data: never stored by a browser or a proxy. The
        // service worker is not kept either, so a new version is picked up at the next visit.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if hosts.https {
        // A year, this host only (the operator's other names are theirs to decide).
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// The service worker (`public/sw.js`) fetches the site's hashed files and icons on a cache miss,
/// and nothing else.
const WORKER_POLICY: &str = "default-src 'none'; connect-src 'self'";

/// The Content-Security-Policy of a page: its scripts are the site's own files, the inline
/// hydration script with this response's nonce, and WebAssembly compilation; nothing inline
/// otherwise, no framing, no plugins. `dev_reload` allows cargo-leptos' live-reload socket.
pub fn page_policy(nonce: &str, dev_reload: bool) -> String {
    let reload = if dev_reload { " ws:" } else { "" };
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{reload}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::PublicUrl;

    #[test]
    fn hosts_are_loopback_ip_or_configured_names() {
        let hosts = HostAllowlist::new(&AccessSettings {
            public_url: Some(PublicUrl {
                https: true,
                host: "chat.example.com".into(),
            }),
            allowed_hosts: vec!["rill.lan".into()],
            ..AccessSettings::default()
        });
        for host in [
            "localhost",
            "127.0.0.1",
            "[::1]",
            "10.1.2.3",
            "chat.example.com",
            "CHAT.example.com.",
            "rill.lan",
            "app.localhost",
        ] {
            assert!(hosts.allows(host_of_authority(host)), "{host}");
        }
        for host in ["evil.example", "example.com", "localhost.evil.example", ""] {
            assert!(!hosts.allows(host_of_authority(host)), "{host}");
        }
        assert_eq!(host_of_authority("[::1]:3000"), "::1");
        assert_eq!(host_of_authority("localhost:3000"), "localhost");
    }

    #[test]
    fn origins_are_the_same_origin_a_configured_name_or_loopback_to_loopback() {
        let hosts = HostAllowlist::new(&AccessSettings {
            public_url: Some(PublicUrl {
                https: true,
                host: "chat.example.com".into(),
            }),
            ..AccessSettings::default()
        });
        let allowed = [
            ("http://10.0.0.5:3000", "10.0.0.5:3000"),
            ("https://chat.example.com", "10.0.0.5:3000"),
            ("http://127.0.0.1:8080", "127.0.0.1:3000"),
            ("http://localhost:3000", "127.0.0.1:3000"),
        ];
        for (origin, host) in allowed {
            assert!(hosts.allows_origin(origin, host), "{origin} at {host}");
        }
        let refused = [
            ("http://203.0.113.7", "10.0.0.5:3000"),
            ("http://10.0.0.5:9999", "10.0.0.5:3000"),
            ("http://127.0.0.1:8080", "10.0.0.5:3000"),
            ("https://evil.example", "127.0.0.1:3000"),
            ("null", "127.0.0.1:3000"),
            ("file://", "127.0.0.1:3000"),
        ];
        for (origin, host) in refused {
            assert!(!hosts.allows_origin(origin, host), "{origin} at {host}");
        }
    }
}
