use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

use super::state::ChatState;

/// Enter sends, Shift+Enter adds a line. While a reply streams, Send becomes Stop.
#[component]
pub fn Composer(state: ChatState) -> impl IntoView {
    let draft = state.draft;
    let can_send = move || !state.is_streaming() && !draft.with(|d| d.trim().is_empty());
    let submit = move || {
        if can_send() {
            state.send(draft.get_untracked());
            draft.set(String::new());
        }
    };
    let on_keydown = move |ev: KeyboardEvent| {
        // `is_composing`: Enter that confirms an IME candidate must not send.
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            submit();
        }
    };
    // The page opens ready to type (effects run only in the browser).
    Effect::new(move || state.focus_composer());
    view! {
        <form class="composer" on:submit=move |ev| { ev.prevent_default(); submit(); }>
            <textarea
                node_ref=state.composer
                name="message"
                rows="2"
                placeholder="Message Rill (Enter to send, Shift+Enter for a new line)"
                aria-label="Message"
                prop:value=move || draft.get()
                on:input:target=move |ev| draft.set(ev.target().value())
                on:keydown=on_keydown
            ></textarea>
            <Show
                when=move || state.is_streaming()
                fallback=move || view! {
                    <button type="submit" class="send" disabled=move || !can_send()>"Send"</button>
                }
            >
                <button
                    type="button"
                    class="stop"
                    disabled=move || state.stopping.get()
                    on:click=move |_| state.stop()
                >
                    {move || if state.stopping.get() { "Stopping…" } else { "Stop" }}
                </button>
            </Show>
        </form>
    }
}
