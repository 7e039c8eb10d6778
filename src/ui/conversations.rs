//! The list of conversations beside the chat: search, open, rename, delete (with Undo), pin.
//!
//! The page comes with the newest [`crate::model::CONVERSATIONS_PAGE`] (about a screenful), so a person with
//! 10,000 conversations opens it as fast as one with 10; older ones come a page at a time as the
//! reader scrolls toward the end of the list (`older.rs`). What a row's buttons do and the loading
//! of older pages are a WASM file of their own (`on_demand.rs`), fetched when the pointer or the
//! focus comes to the list.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos_router::hooks::use_navigate;
use uuid::Uuid;

use crate::api::conversations::list_pinned;
use crate::model::ConversationSummary;
use crate::ui::account::AccountMenu;
use crate::ui::chat::{ChatState, ShortcutsButton, TabTitle};
use crate::ui::search::SearchBox;

mod actions;
mod groups;
mod older;
mod on_demand;

use crate::ui::theme::ThemeSwitch;
use crate::ui::wire;
use actions::{Actions, Deleted};
use groups::{browser_clock, Clock};
use older::{near_end, OlderConversations};
use on_demand::Act;

/// The description every conversation link points to (`aria-describedby`).
const ROW_KEYS_ID: &str = "conversation-keys";

/// The conversation deleted last, while Undo is offered. Above the routes, because deleting the
/// open conversation goes from `/c/:id` to `/`, which is another page.
#[derive(Clone, Copy)]
struct RecentlyDeleted(RwSignal<Option<Deleted>>);

pub fn provide_recently_deleted() {
    provide_context(RecentlyDeleted(RwSignal::new(None)));
}

/// Going to `path` in the app, from outside a link.
fn use_go() -> impl Fn(&str) + Clone + Send + Sync + 'static {
    let navigate = use_navigate();
    move |path: &str| {
        navigate(path, Default::default());
        // The address may have been set without the router (see ChatState::apply); make both agree.
        if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = history.replace_state_with_url(
                &leptos::wasm_bindgen::JsValue::NULL,
                "",
                Some(path),
            );
        }
    }
}

/// Opens a new chat: the sidebar's "New chat", and its keyboard shortcut.
pub fn use_new_chat(state: ChatState) -> impl Fn() + Clone + Send + Sync + 'static {
    let go = use_go();
    move || {
        state.start_new();
        go("/");
    }
}

