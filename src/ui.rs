//! Components by feature. They call server functions from `crate::api` and never see HTTP,
//! providers or SQL.

pub mod chat;
pub mod conversations;
