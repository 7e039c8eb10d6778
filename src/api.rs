//! Server functions by area. Each is a few lines: take the request's state and who is asking,
//! call into `crate::server`, return typed data. In the browser build their bodies become HTTP
//! calls. Every one takes JSON (`input = Json`); the request guard refuses anything else.

pub mod account;
pub mod admin;
pub mod api_keys;
pub mod attachments;
pub mod catalog;
pub mod conversations;
pub mod search;
pub mod shares;
pub mod turns;
pub mod usage;
