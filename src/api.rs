//! Server functions by area. Each is a few lines: take the request's state and owner, call into
//! `crate::server`, return typed data. In the browser build their bodies become HTTP calls.

pub mod conversations;
pub mod models;
pub mod turns;
