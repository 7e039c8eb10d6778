//! A person's share links: with a conversation, a Share button and that conversation's links
//! (in its Settings); without one, all their links (on the usage page). Each can be copied,
//! opened and revoked.

use leptos::prelude::*;
use leptos::task::spawn_local;
use uuid::Uuid;

use crate::api::shares::{list_shares, revoke_share, share_conversation};
use crate::model::shares::SharedLink;

#[component]
pub fn SharedLinks(
    /// The conversation on screen (a Share button and its links only); `None`: every link.
    #[prop(optional)]
    conversation: Option<Uuid>,
) -> impl IntoView {
    // Loaded in the browser once shown (`None` until then): nothing of it is rendered by the
    // server, so it never holds up a page.
    let links = RwSignal::new(None::<Vec<SharedLink>>);
    let status = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    Effect::new(move || {
        spawn_local(async move {
            match list_shares(conversation).await {
                Ok(found) => {
                    links.try_set(Some(found));
                }
                Err(e) => {
                    status.try_set(Some(format!("Could not load the links: {e}")));
                }
            }
        });
    });
    let share = move |id: Uuid| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        spawn_local(async move {
            match share_conversation(id).await {
                Ok(link) => {
                    links.try_update(|all| all.get_or_insert_with(Vec::new).insert(0, link));
                    status.try_set(Some(
                        "Link made: anyone who has it can read this conversation as it is now."
                            .into(),
                    ));
                }
                Err(e) => {
                    status.try_set(Some(format!("Not shared: {e}")));
                }
            }
            busy.try_set(false);
        });
    };
    let revoke = move |id: Uuid| {
        spawn_local(async move {
            match revoke_share(id).await {
                Ok(()) => {
                    links.try_update(|all| {
                        if let Some(all) = all {
                            all.retain(|l| l.id != id);
                        }
                    });
                    status.try_set(Some("Link revoked: it no longer opens.".into()));
                }
                Err(e) => {
                    status.try_set(Some(format!("Not revoked: {e}")));
                }
            }
        });
    };
    view! {
        <section class="shared-links" aria-labelledby="shared-links-heading">
            <h2 id="shared-links-heading">{if conversation.is_some() { "Share by link" } else { "Shared links" }}</h2>
            {conversation.map(|id| view! {
                <p class="hint">"A link shows the conversation as it reads now, to anyone who has it, without signing in. Later messages stay private unless you share again."</p>
                <button type="button" class="share-button" disabled=move || busy.get() on:click=move |_| share(id)>
                    "Share a snapshot"
                </button>
            })}
            <p class="share-status" role="status">{move || status.get()}</p>
            {move || links.get().map(|all| if all.is_empty() {
                view! { <p class="muted">"No shared links."</p> }.into_any()
            } else {
                view! {
                    <ul class="share-list">
                        {all.into_iter().map(|link| view! { <LinkRow link revoke show_title=conversation.is_none() /> }).collect_view()}
                    </ul>
                }.into_any()
            })}
        </section>
    }
}

#[component]
fn LinkRow(
    link: SharedLink,
    revoke: impl Fn(Uuid) + Copy + Send + Sync + 'static,
    show_title: bool,
) -> impl IntoView {
    let url = format!(
        "{}{}",
        window().location().origin().unwrap_or_default(),
        link.path
    );
    let label = RwSignal::new("Copy");
    let copy = {
        let url = url.clone();
        move |_| {
            let written = wasm_bindgen_futures::JsFuture::from(
                window().navigator().clipboard().write_text(&url),
            );
            spawn_local(async move {
                label.try_set(if written.await.is_ok() {
                    "Copied"
                } else {
                    "Copy failed"
                });
            });
        }
    };
    let id = link.id;
    let made = crate::format::date_of(link.created_at);
    let name = if show_title {
        format!("{} · shared {made}", link.title)
    } else {
        format!("Shared {made}")
    };
    view! {
        <li class="share-row">
            <span class="share-name">{name.clone()}</span>
            <input class="share-url" type="text" readonly aria-label=format!("Link: {name}") value=url.clone() />
            <span class="share-actions">
                <button type="button" on:click=copy>{move || label.get()}</button>
                <a href=url target="_blank" rel="noopener noreferrer">"Open"</a>
                <button type="button" class="revoke" on:click=move |_| revoke(id)>"Revoke"</button>
            </span>
        </li>
    }
}
