//! Search in the sidebar: a search box (Ctrl/⌘+K), results as the person types (after a short
//! pause), each with its conversation's title and a snippet whose matched words are `<mark>`ed
//! (text and elements put together here: nothing from the index is HTML). A result opens its
//! conversation at the message (`/c/:id?at=<message>`, see `ChatPage`), which is scrolled to and
//! highlighted briefly ([`land_on`]).
//!
//! The results' code is its own WASM file (`cargo leptos --split`), fetched when the box first
//! takes the focus: a first screen never shows it.

use std::time::Duration;

use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos::wasm_split::wasm_split;
use uuid::Uuid;

use crate::ui::chat::{on_demand, ChatState, NotLoaded};

/// The search box's id: Ctrl/⌘+K focuses it.
pub const SEARCH_BOX_ID: &str = "conversation-search";
/// The pause in typing after which the search is sent.
const DEBOUNCE: Duration = Duration::from_millis(180);
/// How long a message opened from a result stays highlighted.
const HIGHLIGHT: Duration = Duration::from_millis(2500);
/// How long [`land_on`] waits for the message to be on the page.
const LAND_WITHIN: Duration = Duration::from_secs(5);
/// Space left above the message landed on, so what led to it shows too (px).
const LAND_MARGIN_PX: i32 = 48;

/// The box, and the results below it once something is typed.
#[component]
pub fn SearchBox(state: ChatState) -> impl IntoView {
    // What was typed, and what is searched (the same, once typing pauses).
    let typed = RwSignal::new(String::new());
    let query = RwSignal::new(String::new());
    let pending = StoredValue::new(None::<TimeoutHandle>);
    // The results' file is fetched once the box has had the focus.
    let wanted = RwSignal::new(false);
    let input = NodeRef::<leptos::html::Input>::new();
    let set_query = move |text: String| {
        if let Some(handle) = pending.try_update_value(Option::take).flatten() {
            handle.clear();
        }
        if text.trim().is_empty() {
            query.set(String::new());
            return;
        }
        let handle = set_timeout_with_handle(move || _ = query.try_set(text), DEBOUNCE).ok();
        pending.set_value(handle);
    };
    let on_input = move |ev| {
        let text = event_target_value(&ev);
        typed.set(text.clone());
        set_query(text);
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
        // Esc empties the box (and stops nothing else: it is handled here).
        "Escape" if !typed.get_untracked().is_empty() => {
            ev.prevent_default();
            ev.stop_propagation();
            typed.set(String::new());
            set_query(String::new());
        }
        "ArrowDown" => {
            ev.prevent_default();
            focus_first_result();
        }
        _ => {}
    };
    view! {
        <div class="search" role="search">
            <input
                id=SEARCH_BOX_ID
                node_ref=input
                type="search"
                placeholder="Search"
                aria-label="Search conversations"
                aria-keyshortcuts="Control+K Meta+K"
                autocomplete="off"
                spellcheck="false"
                maxlength=crate::model::search::MAX_SEARCH_CHARS.to_string()
                prop:value=move || typed.get()
                on:focus=move |_| {
                    if !wanted.get_untracked() {
                        wanted.set(true);
                        leptos::task::spawn_local(async {
                            // A failure shows when the results do (the fetch is tried again).
                            let _ = preload_results_file().await;
                        });
                    }
                }
                on:input=on_input
                on:keydown=on_keydown
            />
            <Show when=move || wanted.get() && !query.with(|q| q.trim().is_empty())>
                {on_demand(move || search_results(state, query))}
            </Show>
        </div>
    }
}

/// Moves the focus to the search box (Ctrl/⌘+K); on a phone the drawer it is in opens first.
pub fn focus_search(state: ChatState) {
    let Some(input) = search_input() else {
        return;
    };
    if input.offset_parent().is_some() {
        take_focus(&input);
        return;
    }
    // Hidden with the drawer: open it, and once it has put the focus on its first control
    // (`drawer::follow_focus`, a frame later), move it to the box.
    state.menu_open.set(true);
    set_timeout(
        || {
            if let Some(input) = search_input() {
                take_focus(&input);
            }
        },
        Duration::from_millis(60),
    );
}

fn search_input() -> Option<web_sys::HtmlInputElement> {
    document()
        .get_element_by_id(SEARCH_BOX_ID)
        .and_then(|el| el.dyn_into::<web_sys::HtmlInputElement>().ok())
}

fn take_focus(input: &web_sys::HtmlInputElement) {
    let _ = input.focus();
    input.select();
}

fn focus_first_result() {
    if let Some(link) = document()
        .query_selector(".search-results a")
        .ok()
        .flatten()
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = link.focus();
    }
}

