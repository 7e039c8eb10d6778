//! Keyboard shortcuts, as the chat apps people know have them (ChatGPT's): Ctrl/⌘+Shift+O a new
//! chat, Shift+Esc the message box, Ctrl/⌘+Shift+C copies the last answer, and `?` (when not
//! typing) opens their list in a modal dialog; Ctrl/⌘+K goes to the conversations' search box.

use leptos::ev::KeyboardEvent;
use leptos::html::{Button, Dialog};
use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;

use super::announcer::Announcements;
use super::on_demand::{on_demand, preload_shortcuts, shortcuts_dialog};
use super::state::ChatState;
use crate::model::Role;

/// Whether the shortcuts' dialog is open; provided by the chat page, so the sidebar's button can
/// open it too.
#[derive(Clone, Copy)]
pub struct HelpOpen(RwSignal<bool>);

/// What the keyboard can do: (keys, what they do), in the order the dialog lists them.
const SHORTCUTS: &[(&[&str], &str)] = &[
    (&["Ctrl", "Shift", "O"], "New chat"),
    (&["Ctrl", "K"], "Search the conversations"),
    (&["Shift", "Esc"], "Go to the message box"),
    (&["Ctrl", "Shift", "C"], "Copy the last answer"),
    (&["Enter"], "Send the message"),
    (&["Shift", "Enter"], "New line in the message"),
    (&["↑"], "Edit your last message (in an empty message box)"),
    (&["Esc"], "Stop the reply being written"),
    (&["F2"], "Rename the conversation (in the list)"),
    (&["Delete"], "Delete the conversation (in the list)"),
    (
        &["→"],
        "Reach a conversation's Rename and Delete (in the list; ← goes back)",
    ),
    (&["?"], "Show these shortcuts"),
];

/// Installs the page's shortcuts and renders their dialog. `new_chat` opens an empty chat.
#[component]
pub fn Shortcuts(
    state: ChatState,
    announcements: Announcements,
    new_chat: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let open = use_context::<HelpOpen>().map_or_else(|| RwSignal::new(false), |h| h.0);
    // Browser only (an effect), removed with the page.
    Effect::new(move || {
        let new_chat = new_chat.clone();
        let keys = window_event_listener(leptos::ev::keydown, move |ev| {
            let Some(shortcut) = shortcut_of(&ev) else {
                return;
            };
            ev.prevent_default();
            match shortcut {
                Shortcut::NewChat => new_chat(),
                Shortcut::FocusComposer => state.focus_composer(),
                Shortcut::CopyLastAnswer => copy_last_answer(state, announcements),
                Shortcut::Help => show_help(open),
                Shortcut::Search => crate::ui::search::focus_search(state),
            }
        });
        on_cleanup(move || keys.remove());
    });
    // The list is its own WASM file, fetched when it is first opened (`on_demand.rs`).
    view! {
        <Show when=move || open.get()>
            {on_demand(move || shortcuts_dialog(open))}
        </Show>
    }
}

/// The sidebar's way to the list, for those who do not know `?`.
#[component]
pub fn ShortcutsButton() -> impl IntoView {
    let open = use_context::<HelpOpen>();
    open.map(|open| {
        view! {
            <button
                type="button"
                class="link shortcuts-button"
                on:pointerenter=|_| preload_shortcuts()
                on:focus=|_| preload_shortcuts()
                on:click=move |_| show_help(open.0)
            >
                "Keyboard shortcuts"
            </button>
        }
    })
}

/// Opens the list. Asked again while its file could not be fetched (the sentence is showing), it
/// tries once more: hidden, then shown on the next turn, which fetches the file again.
fn show_help(open: RwSignal<bool>) {
    let showing = document()
        .query_selector("dialog.shortcuts-help[open]")
        .ok()
        .flatten()
        .is_some();
    if !open.get_untracked() {
        open.set(true);
    } else if !showing {
        open.set(false);
        leptos::task::spawn_local(async move {
            open.try_set(true);
        });
    }
}

