//! The paths anyone may reach, signed in or not.

/// The service worker's address (`public/sw.js`): at the root, so its scope is the whole site.
pub const SERVICE_WORKER: &str = "/sw.js";

/// Paths anyone may reach: the sign-in page and its functions, the static files, shared
/// conversations' pages (a token's form; the page checks the rest), what installs
/// the app (browsers fetch the manifest and its icons without cookies), and the operator's
/// endpoints (`/metrics` checks for an admin or its token itself).
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/signin"
            | "/favicon.svg"
            | "/manifest.webmanifest"
            | SERVICE_WORKER
            | "/api/sign_in"
            | "/api/sign_up"
            | "/api/sign_in_options"
            | "/auth/oidc/start"
            | "/auth/oidc/callback"
    ) || is_site_file(path)
        || is_shared_page(path)
        || is_icon(path)
        || is_ops_path(path)
}

/// The site's own files (`/pkg/…`), as the path is written: a `..` segment is not one of them.
pub fn is_site_file(path: &str) -> bool {
    path.starts_with("/pkg/") && !path.split('/').any(|segment| segment == "..")
}

/// The files under fixed names that are the same for everyone (`public/`, less the service
/// worker): browsers may keep them a while.
pub fn is_public_file(path: &str) -> bool {
    matches!(path, "/favicon.svg" | "/manifest.webmanifest") || is_icon(path)
}

/// The app's icons (`public/icons/`), named by the manifest.
fn is_icon(path: &str) -> bool {
    path.strip_prefix("/icons/").is_some_and(|name| {
        name.ends_with(".png")
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !name.contains("..")
    })
}

/// A shared conversation's page or one of its files (`shares.rs`): the link is the permission.
fn is_shared_page(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/s/") else {
        return false;
    };
    match rest.split_once("/files/") {
        None => super::shares::is_token(rest),
        Some((token, id)) => super::shares::is_token(token) && uuid::Uuid::parse_str(id).is_ok(),
    }
}

/// The operator's endpoints (`ops.rs`); `/metrics` checks its own access.
fn is_ops_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

#[cfg(test)]
mod tests {
    use super::{is_public, is_public_file};

    #[test]
    fn what_installs_the_app_is_public_and_nothing_beside_it() {
        for path in [
            "/manifest.webmanifest",
            "/sw.js",
            "/icons/icon-192.png",
            "/icons/maskable-512.png",
            "/favicon.svg",
            "/s/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "/s/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/files/\
             67e55044-10b1-426f-9247-bb680e5fe0c8",
        ] {
            assert!(is_public(path), "{path}");
        }
        for path in [
            "/icons/../c/1",
            "/icons/",
            "/icons/x.png/..",
            "/icons/sub/icon.png",
            "/sw.js/x",
            "/c/3",
            "/s/",
            "/s/x",
            "/s/../c/1",
            "/s/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/files/x",
            "/s/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/files/../../c/1",
            "/s/x/files/67e55044-10b1-426f-9247-bb680e5fe0c8",
            "/api/share_conversation",
            "/api/list_shares",
        ] {
            assert!(!is_public(path), "{path}");
        }
        // Kept a while; the service worker is never kept.
        assert!(is_public_file("/manifest.webmanifest"));
        assert!(is_public_file("/icons/icon-512.png"));
        assert!(!is_public_file("/sw.js"));
        assert!(!is_public_file("/"));
    }
}
