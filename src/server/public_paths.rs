//! The paths anyone may reach, signed in or not.

/// Paths anyone may reach: the sign-in page and its functions, the static files, and the
/// operator's endpoints (`/metrics` checks for an admin or its token itself).
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/signin" | "/favicon.svg" | "/api/sign_in" | "/api/sign_up" | "/api/sign_in_options"
    ) || is_site_file(path)
        || is_ops_path(path)
}

/// The site's own files (`/pkg/…`), as the path is written: a `..` segment is not one of them.
pub fn is_site_file(path: &str) -> bool {
    path.starts_with("/pkg/") && !path.split('/').any(|segment| segment == "..")
}

/// The operator's endpoints (`ops.rs`); `/metrics` checks its own access.
fn is_ops_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}