/// `active`: the conversation on screen (a mirror of `ChatState::conversation_id`, see `mirror`).
#[component]
pub fn Sidebar(state: ChatState, active: RwSignal<Option<Uuid>>) -> impl IntoView {
    let older = OlderConversations::new();
    // After a change the list is read again as long as it was (down to the row it ended at), so
    // it keeps its length and the reader their place.
    let conversations = wire::resource(
        move || state.conversations_changed.get(),
        move |_| older.read_first(),
    );
    let pinned = wire::resource(move || state.conversations_changed.get(), |_| list_pinned());
    let deleted =
        use_context::<RecentlyDeleted>().map_or_else(|| RwSignal::new(None), |recent| recent.0);
    let problem = RwSignal::new(None::<String>);
    // The person's clock, for the groups by last activity: only in the browser (an effect), read
    // again whenever the list is.
    let clock = RwSignal::new(None::<Clock>);
    Effect::new(move || {
        state.conversations_changed.track();
        clock.set(Some(browser_clock()));
    });
    let new_chat = {
        let open = use_new_chat(state);
        move |_| open()
    };
    let undo_button = NodeRef::<leptos::html::Button>::new();
    let actions = Actions {
        state,
        deleted,
        undo_button,
        problem,
        go: Arc::new(use_go()),
    };
    let undo = {
        let actions = actions.clone();
        move |_| {
            if let Some(gone) = deleted.get_untracked() {
                deleted.set(None);
                on_demand::act(Act::Undo(actions.clone(), gone));
            }
        }
    };
    // The list scrolls on its own (style/main.css): near its end, the next page is asked for;
    // again once a page is in (it may not fill the list), and once the page is live.
    let list = NodeRef::<leptos::html::Ul>::new();
    let load_if_near_end = move || {
        if older.wants_more() && list.get_untracked().is_some_and(|el| near_end(&el)) {
            on_demand::load_older(older);
        }
    };
    Effect::new(move || {
        older.next.track();
        request_animation_frame(load_if_near_end);
    });
    // Set once the page is live: what is under the list shows from then on (the server renders
    // it before it knows whether the list goes on, and a button does nothing without the WASM).
    let live = RwSignal::new(false);
    Effect::new(move || live.set(true));
    let pinned_actions = actions.clone();
    view! {
        <nav class="sidebar" aria-label="Conversations">
            <button type="button" class="new-chat" on:click=new_chat>"New chat"</button>
            <SearchBox state />
            <Show when=move || problem.try_with(Option::is_some).unwrap_or(false)>
                <p class="notice" role="alert">{move || problem.try_get().flatten()}</p>
            </Show>
            <Transition fallback=|| ()>
                {move || {
                    let actions = pinned_actions.clone();
                    let pinned = pinned.clone();
                    Suspend::new(async move {
                        // A failure here shows with the list below, which is read alike.
                        let list = pinned.await.unwrap_or_default();
                        (!list.is_empty()).then(|| {
                            // Pinned rows have no groups: a clock never set.
                            let clock = RwSignal::new(None);
                            view! {
                                <h2 class="conversation-group" id="pinned-heading">"Pinned"</h2>
                                <ul class="conversation-list pinned" aria-labelledby="pinned-heading"
                                    on:pointerenter=|_| on_demand::preload() on:focusin=|_| on_demand::preload()>
                                    {list.into_iter().map(|c| {
                                        let actions = actions.clone();
                                        view! { <ConversationItem active conversation=c above=None clock pinned=true actions /> }
                                    }).collect_view()}
                                </ul>
                            }
                        })
                    })
                }}
            </Transition>
            // The list stays while it is read again (only its rows change), so it keeps its
            // scroll position.
            <ul class="conversation-list" node_ref=list
                on:scroll=move |_| load_if_near_end()
                on:pointerenter=|_| on_demand::preload() on:focusin=|_| on_demand::preload()>
                <Transition fallback=|| ()>
                    {move || {
                        let actions = actions.clone();
                        let conversations = conversations.clone();
                        Suspend::new(async move {
                            match conversations.await {
                                Ok(list) => {
                                    older.restart(&list);
                                    // Each row knows the one above it, for its group's heading.
                                    let last_of_page = list.last().map(|c| c.updated_at);
                                    let firsts: Vec<Option<i64>> = std::iter::once(None)
                                        .chain(list.iter().map(|c| Some(c.updated_at)))
                                        .collect();
                                    let older_actions = actions.clone();
                                    view! {
                                        {list.into_iter().zip(firsts).map(|(c, above)| {
                                            let actions = actions.clone();
                                            view! { <ConversationItem active conversation=c above clock pinned=false actions /> }
                                        }).collect_view()}
                                        <For
                                            each=move || {
                                                let shown = older.shown.try_get().unwrap_or_default();
                                                let above: Vec<Option<i64>> = std::iter::once(last_of_page)
                                                    .chain(shown.iter().map(|c| Some(c.updated_at)))
                                                    .collect();
                                                shown.into_iter().zip(above).collect::<Vec<_>>()
                                            }
                                            key=|(c, _)| c.id
                                            let:((conversation, above))
                                        >
                                            <ConversationItem active conversation above clock pinned=false actions=older_actions.clone() />
                                        </For>
                                    }.into_any()
                                }
                                Err(e) => view! {
                                    <li class="notice">{format!("Could not list conversations: {e}")}</li>
                                }.into_any(),
                            }
                        })
                    }}
                </Transition>
            </ul>
            <OlderStatus older live />
            <Show when=move || deleted.try_with(Option::is_some).unwrap_or(false)>
                <div class="undo-toast" role="status">
                    <span>{move || deleted.try_with(|d| d.as_ref().map(|d| format!("Deleted “{}”.", d.title))).flatten()}</span>
                    <button type="button" class="link" node_ref=undo_button on:click=undo.clone()>"Undo"</button>
                </div>
            </Show>
            <AccountMenu />
            <div class="page-options">
                <ThemeSwitch />
                <ShortcutsButton />
            </div>
            // What the keyboard does on a conversation's link (its buttons take no Tab stop).
            <p id=ROW_KEYS_ID class="sr-only">"F2 renames, Delete deletes, the right arrow reaches its buttons."</p>
        </nav>
    }
}

