//! Import and export (issue 25): a conversation as Markdown or JSON, all of a person's as a zip
//! streamed as it is written, and imports of Rill's own files, ChatGPT's data export and
//! Claude's, each conversation stored whole or not at all.
//!
//! - `format`: Rill's export format, which every import is turned into;
//! - `export`, `markdown`: the downloads;
//! - `import`: the upload, spooled to disk, and the importer's loop; `reader`: the file read a
//!   conversation at a time (`central_directory`: an archive's list measured first);
//!   `chatgpt`, `claude`: their formats; `convert`: the checks all share; `tree`: a tree of
//!   messages as branches of turns.

mod central_directory;
pub mod chatgpt;
pub mod claude;
pub mod convert;
pub mod export;
pub mod files;
pub mod import;
mod markdown;
pub mod reader;
mod tree;

use axum::routing::{get, post};
use axum::Router;

use super::AppState;
use crate::model::transfer::IMPORT_PATH;

/// The export and import routes.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/export/all.zip", get(export::archive))
        .route("/export/{id}/{format}", get(export::conversation))
        .route(IMPORT_PATH, post(import::import))
        .with_state(state)
}
