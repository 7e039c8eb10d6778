//! The list of conversations beside the chat: search, open, rename, delete (with Undo).

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_bindgen::JsCast;
use leptos_router::hooks::use_navigate;
use uuid::Uuid;

use crate::api::conversations::{
    delete_conversation, list_conversations, list_pinned, pin_conversation, rename_conversation,
    restore_conversation,
};
use crate::model::{ConversationCursor, ConversationSummary, CONVERSATIONS_PAGE, UNDO_DELETE_SECS};
use crate::ui::account::AccountMenu;
use crate::ui::chat::{ChatState, ShortcutsButton, TabTitle};
use crate::ui::search::SearchBox;

mod groups;

use crate::ui::theme::ThemeSwitch;
use crate::ui::wire;
use groups::{browser_clock, Clock};

/// The description every conversation link points to (`aria-describedby`).
const ROW_KEYS_ID: &str = "conversation-keys";

/// A conversation just deleted, while Undo is offered.
#[derive(Clone, Debug, PartialEq)]
struct Deleted {
    id: Uuid,
    title: String,
    /// It was the one on screen: Undo opens it again.
    was_open: bool,
}

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
    // `Arc`: see `AccountMenu`.
    let conversations = wire::resource(
        move || state.conversations_changed.get(),
        |_| list_conversations(None),
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
    let go = use_go();
    let new_chat = {
        let open = use_new_chat(state);
        move |_| open()
    };
    let undo_button = NodeRef::<leptos::html::Button>::new();
    let on_delete = {
        let go = go.clone();
        move |id: Uuid, title: String| {
            let go = go.clone();
            // Deleted from the list (by its key or its button): the focus, whose element goes
            // with the row, moves to Undo.
            let from_list = document()
                .active_element()
                .and_then(|el| el.closest(".conversation-list").ok().flatten())
                .is_some();
            spawn_local(async move {
                match delete_conversation(id).await {
                    Ok(()) => {
                        let was_open = state.conversation_id.get_untracked() == Some(id);
                        if was_open {
                            state.start_new();
                            go("/");
                        }
                        let gone = Deleted {
                            id,
                            title,
                            was_open,
                        };
                        deleted.set(Some(gone.clone()));
                        if from_list {
                            request_animation_frame(move || focus(undo_button.get_untracked()));
                        }
                        state.conversations_changed.update(|n| *n += 1);
                        set_timeout(
                            move || {
                                if deleted.try_get_untracked().flatten().as_ref() == Some(&gone) {
                                    deleted.try_set(None);
                                }
                            },
                            std::time::Duration::from_secs(UNDO_DELETE_SECS),
                        );
                    }
                    Err(e) => {
                        problem.try_set(Some(format!("Could not delete the conversation: {e}")));
                    }
                }
            });
        }
    };
    let undo = move |_| {
        let Some(gone) = deleted.get_untracked() else {
            return;
        };
        deleted.set(None);
        let go = go.clone();
        spawn_local(async move {
            match restore_conversation(gone.id).await {
                Ok(()) => {
                    state.conversations_changed.update(|n| *n += 1);
                    if gone.was_open {
                        go(&format!("/c/{}", gone.id));
                    }
                }
                Err(e) => {
                    problem.try_set(Some(format!("Could not restore the conversation: {e}")));
                }
            }
        });
    };
    let pinned_on_delete = on_delete.clone();
    view! {
        <nav class="sidebar" aria-label="Conversations">
            <button type="button" class="new-chat" on:click=new_chat>"New chat"</button>
            <SearchBox state />
            <Show when=move || problem.try_with(Option::is_some).unwrap_or(false)>
                <p class="notice" role="alert">{move || problem.try_get().flatten()}</p>
            </Show>
            <Transition fallback=|| ()>
                {move || {
                    let on_delete = pinned_on_delete.clone();
                    let pinned = pinned.clone();
                    Suspend::new(async move {
                        // A failure here shows with the list below, which is read alike.
                        let list = pinned.await.unwrap_or_default();
                        (!list.is_empty()).then(|| {
                            // Pinned rows have no groups: a clock never set.
                            let clock = RwSignal::new(None);
                            view! {
                                <h2 class="conversation-group" id="pinned-heading">"Pinned"</h2>
                                <ul class="conversation-list pinned" aria-labelledby="pinned-heading">
                                    {list.into_iter().map(|c| {
                                        let on_delete = on_delete.clone();
                                        view! { <ConversationItem state active conversation=c above=None clock pinned=true problem on_delete /> }
                                    }).collect_view()}
                                </ul>
                            }
                        })
                    })
                }}
            </Transition>
            <Transition fallback=|| ()>
                {move || {
                    let on_delete = on_delete.clone();
                    let conversations = conversations.clone();
                    Suspend::new(async move {
                        match conversations.await {
                            Ok(list) => {
                                let more = (list.len() >= CONVERSATIONS_PAGE)
                                    .then(|| list.last().map(cursor_of))
                                    .flatten();
                                let older = OlderConversations::new(more);
                                let older_on_delete = on_delete.clone();
                                // Each row knows the one above it, for its group's heading.
                                let last_of_page = list.last().map(|c| c.updated_at);
                                let firsts: Vec<Option<i64>> = std::iter::once(None)
                                    .chain(list.iter().map(|c| Some(c.updated_at)))
                                    .collect();
                                view! {
                                    <ul class="conversation-list">
                                        {list.into_iter().zip(firsts).map(|(c, above)| {
                                            let on_delete = on_delete.clone();
                                            view! { <ConversationItem state active conversation=c above clock pinned=false problem on_delete /> }
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
                                            <ConversationItem state active conversation above clock pinned=false problem on_delete=older_on_delete.clone() />
                                        </For>
                                    </ul>
                                    <Show when=move || older.next.try_with(Option::is_some).unwrap_or(false)>
                                        <button type="button" class="link show-more" on:click=move |_| older.load(problem)
                                            disabled=move || older.loading.try_get().unwrap_or(false)>
                                            "Show older conversations"
                                        </button>
                                    </Show>
                                }.into_any()
                            }
                            Err(e) => view! { <p class="notice">{format!("Could not list conversations: {e}")}</p> }.into_any(),
                        }
                    })
                }}
            </Transition>
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

fn cursor_of(conversation: &ConversationSummary) -> ConversationCursor {
    ConversationCursor {
        updated_at: conversation.updated_at,
        id: conversation.id,
    }
}

/// The conversations after the first page, a page at a time on request.
#[derive(Clone, Copy)]
struct OlderConversations {
    shown: RwSignal<Vec<ConversationSummary>>,
    /// Where the list shown so far ends, while it may go on.
    next: RwSignal<Option<ConversationCursor>>,
    loading: RwSignal<bool>,
}

impl OlderConversations {
    fn new(after: Option<ConversationCursor>) -> Self {
        Self {
            shown: RwSignal::new(Vec::new()),
            next: RwSignal::new(after),
            loading: RwSignal::new(false),
        }
    }

    /// Appends the next page.
    fn load(self, problem: RwSignal<Option<String>>) {
        let Some(cursor) = self.next.get_untracked() else {
            return;
        };
        self.loading.set(true);
        spawn_local(async move {
            match list_conversations(Some(cursor)).await {
                Ok(page) => {
                    let more = (page.len() >= CONVERSATIONS_PAGE)
                        .then(|| page.last().map(cursor_of))
                        .flatten();
                    self.shown.try_update(|shown| shown.extend(page));
                    self.next.try_set(more);
                }
                Err(e) => {
                    problem.try_set(Some(format!("Could not list conversations: {e}")));
                }
            }
            self.loading.try_set(false);
        });
    }
}

/// One line of the list: its link, and Rename / Delete beside it; above it, the heading of its
/// group when the line above (changed at `above`) is in another.
#[component]
fn ConversationItem(
    state: ChatState,
    active: RwSignal<Option<Uuid>>,
    conversation: ConversationSummary,
    above: Option<i64>,
    clock: RwSignal<Option<Clock>>,
    /// Listed among the pinned: its button unpins.
    pinned: bool,
    problem: RwSignal<Option<String>>,
    on_delete: impl Fn(Uuid, String) + Clone + Send + Sync + 'static,
) -> impl IntoView {
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
    let save = move || {
        // Enter saves, and the blur that follows must not save again.
        let Some(el) = input.get_untracked().filter(|_| editing.get_untracked()) else {
            return;
        };
        editing.set(false);
        let wanted = el.value();
        if wanted.trim().is_empty() || wanted == title.get_untracked() {
            return;
        }
        spawn_local(async move {
            match rename_conversation(id, wanted).await {
                Ok(stored) => {
                    title.try_set(stored);
                }
                Err(e) => {
                    problem.try_set(Some(format!("Could not rename the conversation: {e}")));
                }
            }
        });
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
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
        let on_delete = on_delete.clone();
        move || on_delete(id, title.get_untracked())
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
    let toggle_pin = move |_| {
        spawn_local(async move {
            match pin_conversation(id, !pinned).await {
                Ok(()) => state.conversations_changed.update(|n| *n += 1),
                Err(e) => {
                    problem.try_set(Some(format!("Could not pin the conversation: {e}")));
                }
            }
        });
    };
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
                    on:keydown=on_keydown
                    on:blur=move |_| save()
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
                    on:click=move |_| delete()
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
