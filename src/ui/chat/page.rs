use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use uuid::Uuid;

use super::announcer::{Announcements, Announcer};
use super::composer::Composer;
use super::drawer::{self, Swipe};
use super::empty::EmptyConversation;
use super::header::ChatHeader;
use super::loaded;
use super::message::Message;
use super::on_demand::{
    self, act, fetch_conversation, message_items, name_conversation_file, on_demand,
    settings_panel, Act,
};
use super::shortcuts::{provide_help, Shortcuts};
use super::state::{mirror, ChatState};
use crate::api::catalog::list_models;
use crate::error::ApiError;
use crate::model::ModelMenu;
use crate::ui::conversations::{use_new_chat, Sidebar};
use crate::ui::search::land_on;
use crate::ui::wire;

/// The conversation's title, for the tab and the page's heading; `None` for a new chat. Set in
/// the browser by the sidebar's entry of the conversation on screen (which follows renames).
#[derive(Clone, Copy)]
pub struct TabTitle(pub RwSignal<Option<String>>);

/// The target of the skip link: the conversation, past the sidebar.
const CONVERSATION_ID: &str = "conversation";

/// `/` (a new conversation) and `/c/:id`. The conversation is loaded and rendered on the server;
/// after hydration the page streams new turns into the same list.
#[component]
pub fn ChatPage() -> impl IntoView {
    let state = ChatState::new();
    provide_context(state);
    let announcements = Announcements::provide();
    provide_help();
    let tab_title = TabTitle(RwSignal::new(None));
    provide_context(tab_title);
    // The connection loop and its callbacks use the page's signals: end it with the page (a
    // link to another route while a reply streams), or it would touch them after they are gone.
    on_cleanup(move || state.connection.disconnect());
    let params = use_params_map();
    let route_id = Memo::new(move |_| params.read().get("id"));
    // `?at=<message>`: opened from a search result, at that message (`ui/search.rs`).
    let query = use_query_map();
    let at = Memo::new(move |_| {
        query
            .read()
            .get("at")
            .and_then(|m| Uuid::parse_str(&m).ok())
    });
    let shown_id = route_id
        .get_untracked()
        .and_then(|id| Uuid::parse_str(&id).ok());
    let active = mirror(move || state.conversation_id.get(), shown_id);
    // On the server: a conversation's page names its messages' file in a preload link, so the
    // browser fetches it beside the module (`on_demand.rs`). Nothing in the browser.
    if shown_id.is_some() {
        name_conversation_file();
    }
    // `Arc`: see `AccountMenu`.
    // Read in the conversation's file (`loaded.rs`), both what the server sends with the page
    // and what the browser asks for.
    let conversation = loaded::resource(
        move || (route_id.get(), at.get()),
        |(id, at)| async move {
            match id.map(|id| Uuid::parse_str(&id)) {
                None => Ok(None),
                Some(Ok(id)) => fetch_conversation(id, at).await,
                Some(Err(_)) => Err(ApiError::NotFound("no such conversation".into())),
            }
        },
    );
    // The message a search result opened the conversation at: scrolled to and highlighted once
    // it is on the page (an effect: in the browser only).
    let landed = RwSignal::new(None::<Uuid>);
    Effect::new(move || {
        if let Some(message) = landed.get() {
            land_on(message);
        }
    });
    // The model picker's contents, also read by an empty conversation (which model answers).
    // `Arc`: see `AccountMenu`.
    let menu = wire::resource(|| (), |_| list_models());
    let swipe = Swipe::new();
    drawer::follow_focus(state);
    // Effects run only in the browser: follow the conversation shown (turns from other tabs, a
    // reply still being written), and come back quickly after a lost network or a hidden tab.
    Effect::new(move || {
        if state.needs_attach.get() {
            state.needs_attach.set(false);
            state.attach();
        }
    });
    Effect::new(move || {
        let online = window_event_listener(leptos::ev::online, move |_| state.on_back());
        let visibility = window_event_listener(leptos::ev::visibilitychange, move |_| {
            let hidden = document().hidden();
            if hidden {
                state.connection.on_hidden()
            } else {
                state.on_back()
            }
        });
        // Esc closes the phone's drawer when it is open; otherwise it stops the reply being
        // written, wherever the focus is.
        let escape = window_event_listener(leptos::ev::keydown, move |ev| {
            // Shift+Esc is a shortcut of its own (the message box).
            if ev.key() != "Escape" || ev.shift_key() || ev.default_prevented() {
                return;
            }
            if state.menu_open.get_untracked() {
                drawer::close(state);
            } else if state.is_streaming() {
                act(state, Act::Stop);
            }
        });
        let released = window_event_listener(leptos::ev::pointerup, move |_| {
            state.follow.set_holding(false)
        });
        let cancelled = window_event_listener(leptos::ev::pointercancel, move |_| {
            state.follow.set_holding(false)
        });
        on_cleanup(move || {
            online.remove();
            visibility.remove();
            escape.remove();
            released.remove();
            cancelled.remove();
        });
    });

    // A new chat has no title, whatever the sidebar said last.
    Effect::new(move || {
        if active.get().is_none() {
            tab_title.0.set(None);
        }
    });
    // A title the server names while the page is open (a model's, after the first reply).
    Effect::new(move || {
        if let Some(title) = state.title.get().filter(|t| !t.is_empty()) {
            if tab_title.0.get_untracked().as_deref() != Some(title.as_str()) {
                tab_title.0.set(Some(title));
            }
        }
    });
    let heading = move || {
        tab_title
            .0
            .try_get()
            .flatten()
            .unwrap_or_else(|| "New chat".to_owned())
    };
    // The skip link moves the focus itself: the router would otherwise take the click as a
    // navigation (before the page is live, the browser follows the link as usual).
    let skip = move |ev: leptos::ev::MouseEvent| {
        ev.prevent_default();
        if let Some(main) = document().get_element_by_id(CONVERSATION_ID) {
            if let Ok(main) = main.dyn_into::<web_sys::HtmlElement>() {
                let _ = main.focus();
            }
        }
    };
    view! {
        <Title text=move || tab_title.0.try_get().flatten().unwrap_or_else(|| "Rill".to_owned()) />
        <a class="skip-link" href=format!("#{CONVERSATION_ID}") on:click=skip>"Skip to the conversation"</a>
        <Announcer state announcements />
        <Shortcuts state announcements new_chat=use_new_chat(state) />
        <div
            class="layout"
            class:menu-open=move || state.menu_open.get()
            on:touchstart=move |ev| swipe.on_start(&ev)
            on:touchend=move |ev| swipe.on_end(&ev, state)
        >
            <Sidebar state active />
            <Show when=move || state.menu_open.get()>
                <div class="drawer-backdrop" on:click=move |_| drawer::close(state)></div>
            </Show>
            <main class="chat" id=CONVERSATION_ID tabindex="-1" aria-labelledby="conversation-title">
                <h1 class="sr-only" id="conversation-title">{heading}</h1>
                <ChatHeader state conversation=conversation.clone() menu=menu.clone() />
                <Show when=move || state.settings_open.get()>
                    {on_demand(move || settings_panel(state))}
                </Show>
                <div
                    class="messages"
                    node_ref=state.follow.scroller
                    on:scroll=move |_| {
                        state.follow.on_scroll();
                        // Earlier messages come before the reader reaches the top.
                        if state.follow.near_top() && has_older(state) {
                            act(state, Act::Older);
                        }
                        // And later ones the page let go of, before the reader reaches the end.
                        if state.follow.near_bottom() && has_newer(state) {
                            act(state, Act::Newer);
                        }
                    }
                    on:pointerdown=move |_| state.follow.set_holding(true)
                >
                    <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                        {move || {
                            let conversation = conversation.clone();
                            let menu = menu.clone();
                            Suspend::new(async move {
                                let loaded = conversation.await;
                                // The stored title, also for a conversation the sidebar does not
                                // list (older than its pages); its entry follows renames.
                                if let Ok(Some(shown)) = &loaded {
                                    let title = Some(shown.glance.title.clone())
                                        .filter(|t| !t.is_empty());
                                    tab_title.0.try_set(title);
                                }
                                let landing = at.get_untracked();
                                // Through the conversation's file, which the messages need too:
                                // the list never shows empty before their code is in. A found
                                // message is shown again even if its conversation is on screen
                                // (the version or the messages listed may differ).
                                on_demand::show(state, loaded, landing.is_some()).await;
                                landed.try_set(landing);
                                view! { <MessageList state menu /> }
                            })
                        }}
                    </Transition>
                </div>
                // Just above the composer, however tall a draft makes it.
                <div class="jump-anchor">
                    <Show when=move || state.follow.detached.get()>
                        <button type="button" class="jump-to-latest" on:click=move |_| state.jump_to_latest()>
                            "↓ Jump to latest"
                        </button>
                    </Show>
                </div>
                <Composer state />
            </main>
        </div>
    }
}