#[wasm_split(
    chat_search,
    wasm_split_path = ::leptos::wasm_split,
    fallible,
    preload(preload_results_file)
)]
pub fn search_results(state: ChatState, query: RwSignal<String>) -> Result<AnyView, NotLoaded> {
    Ok(view! { <results::SearchResults state query /> }.into_any())
}

/// The results' code (in the `chat_search` file).
mod results {
    use leptos::prelude::*;

    use super::land_on;
    use crate::api::search::search;
    use crate::model::search::{Marked, SearchHit};
    use crate::model::Role;
    use crate::ui::chat::ChatState;

    #[component]
    pub fn SearchResults(state: ChatState, query: RwSignal<String>) -> impl IntoView {
        let found = LocalResource::new(move || {
            let query = query.get();
            async move { search(query).await }
        });
        view! {
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match found.await {
                        Ok(hits) if hits.is_empty() => view! {
                            <p class="search-empty" role="status">"No conversation holds those words."</p>
                        }.into_any(),
                        Ok(hits) => view! {
                            <p class="sr-only" role="status">{format!("{} results", hits.len())}</p>
                            <ul class="search-results" aria-label="Search results">
                                {hits.into_iter().map(|hit| view! { <Hit state hit /> }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(e) => view! { <p class="notice" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        }
    }

    #[component]
    fn Hit(state: ChatState, hit: SearchHit) -> impl IntoView {
        let conversation = hit.conversation_id;
        let message = hit.message.as_ref().map(|m| m.id);
        let href = match message {
            Some(id) => format!("/c/{conversation}?at={id}"),
            None => format!("/c/{conversation}"),
        };
        let on_click = move |ev: leptos::ev::MouseEvent| {
            state.menu_open.set(false);
            // Already on the page (this conversation, this version): there is nothing to load.
            if let Some(id) = message {
                if state.conversation_id.get_untracked() == Some(conversation)
                    && super::message_element(id).is_some()
                {
                    ev.prevent_default();
                    land_on(id);
                }
            }
        };
        let who = hit.message.as_ref().map(|m| match m.role {
            Role::User => "You: ",
            Role::Assistant => "Answer: ",
        });
        let title = if hit.title.text.is_empty() {
            Marked {
                text: "Untitled".into(),
                marks: Vec::new(),
            }
        } else {
            hit.title
        };
        view! {
            <li>
                <a href=href on:click=on_click>
                    <span class="search-title">{marked(&title)}</span>
                    {hit.message.map(|m| view! {
                        <span class="search-snippet">
                            <span class="search-who">{who}</span>
                            {marked(&m.snippet)}
                        </span>
                    })}
                </a>
            </li>
        }
    }

    /// Text with its matched words in `<mark>`: text nodes and elements, never HTML.
    fn marked(text: &Marked) -> impl IntoView {
        text.pieces()
            .into_iter()
            .map(|(piece, on)| {
                let piece = piece.to_owned();
                if on {
                    view! { <mark>{piece}</mark> }.into_any()
                } else {
                    piece.into_any()
                }
            })
            .collect_view()
    }
}

/// The message's element in the list, if it is shown.
fn message_element(id: Uuid) -> Option<web_sys::HtmlElement> {
    document()
        .query_selector(&format!("li.message[data-message-id=\"{id}\"]"))
        .ok()
        .flatten()
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
}

/// Scrolls the message list to the message and highlights it briefly, once it is on the page
/// (its conversation may still be loading: it is looked for a few times a second).
pub fn land_on(id: Uuid) {
    fn attempt(id: Uuid, left: u32) {
        let Some(message) = message_element(id) else {
            if left > 0 {
                set_timeout(move || attempt(id, left - 1), Duration::from_millis(50));
            }
            return;
        };
        let _ = message.set_attribute("data-found", "");
        let highlighted = message.clone();
        set_timeout(
            move || _ = highlighted.remove_attribute("data-found"),
            HIGHLIGHT,
        );
        let place = move || {
            let Some(list) = message
                .closest(".messages")
                .ok()
                .flatten()
                .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
            else {
                return;
            };
            let at = message
                .offset_top()
                .saturating_sub(list.offset_top())
                .saturating_sub(LAND_MARGIN_PX);
            list.set_scroll_top(at.max(0));
        };
        // Now, and once more after the opened conversation's own first scroll (to its end).
        place();
        set_timeout(place, Duration::from_millis(200));
    }
    let tries = u32::try_from(LAND_WITHIN.as_millis() / 50).unwrap_or(100);
    attempt(id, tries);
}
