//! Rill's provider layer: one streaming chat interface over LLM providers.
//!
//! Invariant: this crate imports nothing of the web stack (no leptos, axum or sqlx). The server
//! wires it to storage and HTTP; the browser build only uses [`Usage`] (feature `client` off).

mod usage;
#[cfg(feature = "client")]
pub(crate) use usage::saturating_sum;
pub use usage::{approximate_tokens, Usage};

#[cfg(feature = "client")]
mod error;
#[cfg(feature = "client")]
mod http;
#[cfg(feature = "client")]
mod limits;
#[cfg(feature = "client")]
mod provider;
#[cfg(feature = "client")]
mod retry;
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
pub use error::{LlmError, Oversized};
#[cfg(feature = "client")]
pub use limits::StreamLimits;
#[cfg(feature = "client")]
pub use openai_compat::{ListedModel, MaxTokensField};
#[cfg(feature = "client")]
pub use provider::{
    ChatMessage, ChatRequest, EventStream, FinishReason, Image, Provider, ProviderEvent, Role,
    CONTINUE_INSTRUCTION,
};
#[cfg(feature = "client")]
pub use retry::{Retry, RetryAdvice, RetryPolicy};

/// The HTTP client providers share (connection pool included).
#[cfg(feature = "client")]
pub type HttpClient = reqwest::Client;

/// Idle connections kept per provider host for the next request. Without a bound a burst of
/// 1,000 replies left 1,000 idle connections (about 25 KB each) for reqwest's 90 s idle timeout
/// and beyond; past this many, a connection is closed when its reply ends.
#[cfg(feature = "client")]
pub const IDLE_CONNECTIONS_PER_HOST: usize = 32;

/// An HTTP client suited to streaming providers: a connect timeout but no overall timeout (a long
/// reply is not a hung one; [`StreamLimits::idle`] bounds each wait). Redirects are not followed:
/// API keys travel in custom headers (`x-api-key`, `x-goog-api-key`) that would go to any host a
/// redirect names; a 3xx answer becomes [`LlmError::Redirected`]. At most
/// [`IDLE_CONNECTIONS_PER_HOST`] idle connections are kept per host.
#[cfg(feature = "client")]
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("rill/", env!("CARGO_PKG_VERSION")))
        .build()
        // Builds fail only when the TLS backend cannot start, and then `Client::default()`
        // would panic as well; the redirect rule must hold either way.
        .or_else(|_| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST)
                .build()
        })
        .unwrap_or_default()
}
