//! Server-only code (`ssr` feature). Nothing here reaches the WASM build.

/// Settings from the environment and an optional TOML file, read once at start-up.
pub mod config;
/// All SQL: conversations and messages, each query scoped to an owner.
pub mod db;
/// The HTTP router (pages, server functions, assets) and graceful shutdown.
pub mod http;
/// Which models exist and which provider serves each.
pub mod models;
/// The dated price table and the cost of a turn.
pub mod pricing;
/// Shared application state handed to every request.
pub mod state;
/// Running turns: the provider call, its event log for readers, Stop, persistence.
pub mod turns;

pub use state::AppState;
