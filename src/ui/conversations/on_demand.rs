//! The sidebar's parts a first screen does not use, in a WASM file of their own (`cargo leptos
//! --split`): what a row's buttons and keys do (rename, delete with Undo, pin) with their server
//! calls, and the loading of older pages. The list itself, its links and its keys stay in the
//! main module.
//!
//! The file is fetched when the pointer comes over the list or the focus into it, or the list is
//! scrolled, so it is usually in before a button is pressed. A failed fetch says so in words
//! where the sidebar's problems show, and is tried again with the next action.
//!
//! One way into the file for every action (`Act`): each function split out brings its own
//! loader into the main module.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_split::wasm_split;
use uuid::Uuid;

use super::actions::{self, Actions, Deleted};
use super::older::OlderConversations;
use crate::ui::chat::NotLoaded;

/// What the file is asked to do.
pub enum Act {
    /// Rename to the text wanted; the title shown becomes the one stored.
    Rename(Actions, Uuid, String, RwSignal<String>),
    Delete(Actions, Uuid, String),
    Undo(Actions, Deleted),
    Pin(Actions, Uuid, bool),
    /// Append the list's next page.
    Older(OlderConversations),
}

/// Starts fetching the file (the pointer or the focus is on the list).
pub fn preload() {
    spawn_local(async {
        // A failure is said when an action needs the file (which is fetched again then).
        let _ = preload_sidebar_file().await;
    });
}

#[wasm_split(
    sidebar_actions,
    wasm_split_path = ::leptos::wasm_split,
    fallible,
    preload(preload_sidebar_file)
)]
fn in_file(act: Act) -> Result<(), NotLoaded> {
    match act {
        Act::Rename(actions, id, wanted, title) => actions::rename(actions, id, wanted, title),
        Act::Delete(actions, id, title) => actions::delete(actions, id, title),
        Act::Undo(actions, gone) => actions::undo(actions, gone),
        Act::Pin(actions, id, pinned) => actions::pin(actions, id, pinned),
        Act::Older(older) => older.fetch(),
    }
    Ok(())
}

/// Does what a row's button, a key or Undo asked (not `Act::Older`: see `load_older`).
pub fn act(act: Act) {
    let (actions, what) = match &act {
        Act::Rename(actions, ..) => (actions.clone(), "rename the conversation"),
        Act::Delete(actions, ..) => (actions.clone(), "delete the conversation"),
        Act::Undo(actions, _) => (actions.clone(), "restore the conversation"),
        Act::Pin(actions, ..) => (actions.clone(), "pin the conversation"),
        Act::Older(older) => return load_older(*older),
    };
    // A new action: what the last one said is no longer the news.
    actions.problem.set(None);
    spawn_local(async move {
        if in_file(act).await.is_err() {
            actions.problem.try_set(Some(format!(
                "Could not {what}: this part of the page could not be loaded. Check the connection and try again."
            )));
        }
    });
}

/// Appends the list's next page.
pub fn load_older(older: OlderConversations) {
    // Marked at once, so scrolling on meanwhile asks for it once.
    older.loading.set(true);
    spawn_local(async move {
        if in_file(Act::Older(older)).await.is_err() {
            older.not_loaded();
        }
    });
}
