//! HTTP-level tests: the real Axum router on 127.0.0.1, a real temporary SQLite file, and a fake
//! provider on 127.0.0.1 speaking the OpenAI, Anthropic and Gemini wire formats
//! (crates/fake-provider). One test binary, modules by area.

mod conversations;
mod local_model;
mod providers;
mod support;
mod turns;
