//! A question's files in the message list (with the messages, in the conversation's WASM file):
//! images as thumbnails that open full size over the page (Esc or a click closes it), other
//! files as chips that download the original.

use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

use super::state::ChatEntry;
use crate::format::byte_size;
use crate::model::attachments::{AttachmentKind, AttachmentView, ATTACHMENTS_PATH};

fn address(file: &AttachmentView) -> String {
    format!("{ATTACHMENTS_PATH}/{}", file.id)
}

#[component]
pub fn MessageFiles(entry: ChatEntry) -> impl IntoView {
    let files = entry.attachments.get_value();
    let viewing = RwSignal::new(None::<AttachmentView>);
    (!files.is_empty()).then(|| {
        let items = files
            .into_iter()
            .map(|file| {
                let url = address(&file);
                let name = file.name.clone();
                if file.kind == AttachmentKind::Image {
                    let label = format!("Open {name}");
                    view! {
                        <li>
                            <button type="button" class="file-thumb-button" aria-label=label
                                on:click=move |_| viewing.set(Some(file.clone()))>
                                <img class="file-thumb" src=url alt=name loading="lazy" />
                            </button>
                        </li>
                    }
                    .into_any()
                } else {
                    let size = byte_size(file.size);
                    let download = name.clone();
                    view! {
                        <li>
                            <a class="file-chip" href=url download=download>
                                <span class="file-name">{name}</span>
                                <span class="file-size">{size}</span>
                            </a>
                        </li>
                    }
                    .into_any()
                }
            })
            .collect_view();
        view! {
            <ul class="message-files" aria-label="Attached files">{items}</ul>
            <Show when=move || viewing.with(Option::is_some)>
                <ImageOverlay viewing />
            </Show>
        }
    })
}

/// An image full size over the page; Esc, the Close button or a click anywhere closes it.
#[component]
fn ImageOverlay(viewing: RwSignal<Option<AttachmentView>>) -> impl IntoView {
    let close_button = NodeRef::<leptos::html::Button>::new();
    // The dialog takes the focus, so Esc reaches it.
    Effect::new(move || {
        if let Some(button) = close_button.get() {
            let _ = button.focus();
        }
    });
    let file = viewing.get_untracked();
    let (url, name) = file
        .as_ref()
        .map(|f| (address(f), f.name.clone()))
        .unwrap_or_default();
    let on_keydown = move |ev: KeyboardEvent| {
        if ev.key() == "Escape" {
            // Esc closes the image, not whatever the page does with it (stopping a reply).
            ev.stop_propagation();
            ev.prevent_default();
            viewing.set(None);
        }
    };
    let label = name.clone();
    view! {
        <div class="image-overlay" role="dialog" aria-modal="true" aria-label=label
            on:keydown=on_keydown on:click=move |_| viewing.set(None)>
            <img src=url alt=name />
            <button node_ref=close_button type="button" class="overlay-close">"Close"</button>
        </div>
    }
}