/// Provides [`HelpOpen`] for the page.
pub fn provide_help() {
    provide_context(HelpOpen(RwSignal::new(false)));
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Shortcut {
    NewChat,
    FocusComposer,
    CopyLastAnswer,
    Help,
    Search,
}

/// The shortcut a key press means, if any. Ctrl or ⌘ (Apple keyboards) alike.
fn shortcut_of(ev: &KeyboardEvent) -> Option<Shortcut> {
    if ev.default_prevented() || ev.is_composing() {
        return None;
    }
    let command = ev.ctrl_key() || ev.meta_key();
    let key = ev.key();
    match key.as_str() {
        "o" | "O" if command && ev.shift_key() && !ev.alt_key() => Some(Shortcut::NewChat),
        "c" | "C" if command && ev.shift_key() && !ev.alt_key() => Some(Shortcut::CopyLastAnswer),
        "Escape" if ev.shift_key() && !command => Some(Shortcut::FocusComposer),
        "k" | "K" if command && !ev.shift_key() && !ev.alt_key() => Some(Shortcut::Search),
        "?" if !command && !ev.alt_key() && !typing(ev) => Some(Shortcut::Help),
        _ => None,
    }
}

/// The key went to a place that takes text: there `?` is a character.
fn typing(ev: &KeyboardEvent) -> bool {
    let Some(el) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
    else {
        return false;
    };
    matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT") || el.is_content_editable()
}

/// Copies the last reply's text (its markdown) and says so.
fn copy_last_answer(state: ChatState, announcements: Announcements) {
    let text = state.messages.with_untracked(|m| {
        m.iter()
            .rev()
            .find(|e| e.role == Role::Assistant)
            .map(|e| e.content.get_untracked())
    });
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        announcements.say("There is no answer to copy yet.");
        return;
    };
    let written =
        wasm_bindgen_futures::JsFuture::from(window().navigator().clipboard().write_text(&text));
    leptos::task::spawn_local(async move {
        announcements.say(if written.await.is_ok() {
            "Copied the last answer."
        } else {
            "The last answer could not be copied."
        });
    });
}

thread_local! {
    /// Where the focus was when the dialog opened, to give it back. A browser's page is one
    /// thread with one such dialog; not a reactive value, which the server would create on one
    /// thread and drop on another.
    static CAME_FROM: std::cell::RefCell<Option<web_sys::HtmlElement>> =
        const { std::cell::RefCell::new(None) };
}

/// The list of shortcuts in a modal dialog: the page behind is inert, Tab stays on its one
/// control, Esc or Close shuts it, and the focus goes back where it was. Shown while `open`
/// (`Shortcuts`), so it opens as it appears; Esc and Close close the dialog itself, whose `close`
/// event then gives the focus back and takes it off the page.
#[component]
pub(super) fn ShortcutsDialog(open: RwSignal<bool>) -> impl IntoView {
    let dialog = NodeRef::<Dialog>::new();
    let close_button = NodeRef::<Button>::new();
    Effect::new(move || {
        let Some(dialog) = dialog.get() else {
            return;
        };
        if open.get() && !dialog.open() {
            // In the next frame: the element is made before it is in the page (it comes in
            // when its file does), and only a dialog in the page can be shown.
            request_animation_frame(move || {
                if !dialog.is_connected() || dialog.open() {
                    return;
                }
                let focused = document()
                    .active_element()
                    .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok());
                CAME_FROM.with(|from| from.replace(focused));
                if dialog.show_modal().is_ok() {
                    if let Some(button) = close_button.get_untracked() {
                        let _ = button.focus();
                    }
                }
            });
        } else if !open.get() && dialog.open() {
            dialog.close();
        }
    });
    let on_close = move |_| {
        open.set(false);
        if let Some(el) = CAME_FROM.with(|from| from.take()) {
            let _ = el.focus();
        }
    };
    let on_keydown = move |ev: KeyboardEvent| match ev.key().as_str() {
        // Handled here, so the page's Esc (which stops a reply) does not see it.
        "Escape" => {
            ev.prevent_default();
            ev.stop_propagation();
            close(dialog);
        }
        "Tab" => {
            ev.prevent_default();
            if let Some(button) = close_button.get_untracked() {
                let _ = button.focus();
            }
        }
        _ => {}
    };
    view! {
        <dialog
            node_ref=dialog
            class="shortcuts-help"
            aria-labelledby="shortcuts-title"
            on:close=on_close
            on:keydown=on_keydown
        >
            <h2 id="shortcuts-title">"Keyboard shortcuts"</h2>
            <p class="muted">"On a Mac, ⌘ works where Ctrl is shown."</p>
            <dl class="shortcut-list">
                {SHORTCUTS.iter().map(|(keys, what)| view! {
                    <div>
                        <dt>{keys.iter().enumerate().map(|(i, key)| view! {
                            {(i > 0).then_some(" + ")}<kbd>{*key}</kbd>
                        }).collect_view()}</dt>
                        <dd>{*what}</dd>
                    </div>
                }).collect_view()}
            </dl>
            <button type="button" node_ref=close_button on:click=move |_| close(dialog)>"Close"</button>
        </dialog>
    }
}

/// Closes the dialog; its `close` event does the rest (`ShortcutsDialog`).
fn close(dialog: NodeRef<Dialog>) {
    if let Some(dialog) = dialog.get_untracked() {
        dialog.close();
    }
}
