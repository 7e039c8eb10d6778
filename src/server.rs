//! Server-only code (`ssr` feature). Nothing here reaches the WASM build.

/// Settings from the environment and an optional TOML file, read once at start-up.
pub mod config;
/// All SQL: conversations and messages, each query scoped to an owner.
pub mod db;
/// The HTTP router (pages, server functions, assets) and graceful shutdown.
pub mod http;
/// The rules for what a person may send: message and system prompt limits.
pub mod input;
/// Which models exist and which provider serves each.
pub mod models;
/// The dated price table (prices, context windows, reply caps) and the cost of a turn.
pub mod pricing;
/// Shared application state handed to every request.
pub mod state;
/// Running turns: the provider call, its event log for readers, Stop, Continue, persistence,
/// the drain at shutdown.
pub mod turns;

pub use state::AppState;
