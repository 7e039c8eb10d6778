//! The conversation's own settings: its system prompt (the model is the picker above) and its
//! share links. A prompt change applies from the next reply; each reply says which revision it
//! was written with.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::state::ChatState;
use crate::api::conversations::{default_system_prompt, set_system_prompt};
use crate::format::thousands;
use crate::model::MAX_SYSTEM_PROMPT_CHARS;
use crate::ui::shares::SharedLinks;

/// The header's Settings button, where the focus goes back when the panel closes.
pub const SETTINGS_BUTTON_ID: &str = "settings-button";

#[component]
pub fn SettingsPanel(state: ChatState) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let status = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    // Typed into since the panel opened: a default that arrives later must not replace it.
    let touched = RwSignal::new(false);
    // What the conversation has now: what the box starts from each time the panel opens.
    Effect::new(move || {
        if !state.settings_open.get() {
            return;
        }
        status.set(None);
        touched.set(false);
        if state.conversation_id.get_untracked().is_some() {
            text.set(state.system_prompt.get_untracked());
        } else if let Some(pending) = state.new_system_prompt.get_untracked() {
            text.set(pending);
        } else {
            spawn_local(async move {
                match default_system_prompt().await {
                    Ok(default) => {
                        if touched.try_get_untracked() == Some(false) {
                            text.try_set(default);
                        }
                    }
                    Err(e) => {
                        status.try_set(Some(format!("Could not load the default: {e}")));
                    }
                }
            });
        }
    });
    let length = Memo::new(move |_| text.with(|t| t.trim().chars().count()));
    let too_long = move || length.get() > MAX_SYSTEM_PROMPT_CHARS;
    let save = move || {
        if too_long() || saving.get_untracked() {
            return;
        }
        let wanted = text.get_untracked().trim().to_owned();
        let Some(id) = state.conversation_id.get_untracked() else {
            // Not started yet: the first message carries it.
            state.new_system_prompt.set(Some(wanted));
            status.set(Some("Saved: the first reply uses it.".into()));
            return;
        };
        saving.set(true);
        spawn_local(async move {
            match set_system_prompt(id, wanted.clone()).await {
                Ok(revision) => {
                    state.adopt_system_prompt(revision, wanted);
                    status.try_set(Some(format!(
                        "Saved as revision {revision}: the next reply uses it."
                    )));
                }
                Err(e) => {
                    status.try_set(Some(format!("Not saved: {e}")));
                }
            }
            saving.try_set(false);
        });
    };
    // Esc closes the panel (and only that: a reply being written goes on), and the focus goes
    // back to the button that opened it.
    let close = move || {
        state.settings_open.set(false);
        if let Some(button) = document().get_element_by_id(SETTINGS_BUTTON_ID) {
            if let Ok(button) =
                leptos::wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(button)
            {
                let _ = button.focus();
            }
        }
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Escape" {
            ev.prevent_default();
            close();
        }
    };
    view! {
        <section
            class="settings-panel"
            id="conversation-settings"
            aria-label="Conversation settings"
            on:keydown=on_keydown
        >
            <form on:submit=move |ev| { ev.prevent_default(); save(); }>
                <label for="system-prompt">"System prompt"</label>
                <textarea
                    id="system-prompt"
                    name="system_prompt"
                    rows="4"
                    placeholder="How the model should behave in this conversation, e.g. “Answer briefly, in French.”"
                    prop:value=move || text.get()
                    on:input:target=move |ev| {
                        touched.set(true);
                        text.set(ev.target().value());
                    }
                ></textarea>
                <p class="hint">
                    "Sent with every reply of this conversation and never shown as a message. A change applies from the next reply; open a reply's “prompt” mark to read the one it was given. The model is chosen above."
                </p>
                <div class="settings-actions">
                    <button type="submit" class="primary" disabled=move || too_long() || saving.get()>"Save"</button>
                    <button type="button" on:click=move |_| close()>"Close"</button>
                    <span class="settings-status" role="status" class:over=too_long>
                        {move || if too_long() {
                            Some(format!("{} / {} characters: too long to save", thousands(length.get()), thousands(MAX_SYSTEM_PROMPT_CHARS)))
                        } else {
                            status.get()
                        }}
                    </span>
                </div>
            </form>
            {move || state.conversation_id.get().map(|id| view! { <SharedLinks conversation=id /> })}
            // Take it out: as it reads (the branch on screen), or whole (every branch).
            {move || state.conversation_id.get().map(|id| view! {
                <p class="settings-export">
                    "Export this conversation: "
                    <a href=format!("/export/{id}/markdown") download>"Markdown"</a>
                    " (as it reads) · "
                    <a href=format!("/export/{id}/json") download>"JSON"</a>
                    " (every branch) · "
                    <a href=format!("/export/{id}/zip") download>"Archive"</a>
                    " (every branch and its files). All of them: "
                    <a href="/import-export">"Import and export"</a>
                    "."
                </p>
            })}
        </section>
    }
}
