//! What a row's buttons and keys do (rename, delete, pin) and Undo after a delete: the calls to
//! the server and what the list makes of their answers. In the sidebar's on-demand file
//! (`on_demand.rs`): a first screen only lists.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use uuid::Uuid;

use crate::api::conversations::{
    delete_conversation, pin_conversation, rename_conversation, restore_conversation,
};
use crate::model::UNDO_DELETE_SECS;
use crate::ui::chat::ChatState;

/// A conversation just deleted, while Undo is offered.
#[derive(Clone, Debug, PartialEq)]
pub struct Deleted {
    pub id: Uuid,
    pub title: String,
    /// It was the one on screen: Undo opens it again.
    pub was_open: bool,
}

/// What the sidebar's actions change: the page, the deleted one on offer, where a problem is
/// said, and how to go to another page.
#[derive(Clone)]
pub struct Actions {
    pub state: ChatState,
    pub deleted: RwSignal<Option<Deleted>>,
    pub undo_button: NodeRef<leptos::html::Button>,
    pub problem: RwSignal<Option<String>>,
    pub go: Arc<dyn Fn(&str) + Send + Sync>,
}

pub fn rename(actions: Actions, id: Uuid, wanted: String, title: RwSignal<String>) {
    spawn_local(async move {
        match rename_conversation(id, wanted).await {
            Ok(stored) => {
                title.try_set(stored);
            }
            Err(e) => {
                actions
                    .problem
                    .try_set(Some(format!("Could not rename the conversation: {e}")));
            }
        }
    });
}

pub fn pin(actions: Actions, id: Uuid, pinned: bool) {
    spawn_local(async move {
        match pin_conversation(id, pinned).await {
            Ok(()) => {
                actions.state.conversations_changed.try_update(|n| *n += 1);
            }
            Err(e) => {
                actions
                    .problem
                    .try_set(Some(format!("Could not pin the conversation: {e}")));
            }
        }
    });
}

pub fn delete(actions: Actions, id: Uuid, title: String) {
    // Deleted from the list (by its key or its button): the focus, whose element goes with the
    // row, moves to Undo.
    let from_list = document()
        .active_element()
        .and_then(|el| el.closest(".conversation-list").ok().flatten())
        .is_some();
    spawn_local(async move {
        let Actions {
            state,
            deleted,
            undo_button,
            problem,
            go,
        } = actions;
        match delete_conversation(id).await {
            Ok(()) => {
                let was_open = state.conversation_id.get_untracked() == Some(id);
                if was_open {
                    state.start_new();
                    go("/");
                }
                let gone = Deleted {
                    id,
                    title,
                    was_open,
                };
                deleted.set(Some(gone.clone()));
                if from_list {
                    request_animation_frame(move || {
                        if let Some(el) = undo_button.get_untracked() {
                            let _ = el.focus();
                        }
                    });
                }
                state.conversations_changed.update(|n| *n += 1);
                set_timeout(
                    move || {
                        if deleted.try_get_untracked().flatten().as_ref() == Some(&gone) {
                            deleted.try_set(None);
                        }
                    },
                    std::time::Duration::from_secs(UNDO_DELETE_SECS),
                );
            }
            Err(e) => {
                problem.try_set(Some(format!("Could not delete the conversation: {e}")));
            }
        }
    });
}

pub fn undo(actions: Actions, gone: Deleted) {
    spawn_local(async move {
        match restore_conversation(gone.id).await {
            Ok(()) => {
                actions.state.conversations_changed.try_update(|n| *n += 1);
                if gone.was_open {
                    (actions.go)(&format!("/c/{}", gone.id));
                }
            }
            Err(e) => {
                actions
                    .problem
                    .try_set(Some(format!("Could not restore the conversation: {e}")));
            }
        }
    });
}