/// Earlier messages exist (asking the file for them would do nothing otherwise).
fn has_older(state: ChatState) -> bool {
    state.older_before.try_with_untracked(Option::is_some) == Some(true)
}

/// Later windows were let go of.
fn has_newer(state: ChatState) -> bool {
    state.newer.try_with_untracked(Vec::is_empty) == Some(false)
}

#[component]
fn MessageList(
    state: ChatState,
    menu: wire::Resource<Result<ModelMenu, ApiError>>,
) -> impl IntoView {
    view! {
        <Show when=move || state.notice.try_with(Option::is_some).unwrap_or(false)>
            <p class="notice" role="alert">{move || state.notice.try_get().flatten()}</p>
        </Show>
        <Show when=move || {
            state.messages.try_with(Vec::is_empty).unwrap_or(false)
                && state.notice.try_with(Option::is_none).unwrap_or(false)
        }>
            <EmptyConversation state menu=menu.clone() />
        </Show>
        <Show when=move || state.older_before.try_with(Option::is_some).unwrap_or(false)>
            <div class="older">
                <button
                    type="button"
                    class="link"
                    on:click=move |_| act(state, Act::Older)
                    disabled=move || state.loading_older.try_get().unwrap_or(false)
                >
                    "Show earlier messages"
                </button>
            </div>
        </Show>
        <ol class="message-list" aria-label="Messages">
            // The messages' code is fetched with the first message (`on_demand.rs`); a new chat's
            // first screen has none.
            <Show when=move || state.messages.try_with(|m| !m.is_empty()).unwrap_or(false)>
                {on_demand(move || message_items(state))}
            </Show>
        </ol>
        <Show when=move || state.newer.try_with(|newer| !newer.is_empty()).unwrap_or(false)>
            <div class="newer">
                <button
                    type="button"
                    class="link"
                    on:click=move |_| act(state, Act::Newer)
                    disabled=move || state.loading_newer.try_get().unwrap_or(false)
                >
                    "Show later messages"
                </button>
            </div>
        </Show>
    }
}

/// The conversation's messages, in order (`on_demand::message_items`).
#[component]
pub(super) fn MessageItems(state: ChatState) -> impl IntoView {
    view! {
        <For each=move || state.messages.try_get().unwrap_or_default() key=|entry| entry.key let:entry>
            <Message entry state />
        </For>
    }
}