/// Under the list while it goes on: "Show older conversations" (what the keyboard and a screen
/// reader reach; scrolling asks by itself), that a page is on its way, or why one failed, with
/// Try again.
#[component]
fn OlderStatus(older: OlderConversations, live: RwSignal<bool>) -> impl IntoView {
    let goes_on = move || {
        live.try_get().unwrap_or(false) && older.next.try_with(Option::is_some).unwrap_or(false)
    };
    let failed = move || older.failed.try_get().flatten();
    let loading = move || older.loading.try_get().unwrap_or(false);
    let ask = move |_| {
        // A press while a page is on its way waits for it (the button keeps the focus).
        if !older.loading.get_untracked() {
            older.failed.set(None);
            on_demand::load_older(older);
        }
    };
    // One element throughout, its parts changed in place (every view put in or taken out costs
    // the first load its own code).
    view! {
        <div class="older-conversations" hidden=move || !goes_on()>
            <Show when=move || failed().is_some()>
                <p class="notice" role="alert">{failed}</p>
            </Show>
            <button type="button" class="link show-more" on:click=ask
                on:pointerenter=|_| on_demand::preload() on:focus=|_| on_demand::preload()
                aria-disabled=move || loading().then_some("true")>
                {move || if failed().is_some() { "Try again" } else { "Show older conversations" }}
            </button>
            <span class="older-loading">{move || if loading() { "Loading…" } else { "" }}</span>
        </div>
    }
}

