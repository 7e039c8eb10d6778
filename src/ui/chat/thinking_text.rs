//! A reply's thinking as plain text, kept current while it streams and the section is open.
//!
//! Setting the whole text with each token had the browser lay all of it out again every frame:
//! with the section open through a 20,000-token stream, layout grew from 2.9 to 13.2 ms a frame
//! and the main thread was busy 102 of 109 seconds (docs/decisions.md). So whole lines are settled
//! in chunks of about [`CHUNK_BYTES`], each its own block that is laid out once (and skipped out
//! of view, `style/main.css`); only the unfinished tail changes with a token.

use leptos::prelude::*;

use super::state::ChatEntry;

/// How much text a settled chunk holds at least: it ends at the first line break after this.
const CHUNK_BYTES: usize = 2048;

#[component]
pub fn ThinkingText(entry: ChatEntry) -> impl IntoView {
    // Settled chunks with their keys (never reused), and how many bytes of the thinking they hold.
    let chunks = RwSignal::new(Vec::<(usize, String)>::new());
    let settled_len = StoredValue::new(0usize);
    let next_key = StoredValue::new(0usize);
    let tail = RwSignal::new(String::new());

    // `try_`: the entry can be gone first when the page moves to another conversation.
    Effect::new(move || {
        entry.thinking.try_with(|text| {
            // Thinking only grows; anything else (a replay from the start) is shown afresh.
            if text.len() < settled_len.get_value() {
                settled_len.set_value(0);
                chunks.try_set(Vec::new());
            }
            let mut from = settled_len.get_value();
            let mut new_chunks = Vec::new();
            while let Some(end) = text.get(from..).and_then(first_chunk_end) {
                let to = from.saturating_add(end);
                let key = next_key.get_value();
                next_key.set_value(key.wrapping_add(1));
                new_chunks.push((key, text.get(from..to).unwrap_or_default().to_owned()));
                from = to;
            }
            if !new_chunks.is_empty() {
                chunks.try_update(|c| c.extend(new_chunks));
                settled_len.set_value(from);
            }
            tail.try_set(text.get(from..).unwrap_or_default().to_owned());
        });
    });

    view! {
        <div class="reasoning-text">
            <For each=move || chunks.get() key=|(key, _)| *key let((_, chunk))>
                <div class="reasoning-chunk">{chunk}</div>
            </For>
            <div class="reasoning-chunk">{move || tail.get()}</div>
        </div>
    }
}

/// Where the first run of whole lines at least [`CHUNK_BYTES`] long ends (after its line
/// break), in `rest`. A line break is one byte and never inside a character.
fn first_chunk_end(rest: &str) -> Option<usize> {
    let after = rest.as_bytes().get(CHUNK_BYTES..)?;
    let at = after.iter().position(|&b| b == b'\n')?;
    Some(CHUNK_BYTES.saturating_add(at).saturating_add(1))
}
