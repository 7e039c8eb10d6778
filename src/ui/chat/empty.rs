//! What a new, empty conversation shows: which model will answer, and a few examples to start
//! from. An example fills the composer rather than sending: a reply costs money, and an example is
//! usually a template to adapt before asking.

use leptos::prelude::*;

use super::remembered;
use super::state::ChatState;
use crate::error::ApiError;
use crate::format::model_name;
use crate::model::ModelMenu;

/// (label, the message it fills in).
const EXAMPLES: [(&str, &str); 4] = [
    (
        "Explain a concept",
        "Explain how public-key cryptography works, in plain words and with one everyday example.",
    ),
    (
        "Write some code",
        "Write a Rust function that tells whether a string is a palindrome, ignoring case and punctuation, with tests.",
    ),
    (
        "Weigh a decision",
        "List the strongest arguments for and against a four-day work week, then say which side you find stronger and why.",
    ),
    (
        "Plan something",
        "Plan three days in Lisbon on a modest budget: where to stay, what to see each day, and what to eat.",
    ),
];

#[component]
pub fn EmptyConversation(
    state: ChatState,
    menu: crate::ui::wire::Resource<Result<ModelMenu, ApiError>>,
) -> impl IntoView {
    let fill = move |text: &'static str| {
        remembered::save_draft(state.conversation_id.get_untracked(), text);
        state.draft.set(text.to_owned());
        state.focus_composer();
    };
    view! {
        <div class="empty">
            <h2>"Rill"</h2>
            <p>"Ask anything. Replies stream as they are written; Stop ends one at once."</p>
            <Transition fallback=|| ()>
                {move || {
                    let menu = menu.clone();
                    Suspend::new(async move {
                        let default_model = menu.await.ok().map(|m| m.default_model);
                        let answering = move || {
                            state
                                .model
                                .try_get()
                                .flatten()
                                .or_else(|| default_model.clone())
                                .map(|id| model_name(&id).to_owned())
                        };
                        view! {
                            <p class="empty-model">
                                {move || answering().map(|name| view! { "Answered by " <strong>{name}</strong> " — change it above." })}
                            </p>
                        }
                    })
                }}
            </Transition>
            <ul class="examples" aria-label="Examples to start from">
                {EXAMPLES.iter().map(|&(label, text)| view! {
                    <li>
                        <button type="button" class="example" on:click=move |_| fill(text)>
                            <strong>{label}</strong>
                            <span>{text}</span>
                        </button>
                    </li>
                }).collect_view()}
            </ul>
        </div>
    }
}
