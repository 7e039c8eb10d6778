//! The list of conversations beside the chat.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::api::conversations::list_conversations;
use crate::ui::account::AccountMenu;
use crate::ui::chat::ChatState;

#[component]
pub fn Sidebar(state: ChatState) -> impl IntoView {
    let conversations = Resource::new(
        move || state.conversations_changed.get(),
        |_| list_conversations(),
    );
    let navigate = use_navigate();
    let new_chat = move |_| {
        state.start_new();
        // The address may have been set without the router (see ChatState::apply); make both agree.
        navigate("/", Default::default());
        if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ =
                history.replace_state_with_url(&leptos::wasm_bindgen::JsValue::NULL, "", Some("/"));
        }
    };
    view! {
        <nav class="sidebar" aria-label="Conversations">
            <button type="button" class="new-chat" on:click=new_chat>"New chat"</button>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match conversations.await {
                        Ok(list) => view! {
                            <ul class="conversation-list">
                                {list.into_iter().map(|c| {
                                    let id = c.id;
                                    let title = c.title.clone();
                                    view! {
                                        <li class:active=move || state.conversation_id.get() == Some(id)>
                                            <a href=format!("/c/{id}") title=title on:click=move |_| state.menu_open.set(false)>{c.title}</a>
                                        </li>
                                    }
                                }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(e) => view! { <p class="notice">{format!("Could not list conversations: {e}")}</p> }.into_any(),
                    }
                })}
            </Transition>
            <AccountMenu />
        </nav>
    }
}
