use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

use super::budget_warning::BudgetWarning;
use super::files::PendingFile;
use super::on_demand;
use super::remembered;
use super::state::ChatState;
use crate::format::thousands;
use crate::model::MAX_MESSAGE_CHARS;
use crate::ui::phone::is_touch_first;

/// The count shows from this many characters on, so a long paste knows where it stands.
const SHOW_COUNT_FROM: usize = MAX_MESSAGE_CHARS * 9 / 10;

/// Enter sends, Shift+Enter adds a line; on a touch screen Enter adds a line and Send sends (a
/// phone keyboard has no Shift+Enter). While a reply streams, Send becomes Stop. The text is kept
/// per conversation until the server has it (see `remembered`).
#[component]
pub fn Composer(state: ChatState) -> impl IntoView {
    let draft = state.draft;
    let length = Memo::new(move |_| draft.with(|d| d.trim().chars().count()));
    let too_long = move || length.get() > MAX_MESSAGE_CHARS;
    // Send waits for every upload to end (a refused file is left out).
    let uploading = move || state.files.with(|f| f.iter().any(PendingFile::is_sending));
    let can_send = move || !state.is_streaming() && length.get() > 0 && !too_long() && !uploading();
    let submit = move || {
        if can_send() {
            state.send(draft.get_untracked());
            draft.set(String::new());
        }
    };
    // Known once the page runs in the browser; the server renders the desktop's hint.
    let touch = RwSignal::new(false);
    Effect::new(move || touch.set(is_touch_first()));
    let on_keydown = move |ev: KeyboardEvent| {
        // `is_composing`: Enter that confirms an IME candidate must not send.
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() && !touch.get_untracked() {
            ev.prevent_default();
            submit();
        } else if ev.key() == "ArrowUp"
            && draft.with_untracked(String::is_empty)
            && state.edit_last()
        {
            // Up in an empty composer edits the last message, as in most chat apps.
            ev.prevent_default();
        }
    };
    let on_input = move |text: String| {
        remembered::save_draft(state.conversation_id.get_untracked(), &text);
        draft.set(text);
    };
    // Files come by the button, a drop onto the composer, or a paste (a screenshot).
    let picker = NodeRef::<leptos::html::Input>::new();
    let on_paste = move |ev: web_sys::ClipboardEvent| {
        let files = files_of(transferred(&ev, "clipboardData"));
        if !files.is_empty() {
            ev.prevent_default();
            on_demand::attach_files(state, files);
        }
    };
    let on_drop = move |ev: web_sys::DragEvent| {
        let files = files_of(transferred(&ev, "dataTransfer"));
        // Dropped text goes where the browser puts it; dropped files are attached, not opened.
        if !files.is_empty() {
            ev.prevent_default();
            on_demand::attach_files(state, files);
        }
    };
    // The page opens ready to type (effects run only in the browser).
    Effect::new(move || state.focus_composer());
    view! {
        <BudgetWarning streaming=Signal::derive(move || state.is_streaming()) />
        <form
            class="composer"
            on:submit=move |ev| { ev.prevent_default(); submit(); }
            on:dragover=move |ev: web_sys::DragEvent| ev.prevent_default()
            on:drop=on_drop
        >
            <Show when=move || state.files.with(|f| !f.is_empty())>
                {on_demand::on_demand(move || on_demand::file_tray(state))}
            </Show>
            <input
                node_ref=picker
                type="file"
                multiple
                hidden
                on:change:target=move |ev| {
                    let input = ev.target();
                    on_demand::attach_files(state, files_of(input.files()));
                    // The same file can be picked again after it was removed.
                    input.set_value("");
                }
            />
            <button
                type="button"
                class="attach"
                aria-label="Attach files"
                title="Attach files (or drop or paste them)"
                on:click=move |_| {
                    if let Some(input) = picker.get() {
                        input.click();
                    }
                }
            >"+"</button>
            <div class="composer-field">
                <textarea
                    node_ref=state.composer
                    name="message"
                    rows="2"
                    placeholder=move || {
                        if touch.get() {
                            "Message Rill"
                        } else {
                            "Message Rill (Enter to send, Shift+Enter for a new line)"
                        }
                    }
                    enterkeyhint=move || if touch.get() { "enter" } else { "send" }
                    aria-label="Message"
                    aria-describedby="composer-count"
                    prop:value=move || draft.get()
                    on:input:target=move |ev| on_input(ev.target().value())
                    on:keydown=on_keydown
                    on:paste=on_paste
                ></textarea>
                <Show when=move || { length.get() >= SHOW_COUNT_FROM }>
                    <p id="composer-count" class="composer-count" class:over=too_long aria-live="polite">
                        {move || count_text(length.get())}
                    </p>
                </Show>
            </div>
            <Show
                when=move || state.is_streaming()
                fallback=move || view! {
                    <button type="submit" class="send" disabled=move || !can_send()>"Send"</button>
                }
            >
                <button
                    type="button"
                    class="stop"
                    title="Stop the reply (Esc)"
                    disabled=move || state.stopping.get()
                    on:click=move |_| on_demand::act(state, on_demand::Act::Stop)
                >
                    {move || if state.stopping.get() { "Stopping…" } else { "Stop" }}
                </button>
            </Show>
        </form>
    }
}

/// The files an event carries in its `DataTransfer` (`field`: `clipboardData` of a paste,
/// `dataTransfer` of a drop).
fn transferred(event: &web_sys::Event, field: &str) -> Option<web_sys::FileList> {
    use leptos::wasm_bindgen::JsCast;
    use web_sys::js_sys::Reflect;
    let transfer = Reflect::get(event, &field.into()).ok()?;
    Reflect::get(&transfer, &"files".into())
        .ok()?
        .dyn_into::<web_sys::FileList>()
        .ok()
}

/// The files of a picker, a drop or a paste.
fn files_of(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else {
        return Vec::new();
    };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

fn count_text(length: usize) -> String {
    let max = thousands(MAX_MESSAGE_CHARS);
    match length.checked_sub(MAX_MESSAGE_CHARS) {
        Some(over) if over > 0 => format!(
            "{} / {max} characters: {} too many to send",
            thousands(length),
            thousands(over)
        ),
        _ => format!("{} / {max} characters", thousands(length)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_says_how_far_over_the_limit_a_message_is() {
        assert_eq!(count_text(28_800), "28,800 / 32,000 characters");
        assert_eq!(count_text(32_000), "32,000 / 32,000 characters");
        assert_eq!(
            count_text(33_250),
            "33,250 / 32,000 characters: 1,250 too many to send"
        );
    }
}
