//! Server-only code (`ssr` feature). Nothing here reaches the WASM build.

/// Accounts: passwords, sign-in and its throttle, sign-up, proxy users, admin actions, audit.
pub mod accounts;
/// API keys for `/v1`: made, listed, revoked; a request's bearer key checked.
pub mod api_keys;
/// The site's build output, precompressed and cached; compression of other answers.
pub mod assets;
/// Attached files: upload, download, what they add to a prompt.
pub mod attachments;
/// Request bodies read whole, bounded in time, size and memory all together.
pub mod bodies;
/// Budget warnings at 80 and 90 %: each claimed once per budget and month in the database,
/// then POSTed to `RILL_BUDGET_WEBHOOK` with bounded retries, beside the turn.
pub mod budget_alerts;
/// Which models exist and which provider serves each.
pub mod catalog;
/// The command line: serve, or create an account.
pub mod cli;
/// The clock budgets count months by.
pub mod clock;
/// Settings from the environment and an optional TOML file, read once at start-up.
pub mod config;
/// Accepting connections: header and idle timeouts, caps in all and per address, the
/// open-files limit.
pub mod connections;
/// What a server function knows of its request: the state, who is asking, from where.
pub mod context;
/// All SQL: conversations and messages, each query scoped to an owner; users, usage, audit.
pub mod db;
/// An API error as an HTTP answer, shaped like a server function's.
pub mod error_response;
/// Rill's own export format: a conversation with every branch, as JSON (what imports become).
pub mod export_format;
/// What a person's groups mean for them: the models they may use, the budgets they fall under.
pub mod groups;
/// Checks every request passes (host, origin, JSON only) and the headers every response carries.
pub mod guard;
/// Hourly upkeep: expired sessions deleted, deleted conversations purged.
pub mod housekeeping;
/// The HTTP router (pages, server functions, assets) and graceful shutdown.
pub mod http;
/// Who a request is: the single owner, a session's user, or a trusted proxy's.
pub mod identity;
/// One import per person at a time.
pub mod imports;
/// The rules for what a person may send: message and system prompt limits.
pub mod input;
/// What one person may start: replies at once, turns per minute.
pub mod limits;
/// The log's format: text, or JSON lines with each turn's id.
pub mod logging;
/// Prometheus metrics: turns, tokens, cost, latencies, queue depth, provider errors.
pub mod metrics;
/// Sign-in through an OpenID Connect provider: discovery, the code flow with PKCE, the ID
/// token's checks, who may join, the admin group.
pub mod oidc;
/// Rill as an OpenAI-compatible API: `/v1/models`, `/v1/chat/completions`, bearer keys only.
pub mod openai_api;
/// `/healthz`, `/readyz`, `/metrics`, and the client of `rill healthcheck`.
pub mod ops;
/// Password hashing on threads of its own, with a short queue.
pub mod passwords;
/// A person's page preferences (the theme): a cookie read at render time, kept on the account.
pub mod preferences;
/// The dated price table (prices, context windows, reply caps) and the cost of a turn.
pub mod pricing;
/// Who a request acts for; what a session remembers of its user.
pub mod principal;
/// The paths anyone may reach, signed in or not.
pub mod public_paths;
/// A person's storage quota, counted by the database.
pub mod quota;
/// Markdown rendered off the async workers, a few at a time, once per run of a reply.
pub mod render;
/// Search as typed: free text to an FTS5 query, the index's marked snippets to text ranges.
pub mod search;
/// Sessions stored under a hash of their id; the session cookie's settings.
pub mod sessions;
/// Share links: a pinned snapshot of a conversation at an unguessable address, and its page.
pub mod shares;
/// An upload's body spooled to a temporary file beside the database (imports, attachments).
pub mod spool;
/// Shared application state handed to every request.
pub mod state;
/// Sign-in throttles: per account and address, per address (IPv6 by /64), and the account's
/// lockout that browsers it signed in from before are spared.
pub mod throttle;
/// Import and export: one conversation or all of them out; ChatGPT's, Claude's and Rill's in.
pub mod transfer;
/// Running turns: the provider call, its event log for readers, Stop, Continue, persistence,
/// the drain at shutdown.
pub mod turns;
/// The usage page's report and the CSV export of every turn's figures.
pub mod usage;

pub use state::AppState;
