//! What this browser remembers for the person between visits (`localStorage`): the draft of each
//! conversation, and the model they chose last. Nothing here is needed: without storage (private
//! modes, a full quota) the page works and simply forgets.

use uuid::Uuid;

const MODEL_KEY: &str = "rill.model";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn draft_key(conversation: Option<Uuid>) -> String {
    match conversation {
        Some(id) => format!("rill.draft.{id}"),
        None => "rill.draft.new".to_owned(),
    }
}

/// The unsent text of a conversation (`None`: the new conversation at `/`).
pub fn draft(conversation: Option<Uuid>) -> String {
    storage()
        .and_then(|s| s.get_item(&draft_key(conversation)).ok().flatten())
        .unwrap_or_default()
}

pub fn save_draft(conversation: Option<Uuid>, text: &str) {
    let Some(storage) = storage() else { return };
    let key = draft_key(conversation);
    let _ = if text.is_empty() {
        storage.remove_item(&key)
    } else {
        storage.set_item(&key, text)
    };
}

/// Forgets a sent draft once the server has it, unless the person has typed another since.
pub fn forget_sent_draft(conversation: Option<Uuid>, sent: &str) {
    if draft(conversation) == sent {
        save_draft(conversation, "");
    }
}

pub fn model() -> Option<String> {
    storage().and_then(|s| s.get_item(MODEL_KEY).ok().flatten())
}

pub fn save_model(id: &str) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(MODEL_KEY, id);
    }
}
