//! Rill's provider layer: one streaming chat interface over LLM providers.
//!
//! Invariant: this crate imports nothing of the web stack (no leptos, axum or sqlx). The server
//! wires it to storage and HTTP; the browser build only uses [`Usage`] (feature `client` off).

mod usage;
pub use usage::{approximate_tokens, Usage};

#[cfg(feature = "client")]
mod error;
#[cfg(feature = "client")]
mod provider;
#[cfg(feature = "client")]
mod sse;

#[cfg(feature = "client")]
pub mod anthropic;
#[cfg(feature = "client")]
pub mod dev;
#[cfg(feature = "client")]
pub mod gemini;
#[cfg(feature = "local")]
pub mod local;
#[cfg(feature = "client")]
pub mod openai_compat;

#[cfg(feature = "client")]
pub use error::LlmError;
#[cfg(feature = "client")]
pub use provider::{
    ChatMessage, ChatRequest, EventStream, FinishReason, Provider, ProviderEvent, Role,
};

/// The HTTP client providers share (connection pool included).
#[cfg(feature = "client")]
pub type HttpClient = reqwest::Client;

/// An HTTP client suited to streaming providers: a connect timeout but no overall timeout
/// (a long reply is not a hung one; the turn runner bounds the wait for the first token).
#[cfg(feature = "client")]
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("rill/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}
