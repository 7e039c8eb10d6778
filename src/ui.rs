//! Components by feature. They call server functions from `crate::api` and never see HTTP,
//! providers or SQL.

/// Sign-in, the password page, and the account menu under the conversations.
pub mod account;
/// The admin page: users, budgets, settings, the audit log.
pub mod admin;
/// A person's API keys for `/v1`: make one (shown once), see each one's month, revoke.
pub mod api_keys;
pub mod chat;
pub mod conversations;
/// The service worker, the on-screen keyboard, touch.
pub mod phone;
/// Search in the sidebar: the box, the results (a WASM file of their own), landing on a message.
pub mod search;
/// A person's share links: Share, copy, open, revoke.
pub mod shares;
/// The theme switch (system, light, dark).
pub mod theme;
/// The import and export page: the archive out, an export of ChatGPT, Claude or Rill in.
pub mod transfer;
/// The browser's side of an import: the upload and its progress.
pub mod upload;
/// The usage page: this month's spending by day and model, and the CSV export.
pub mod usage;
/// How resources travel in the page (one JSON reader for them and the server functions).
pub mod wire;
