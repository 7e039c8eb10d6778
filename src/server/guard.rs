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

use super::config::AccessSettings;

/// Host names this server answers for.
#[derive(Clone, Debug)]
pub struct HostAllowlist {
    names: Vec<String>,
}

impl HostAllowlist {
    /// Loopback names and IP addresses always; the public URL's host and the configured names.
    pub fn new(access: &AccessSettings) -> Self {
        let mut names = vec!["localhost".to_owned()];
        names.extend(access.public_url.iter().map(|u| u.host.clone()));
        names.extend(access.allowed_hosts.iter().cloned());
        Self { names }
    }

    /// An IP address cannot be rebound to another server, so any is allowed; a name must be
    /// listed (or be a subdomain of `localhost`, which resolves to loopback only).
    fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok()
            || host.ends_with(".localhost")
            || self.names.contains(&host)
    }
}

/// `host[:port]` or `[v6]:port` → host.
fn host_of_authority(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// The host of an `Origin` value (`scheme://host[:port]`); `None` for `null` or nonsense.
fn host_of_origin(origin: &str) -> Option<&str> {
    let (scheme, authority) = origin.split_once("://")?;
    matches!(scheme, "http" | "https").then(|| host_of_authority(authority))
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
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .map(host_of_authority);
    if !host.is_some_and(|h| hosts.allows(h)) {
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
    if !reads {
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
                .ok()
                .and_then(host_of_origin)
                .is_some_and(|h| hosts.allows(h));
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
    let is_asset = request.uri().path().starts_with("/pkg/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    // Pages set their own policy (with their script nonce, see `page_policy`); anything else
    // is not a document and may run nothing.
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    );
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    if !is_asset {
        // Pages and API answers hold private data: never stored by a browser or a proxy.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

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
        assert_eq!(
            host_of_origin("http://evil.example:3000"),
            Some("evil.example")
        );
        assert_eq!(host_of_origin("null"), None);
    }
}
