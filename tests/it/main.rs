//! HTTP-level tests: the real Axum router on 127.0.0.1, a real temporary SQLite file, and a fake
//! OpenAI-compatible provider on 127.0.0.1 (crates/fake-provider). One test binary, modules by area.

mod conversations;
mod support;
mod turns;
