//! The sidebar's parts a first screen does not use, in a WASM file of their own (`cargo leptos
//! --split`): what a row's buttons and keys do (rename, delete with Undo, pin) with their server
//! calls, and the loading of older pages. The list itself, its links and its keys stay in the
//! main module.
//!
//! The file is fetched when the pointer comes over the list or the focus into it, or the list is
//! scrolled, so it is usually in before a button is pressed. A failed fetch says so in words
//! where the sidebar's problems show, and is tried again with the next action.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_split::wasm_split;
use uuid::Uuid;

use super::actions::{self, Actions, Deleted};
use super::older::OlderConversations;
use crate::ui::chat::NotLoaded;

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
fn rename_in_file(
    actions: Actions,
    id: Uuid,
    wanted: String,
    title: RwSignal<String>,
) -> Result<(), NotLoaded> {
    actions::rename(actions, id, wanted, title);
    Ok(())
}

/// Renames the conversation to `wanted`; `title` becomes the title stored.
pub fn rename(actions: Actions, id: Uuid, wanted: String, title: RwSignal<String>) {
    spawn_local(async move {
        if rename_in_file(actions.clone(), id, wanted, title)
            .await
            .is_err()
        {
            actions.not_loaded("rename the conversation");
        }
    });
}

#[wasm_split(sidebar_actions, wasm_split_path = ::leptos::wasm_split, fallible)]
fn delete_in_file(actions: Actions, id: Uuid, title: String) -> Result<(), NotLoaded> {
    actions::delete(actions, id, title);
    Ok(())
}

/// Deletes the conversation, and offers Undo.
pub fn delete(actions: Actions, id: Uuid, title: String) {
    spawn_local(async move {
        if delete_in_file(actions.clone(), id, title).await.is_err() {
            actions.not_loaded("delete the conversation");
        }
    });
}

#[wasm_split(sidebar_actions, wasm_split_path = ::leptos::wasm_split, fallible)]
fn undo_in_file(actions: Actions, gone: Deleted) -> Result<(), NotLoaded> {
    actions::undo(actions, gone);
    Ok(())
}

/// Restores the conversation deleted last.
pub fn undo(actions: Actions, gone: Deleted) {
    spawn_local(async move {
        if undo_in_file(actions.clone(), gone).await.is_err() {
            actions.not_loaded("restore the conversation");
        }
    });
}

#[wasm_split(sidebar_actions, wasm_split_path = ::leptos::wasm_split, fallible)]
fn pin_in_file(actions: Actions, id: Uuid, pinned: bool) -> Result<(), NotLoaded> {
    actions::pin(actions, id, pinned);
    Ok(())
}

/// Pins the conversation, or unpins it.
pub fn pin(actions: Actions, id: Uuid, pinned: bool) {
    spawn_local(async move {
        if pin_in_file(actions.clone(), id, pinned).await.is_err() {
            actions.not_loaded("pin the conversation");
        }
    });
}

#[wasm_split(sidebar_actions, wasm_split_path = ::leptos::wasm_split, fallible)]
fn fetch_in_file(older: OlderConversations) -> Result<(), NotLoaded> {
    older.fetch();
    Ok(())
}

/// Appends the list's next page.
pub fn load_older(older: OlderConversations) {
    // Marked at once, so scrolling on meanwhile asks for it once.
    older.loading.set(true);
    spawn_local(async move {
        if fetch_in_file(older).await.is_err() {
            older.not_loaded();
        }
    });
}
