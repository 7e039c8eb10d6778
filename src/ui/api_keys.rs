//! A person's API keys for Rill's OpenAI-compatible API (on the usage page): make one, named,
//! with an optional monthly budget and expiry; the key is shown once, right after it is made;
//! each key's month, expiry and last use; Revoke. On the admin page the same list manages a
//! service account's keys.

use leptos::prelude::*;
use leptos::task::spawn_local;
use uuid::Uuid;

use crate::api::api_keys::{create_api_key, list_api_keys, revoke_api_key};
use crate::format::parse_budget;
use crate::format::{date_of, format_cost};
use crate::model::api_keys::{ApiKeyView, NewApiKey};

/// `account`: a service account's id, whose keys an admin manages; none: the person's own.
/// `fresh_key`: where the key just made is kept, if it must outlive this view (the admin page
/// redraws its rows, also while a key is being made).
#[component]
pub fn ApiKeys(
    #[prop(optional)] account: Option<String>,
    #[prop(optional)] fresh_key: Option<ArcRwSignal<Option<(String, String)>>>,
) -> impl IntoView {
    let account = StoredValue::new(account);
    let service = account.with_value(Option::is_some);
    // Loaded in the browser once shown: nothing of it is rendered by the server.
    let keys = RwSignal::new(None::<Vec<ApiKeyView>>);
    let status = RwSignal::new(None::<String>);
    // The key just made, shown until the page is left: it is never shown again.
    let fresh_key = fresh_key.unwrap_or_default();
    let fresh = RwSignal::from(fresh_key.clone());
    let busy = RwSignal::new(false);
    let name = RwSignal::new(String::new());
    let budget = RwSignal::new(String::new());
    let days = RwSignal::new(String::new());
    // The page's own address (known in the browser only: effects do not run on the server).
    let origin = RwSignal::new(String::new());
    Effect::new(move || {
        origin.set(window().location().origin().unwrap_or_default());
    });
    Effect::new(move || {
        spawn_local(async move {
            match list_api_keys(account.get_value()).await {
                Ok(found) => {
                    keys.try_set(Some(found));
                }
                Err(e) => {
                    status.try_set(Some(format!("Could not load the keys: {e}")));
                }
            }
        });
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let monthly_budget_usd = match parse_budget(&budget.get_untracked()) {
            Ok(b) => b,
            Err(e) => {
                status.set(Some(e));
                return;
            }
        };
        let days_text = days.get_untracked();
        let expires_in_days = match days_text.trim() {
            "" => None,
            text => match text.parse::<u32>() {
                Ok(d) => Some(d),
                Err(_) => {
                    status.set(Some(format!("“{text}” is not a number of days")));
                    return;
                }
            },
        };
        let asked = NewApiKey {
            name: name.get_untracked(),
            monthly_budget_usd,
            expires_in_days,
        };
        busy.set(true);
        // Through the reference-counted signal: this view may be gone when the key arrives.
        let fresh_key = fresh_key.clone();
        spawn_local(async move {
            match create_api_key(asked, account.get_value()).await {
                Ok(made) => {
                    fresh_key.set(Some((made.view.name.clone(), made.key)));
                    keys.try_update(|all| all.get_or_insert_with(Vec::new).insert(0, made.view));
                    name.try_set(String::new());
                    budget.try_set(String::new());
                    days.try_set(String::new());
                    status.try_set(Some("Key made: copy it now, it is not shown again.".into()));
                }
                Err(e) => {
                    status.try_set(Some(format!("No key made: {e}")));
                }
            }
            busy.try_set(false);
        });
    };
    let revoke = move |id: Uuid| {
        spawn_local(async move {
            match revoke_api_key(id, account.get_value()).await {
                Ok(()) => {
                    keys.try_update(|all| {
                        if let Some(all) = all {
                            all.retain(|k| k.id != id);
                        }
                    });
                    status.try_set(Some("Key revoked: requests with it are refused.".into()));
                }
                Err(e) => {
                    status.try_set(Some(format!("Not revoked: {e}")));
                }
            }
        });
    };
    let (whose, budget_hint) = if service {
        (
            "Its new key",
            "Monthly budget ($, empty: the account's budget only)",
        )
    } else {
        (
            "Your new key",
            "Monthly budget ($, empty: your own budget only)",
        )
    };
    let spends_against = if service {
        "this account's budget and its groups'"
    } else {
        "your budget"
    };
    view! {
        <section class="api-keys" aria-label="API keys">
            {(!service).then(|| view! { <h2>"API keys"</h2> })}
            <p class="hint">
                "Scripts and tools that speak OpenAI's API can use Rill's models with a key: base URL "
                <code>{move || format!("{}/v1", origin.get())}</code>
                {format!(". What they spend counts against {spends_against}, and against the key's if it has one.")}
            </p>
            <form class="form wide api-key-form" method="post" on:submit=submit>
                <label>"Name" <input name="key-name" autocomplete="off" required maxlength="80" bind:value=name /></label>
                <label>{budget_hint} <input name="key-budget" inputmode="decimal" bind:value=budget /></label>
                <label>"Expires after (days, empty: never)" <input name="key-days" inputmode="numeric" bind:value=days /></label>
                <button type="submit" class="primary" disabled=move || busy.get()>"Make a key"</button>
            </form>
            <p class="share-status" role="status">{move || status.get()}</p>
            {move || fresh.get().map(|(name, key)| view! {
                <div class="fresh-key">
                    <label>{format!("{whose} “{name}” (shown only now)")}
                        <input class="share-url" type="text" readonly value=key.clone() />
                    </label>
                    <CopyButton text=key />
                </div>
            })}
            {move || keys.get().map(|all| if all.is_empty() {
                view! { <p class="muted">"No API keys."</p> }.into_any()
            } else {
                view! {
                    <ul class="share-list api-key-list">
                        {all.into_iter().map(|key| view! { <KeyRow entry=key revoke /> }).collect_view()}
                    </ul>
                }.into_any()
            })}
        </section>
    }
}

#[component]
fn CopyButton(text: String) -> impl IntoView {
    let label = RwSignal::new("Copy");
    let copy = move |_| {
        let written = wasm_bindgen_futures::JsFuture::from(
            window().navigator().clipboard().write_text(&text),
        );
        spawn_local(async move {
            label.try_set(if written.await.is_ok() {
                "Copied"
            } else {
                "Copy failed"
            });
        });
    };
    view! { <button type="button" class="share-button" on:click=copy>{move || label.get()}</button> }
}

#[component]
fn KeyRow(
    entry: ApiKeyView,
    revoke: impl Fn(Uuid) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = entry.id;
    let spent = match entry.monthly_budget_usd {
        Some(b) => format!(
            "{} of {} this month",
            format_cost(entry.month_spent_usd),
            format_cost(b)
        ),
        None => format!("{} this month", format_cost(entry.month_spent_usd)),
    };
    let expiry = entry.expires_at.map_or_else(
        || "never expires".to_owned(),
        |at| format!("expires {}", date_of(at)),
    );
    let used = entry.last_used_at.map_or_else(
        || "never used".to_owned(),
        |at| format!("last used {}", date_of(at)),
    );
    let details = format!("{}… · {spent} · {expiry} · {used}", entry.prefix);
    view! {
        <li class="share-row api-key-row">
            <span class="api-key-name">{entry.name.clone()}</span>
            <span class="share-name">{details}</span>
            <span class="share-actions">
                <button type="button" class="revoke" aria-label=format!("Revoke {}", entry.name) on:click=move |_| revoke(id)>"Revoke"</button>
            </span>
        </li>
    }
}
