//! A reply's text as rendered markdown, kept current while it streams.
//!
//! A reply loaded with the page comes rendered by the server (`MessageView::html`), so the
//! first paint needs no work here. Once its text changes in the page (a streaming token, a
//! replay, a Continue), the page renders it itself with the same code (`crate::markdown`),
//! fetched as its own WASM file on first use: the first load does not carry the markdown
//! parser. Blocks that can no longer change are added once; only the open block at the end
//! is rendered again, so a token costs about the same at the end of a long reply as at its start.
//!
//! Settled blocks are gathered in groups of [`PARTS_PER_GROUP`], each a real element that the
//! browser skips while it is out of view (`content-visibility: auto` in `style/main.css`): with
//! a flat list of blocks, every frame walked every block of the reply (measured in
//! docs/decisions.md).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_bindgen::JsCast;

use super::state::{ChatEntry, ChatState};
use crate::markdown::{self, TailRender};

/// How many rendered parts a group of settled blocks holds before the next group starts.
const PARTS_PER_GROUP: usize = 32;

/// How long a rendering waits for an animation frame before it goes ahead without one.
const FRAME_BACKSTOP: Duration = Duration::from_millis(100);

/// Rendered parts of settled blocks, each with its key.
type Parts = ArcRwSignal<Vec<(usize, String)>>;

/// The settled groups of a reply, each with its key (the key of its first part).
type Groups = RwSignal<Vec<(usize, Parts)>>;

/// What the page has rendered of a reply's text.
#[derive(Default)]
struct Shown {
    /// The text of the settled blocks: a change that does not extend it starts over.
    settled_text: String,
    /// The whole text is rendered each time (it defines link references).
    whole: bool,
    /// Keys for settled blocks, never reused.
    next_key: usize,
    /// Table cells the settled blocks used of the reply's budget (`markdown::MAX_TABLE_CELLS`).
    settled_cells: usize,
}

impl Shown {
    fn start_over(&mut self, whole: bool) {
        self.settled_text.clear();
        self.whole = whole;
        self.settled_cells = 0;
    }
}

#[component]
pub fn ReplyText(entry: ChatEntry, state: ChatState) -> impl IntoView {
    let server_html = entry.html.try_get_value().unwrap_or_default();
    let rendered_by_server = !server_html.is_empty();
    let shown = StoredValue::new(Shown::default());
    let settled: Groups = RwSignal::new(Vec::new());
    let open = RwSignal::new(server_html);
    let rendering = StoredValue::new(false);

    Effect::new(move |previous: Option<()>| {
        let empty = entry.content.with(String::is_empty);
        // The server's rendering stands until the text changes.
        if previous.is_none() && (rendered_by_server || empty) {
            return;
        }
        if rendering.get_value() {
            return;
        }
        rendering.set_value(true);
        let started = Rc::new(Cell::new(false));
        let render = move || {
            if started.replace(true) {
                return;
            }
            spawn_local(async move {
                render_until_current(entry, shown, settled, open).await;
                rendering.try_set_value(false);
                state.follow.new_text();
            });
        };
        // At most one rendering a frame: tokens that arrive between frames are rendered
        // together, just before the browser lays the frame out. A hidden tab has no frames and
        // renders as tokens come; a page the browser is not drawing although it is not hidden
        // (a background page under automation) renders when the backstop fires.
        if document().hidden() {
            render();
        } else {
            request_animation_frame(render.clone());
            set_timeout(render, FRAME_BACKSTOP);
        }
    });

    view! {
        <div class="content markdown" on:click=copy_code>
            <For each=move || settled.try_get().unwrap_or_default() key=|(key, _)| *key let((_, parts))>
                <div class="md-group">
                    <For each=move || parts.get() key=|(key, _)| *key let((_, html))>
                        <div class="md-part" inner_html=html></div>
                    </For>
                </div>
            </For>
            <div class="md-part" inner_html=move || open.try_get().unwrap_or_default()></div>
        </div>
    }
}

/// Renders what changed since the last rendering, again until the text stops changing under it
/// (tokens that arrive while the renderer's WASM loads are rendered together). Every access is
/// `try_`: the entry is gone when the page has moved to another conversation meanwhile.
async fn render_until_current(
    entry: ChatEntry,
    shown: StoredValue<Shown>,
    settled: Groups,
    open: RwSignal<String>,
) {
    loop {
        let read = entry.content.try_with_untracked(|text| {
            shown.try_update_value(|now| {
                if !text.starts_with(now.settled_text.as_str()) {
                    now.start_over(false);
                    settled.try_set(Vec::new());
                }
                (
                    text[now.settled_text.len()..].to_owned(),
                    text.len(),
                    now.whole,
                    markdown::MAX_TABLE_CELLS.saturating_sub(now.settled_cells),
                )
            })
        });
        let Some(Some((tail, seen_len, whole, cells_left))) = read else {
            return;
        };
        let piece = render_reply_tail(tail.clone(), !whole, cells_left).await;
        if piece.whole && !whole {
            shown.try_update_value(|now| now.start_over(true));
            settled.try_set(Vec::new());
            continue;
        }
        if piece.settled_len > 0 {
            let settled_text = tail.get(..piece.settled_len).unwrap_or_default();
            let key = shown.try_update_value(|now| {
                now.settled_text.push_str(settled_text);
                now.settled_cells = now.settled_cells.saturating_add(piece.settled_cells);
                now.next_key += 1;
                now.next_key
            });
            if let Some(key) = key {
                add_settled(settled, key, piece.settled_html);
            }
        }
        open.try_set(piece.open_html);
        if entry.content.try_with_untracked(String::len) != Some(seen_len) {
            continue;
        }
        return;
    }
}

/// Adds a rendered part to the last group, or starts a group when that one is full.
fn add_settled(groups: Groups, key: usize, html: String) {
    let last = groups.try_with_untracked(|g| g.last().map(|(_, parts)| parts.clone()));
    match last.flatten() {
        Some(parts) if parts.with_untracked(Vec::len) < PARTS_PER_GROUP => {
            parts.update(|p| p.push((key, html)));
        }
        _ => {
            groups.try_update(|g| g.push((key, ArcRwSignal::new(vec![(key, html)]))));
        }
    }
}

/// The markdown renderer, in its own WASM file (`cargo leptos --split`), loaded on first use.
#[leptos::lazy]
fn render_reply_tail(tail: String, settle: bool, cells_left: usize) -> TailRender {
    markdown::render_tail(&tail, settle, cells_left)
}

/// A code block's Copy button (written by `crate::markdown`, so handled here by delegation).
fn copy_code(event: leptos::ev::MouseEvent) {
    let Some(button) = event
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .and_then(|t| t.closest("button.copy-code").ok().flatten())
    else {
        return;
    };
    let code = button
        .closest(".code-block")
        .ok()
        .flatten()
        .and_then(|block| block.query_selector("code").ok().flatten())
        .and_then(|code| code.text_content())
        .unwrap_or_default();
    let clipboard = window().navigator().clipboard();
    let copied = wasm_bindgen_futures::JsFuture::from(clipboard.write_text(&code));
    spawn_local(async move {
        let said = if copied.await.is_ok() {
            "Copied"
        } else {
            "Copy failed"
        };
        button.set_text_content(Some(said));
        set_timeout(
            move || button.set_text_content(Some("Copy")),
            Duration::from_millis(1500),
        );
    });
}
