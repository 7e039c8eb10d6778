use leptos::prelude::*;
use leptos::task::spawn_local;

use super::connection::Link;
use super::drawer::MENU_BUTTON_ID;
use super::loaded::{self, Loaded};
use super::on_demand::preload_settings;
use super::remembered;
use super::settings::SETTINGS_BUTTON_ID;
use super::state::{mirror, ChatState};
use crate::api::catalog::set_conversation_model;
use crate::error::ApiError;
use crate::format::{fixed, format_cost, model_name, thousands};
use crate::model::{ModelMenu, ModelOption, Price};
use crate::ui::wire;

/// Above the conversation: the model picker and the conversation's running totals.
#[component]
pub fn ChatHeader(
    state: ChatState,
    conversation: loaded::Resource,
    menu: wire::Resource<Result<ModelMenu, ApiError>>,
) -> impl IntoView {
    view! {
        <header class="chat-header">
            <button
                type="button"
                class="menu-button"
                id=MENU_BUTTON_ID
                aria-label="Conversations"
                aria-expanded=move || state.menu_open.get().to_string()
                on:click=move |_| state.menu_open.update(|open| *open = !*open)
            >"☰"</button>
            <Transition fallback=|| ()>
                {move || {
                    let menu = menu.clone();
                    let conversation = conversation.clone();
                    Suspend::new(async move {
                        let shown = conversation.await.ok().flatten();
                        match menu.await {
                            Ok(menu) => view! { <ModelPicker state menu shown /> }.into_any(),
                            Err(e) => view! { <p class="notice">{format!("Could not list models: {e}")}</p> }.into_any(),
                        }
                    })
                }}
            </Transition>
            <Show when=move || state.connection.link.get() == Link::Reconnecting>
                <span class="connection" role="status" title="The connection to the server was lost; trying again">"Reconnecting…"</span>
            </Show>
            <button
                type="button"
                class="settings-button"
                id=SETTINGS_BUTTON_ID
                aria-controls="conversation-settings"
                aria-expanded=move || state.settings_open.get().to_string()
                on:pointerenter=|_| preload_settings()
                on:focus=|_| preload_settings()
                on:click=move |_| state.settings_open.update(|open| *open = !*open)
            >"Settings"</button>
            <Totals state />
        </header>
    }
}

/// `shown`: the conversation the page opened with, whose model the server renders as chosen.
#[component]
fn ModelPicker(state: ChatState, menu: ModelMenu, shown: Option<Loaded>) -> impl IntoView {
    let busy = shown.as_ref().is_some_and(|c| c.glance.streaming);
    // Mirrors: this Suspense must not read what the conversation's writes (see `mirror`).
    let chosen = mirror(move || state.model.get(), shown.map(|c| c.glance.model));
    let busy = mirror(move || state.is_streaming(), busy);
    let default_model = menu.default_model.clone();
    let offered: Vec<String> = menu
        .groups
        .iter()
        .flat_map(|g| g.models.iter().map(|m| m.id.clone()))
        .collect();
    // A conversation whose model this server no longer offers continues on the default, and
    // the person is told, rather than every send failing with "unknown model".
    Effect::new({
        let default_model = default_model.clone();
        move |_| {
            if let Some(gone) = state.model.get().filter(|m| !offered.contains(m)) {
                state.model.set(Some(default_model.clone()));
                state.notice.set(Some(format!(
                    "{gone} is no longer offered by this server; the next reply uses {default_model}."
                )));
            }
        }
    });
    let selected = move || {
        chosen
            .try_get()
            .flatten()
            .unwrap_or_else(|| default_model.clone())
    };
    let on_change = move |ev: leptos::ev::Event| {
        let model = event_target_value(&ev);
        remembered::save_model(&model);
        state.model.set(Some(model.clone()));
        // An existing conversation keeps the choice even if no message follows.
        if let Some(id) = state.conversation_id.get_untracked() {
            spawn_local(async move {
                if let Err(e) = set_conversation_model(id, model).await {
                    state
                        .notice
                        .try_set(Some(format!("Could not switch models: {e}")));
                }
            });
        }
    };
    let as_of = menu.prices_as_of.clone();
    view! {
        <label class="model-picker">
            <span class="sr-only">"Model"</span>
            <select
                name="model"
                aria-label="Model"
                prop:value=selected.clone()
                on:change=on_change
                disabled=move || busy.try_get().unwrap_or(false)
                title=format!("Prices per million tokens, as of {as_of}")
            >
                {menu.groups.into_iter().map(|group| {
                    let options = group.models.into_iter().map(|m| {
                        let text = option_text(&m);
                        let id = m.id.clone();
                        let is_selected = {
                            let selected = selected.clone();
                            move || selected() == id
                        };
                        view! { <option value=m.id selected=is_selected>{text}</option> }
                    }).collect_view();
                    view! { <optgroup label=group.provider>{options}</optgroup> }
                }).collect_view()}
            </select>
        </label>
        {menu.notices.into_iter().map(|n| view! { <p class="model-notice">{n}</p> }).collect_view()}
    }
}

/// `name · note · price`, the name being the one replies show.
fn option_text(m: &ModelOption) -> String {
    let mut text = model_name(&m.id).to_owned();
    if let Some(note) = &m.note {
        text.push_str(" · ");
        text.push_str(note);
    }
    text.push_str(" · ");
    match &m.price {
        Some(p) => text.push_str(&price_label(p)),
        None => text.push_str("price unknown"),
    }
    text
}

fn price_label(p: &Price) -> String {
    if p.input == 0.0 && p.output == 0.0 {
        "free".into()
    } else {
        format!(
            "${} in / ${} out per M",
            trim_number(p.input),
            trim_number(p.output)
        )
    }
}

fn trim_number(n: f64) -> String {
    let s = fixed(n, 3);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[component]
fn Totals(state: ChatState) -> impl IntoView {
    view! {
        {move || {
            let (input, output, cost, estimated) = state.totals();
            (input + output > 0).then(|| {
                let approx = if estimated { "≈ " } else { "" };
                let cost = cost.map(|c| format!(" · {}", format_cost(c))).unwrap_or_default();
                let figures = format!("{approx}{} in · {} out{cost}", thousands(input), thousands(output));
                let note = if estimated {
                    "Tokens and cost of this conversation so far. ≈: some are estimates, for replies that were stopped or failed."
                } else {
                    "Tokens and cost of this conversation so far."
                };
                // What the figures are, on request: a disclosure reachable by keyboard and touch.
                view! {
                    <details class="totals-details">
                        <summary class="totals" aria-label=format!("Conversation totals: {figures}")>{figures.clone()}</summary>
                        <p class="totals-note">{note}</p>
                    </details>
                }
            })
        }}
    }
}