/// One line of the list: its link, and Rename / Delete beside it; above it, the heading of its
/// group when the line above (changed at `above`) is in another.
#[component]
fn ConversationItem(
    active: RwSignal<Option<Uuid>>,
    conversation: ConversationSummary,
    above: Option<i64>,
    clock: RwSignal<Option<Clock>>,
    /// Listed among the pinned: its button unpins.
    pinned: bool,
    actions: Actions,
) -> impl IntoView {
    let state = actions.state;
    let id = conversation.id;
    let changed_at = conversation.updated_at;
    let heading = move || {
        let clock = clock.try_get().flatten()?;
        let group = clock.group_of(changed_at);
        (above.map(|at| clock.group_of(at)) != Some(group.clone())).then(|| group.heading())
    };
    let title = RwSignal::new(conversation.title);
    let editing = RwSignal::new(false);
    let input = NodeRef::<leptos::html::Input>::new();
    let save = {
        let actions = actions.clone();
        move || {
            // Enter saves, and the blur that follows must not save again.
            let Some(el) = input.get_untracked().filter(|_| editing.get_untracked()) else {
                return;
            };
            editing.set(false);
            let wanted = el.value();
            if wanted.trim().is_empty() || wanted == title.get_untracked() {
                return;
            }
            on_demand::act(Act::Rename(actions.clone(), id, wanted, title));
        }
    };
    let on_keydown = {
        let save = save.clone();
        move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
            "Enter" => {
                ev.prevent_default();
                save();
            }
            "Escape" => {
                // Esc here cancels the rename, and nothing else.
                ev.prevent_default();
                editing.set(false);
            }
            _ => {}
        }
    };
    let is_active = move || active.try_get().flatten() == Some(id);
    // The tab and the page's heading carry the title of the conversation on screen, renamed or
    // not (browser only: an effect).
    let tab_title = use_context::<TabTitle>();
    Effect::new(move || {
        if let Some(tab_title) = tab_title.filter(|_| is_active()) {
            let now = title.get();
            if tab_title.0.get_untracked().as_deref() != Some(now.as_str()) {
                tab_title.0.set(Some(now));
            }
        }
    });
    // One Tab stop per conversation: its link. Rename and Delete are reached from it by keys
    // (and by pointer or touch as before), not by Tab.
    let link = NodeRef::<leptos::html::A>::new();
    let rename_button = NodeRef::<leptos::html::Button>::new();
    let delete_button = NodeRef::<leptos::html::Button>::new();
    let delete = {
        let actions = actions.clone();
        move || on_demand::act(Act::Delete(actions.clone(), id, title.get_untracked()))
    };
    let on_link_keys = {
        let delete = delete.clone();
        move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
            "F2" => {
                ev.prevent_default();
                editing.set(true);
            }
            "Delete" => {
                ev.prevent_default();
                delete();
            }
            "ArrowRight" => {
                ev.prevent_default();
                focus(rename_button.get_untracked());
            }
            _ => {}
        }
    };
    // The row's buttons in order (Rename, Delete, Pin): the arrows go along them, and back to
    // the link from the first.
    let on_button_keys = move |ev: leptos::ev::KeyboardEvent| {
        let Some(button) = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return;
        };
        let sibling = |next: bool| {
            let el = if next {
                button.next_element_sibling()
            } else {
                button.previous_element_sibling()
            };
            el.and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
        };
        match ev.key().as_str() {
            "ArrowRight" => focus(sibling(true)),
            "ArrowLeft" => match sibling(false) {
                Some(before) => focus(Some(before)),
                None => focus(link.get_untracked()),
            },
            "Escape" => focus(link.get_untracked()),
            _ => return,
        }
        ev.prevent_default();
    };
    let toggle_pin = move |_| on_demand::act(Act::Pin(actions.clone(), id, !pinned));
    let pin_label = if pinned { "Unpin" } else { "Pin" };
    Effect::new(move || {
        if editing.get() {
            if let Some(el) = input.get() {
                // The title is put in and selected here, together: selecting before the value
                // arrived left the caret at its end, and typing appended to the old title.
                el.set_value(&title.get_untracked());
                let _ = el.focus();
                el.select();
            }
        }
    });
    view! {
        <li class:active=is_active>
            {move || heading().map(|text| view! { <h2 class="conversation-group">{text}</h2> })}
            <Show
                when=move || editing.try_get().unwrap_or(false)
                fallback=move || view! {
                    <a
                        href=format!("/c/{id}")
                        node_ref=link
                        title=move || title.try_get().unwrap_or_default()
                        aria-current=move || is_active().then_some("page")
                        aria-describedby=ROW_KEYS_ID
                        aria-keyshortcuts="F2 Delete"
                        on:click=move |_| state.menu_open.set(false)
                        on:keydown=on_link_keys.clone()
                    >
                        {move || title.try_get().unwrap_or_default()}
                    </a>
                }
            >
                <input
                    node_ref=input
                    class="rename"
                    aria-label="Conversation title"
                    maxlength=crate::model::MAX_TITLE_CHARS.to_string()
                    prop:value=move || title.try_get_untracked().unwrap_or_default()
                    on:keydown=on_keydown.clone()
                    on:blur={
                        let save = save.clone();
                        move |_| save()
                    }
                />
            </Show>
            <span class="item-actions">
                <button
                    type="button"
                    tabindex="-1"
                    node_ref=rename_button
                    title="Rename"
                    aria-label=move || format!("Rename “{}”", title.try_get().unwrap_or_default())
                    on:click=move |_| editing.set(true)
                    on:keydown=on_button_keys
                >"✎"</button>
                <button
                    type="button"
                    tabindex="-1"
                    node_ref=delete_button
                    title="Delete"
                    aria-label=move || format!("Delete “{}”", title.try_get().unwrap_or_default())
                    on:click={
                        let delete = delete.clone();
                        move |_| delete()
                    }
                    on:keydown=on_button_keys
                >
                    // A drawn bin, not the emoji: many systems have no emoji font.
                    <svg class="icon" viewBox="0 0 16 16" aria-hidden="true">
                        <path d="M2.5 4h11M6 4V2.5h4V4M4 4l.7 9.5h6.6L12 4M6.5 6.5v5M9.5 6.5v5" />
                    </svg>
                </button>
                <button
                    type="button"
                    tabindex="-1"
                    class="pin"
                    class:pinned=pinned
                    title=pin_label
                    aria-label=move || format!("{pin_label} “{}”", title.try_get().unwrap_or_default())
                    on:click=toggle_pin
                    on:keydown=on_button_keys
                >
                    // A drawn pin, as the bin is drawn.
                    <svg class="icon" viewBox="0 0 16 16" aria-hidden="true">
                        <path d="M6 2.5h4M7 2.5v4L4.5 9h7L9 6.5v-4M8 9v4.5" />
                    </svg>
                </button>
            </span>
        </li>
    }
}

fn focus(el: Option<impl AsRef<web_sys::HtmlElement>>) {
    if let Some(el) = el {
        let _ = el.as_ref().focus();
    }
}
