//! Attaching files to the message being written, in a WASM file of its own (`on_demand`):
//! each file uploads at once (`XMLHttpRequest`, for its progress) and shows as a chip with its
//! name, its size, its progress or why it was refused, a thumbnail once an image is in, and a
//! button that takes it off the message. Each file is measured against the server's limits
//! (`file_limits`, shown above the chips) before it is sent: one beyond them is refused
//! in words without uploading a byte.

use leptos::prelude::*;
use leptos::wasm_bindgen::closure::Closure;
use leptos::wasm_bindgen::JsCast;

use super::files::{PendingFile, Upload};
use super::state::ChatState;
use crate::api::attachments::file_limits;
use crate::format::byte_size;
use crate::model::attachments::{
    AttachmentKind, AttachmentLimits, AttachmentView, ATTACHMENTS_PATH, MAX_FILES_PER_MESSAGE,
};
use crate::ui::upload::refusal;

thread_local! {
    static NEXT_KEY: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
    /// The limits last read from the server, shown above the chips. An `Arc` signal belongs to
    /// no component, so it lives as long as the page.
    static LIMITS: ArcRwSignal<Option<AttachmentLimits>> = ArcRwSignal::new(None);
}

fn next_key() -> u64 {
    NEXT_KEY.with(|k| {
        let key = k.get();
        k.set(key.wrapping_add(1));
        key
    })
}

/// Checks each of `files` against the server's limits and starts uploading those within them
/// (at most as many as a message carries); one beyond a limit is shown refused, in words, and
/// never sent. The chips appear at once, in the order the files were added, whatever order the
/// limits for two quick additions (a paste, then a pick) come back in.
pub fn add_files(state: ChatState, files: Vec<web_sys::File>) {
    let mut added = Vec::new();
    for file in files {
        let held = state.files.try_with_untracked(Vec::len).unwrap_or(0);
        if held >= MAX_FILES_PER_MESSAGE {
            state.notice.try_set(Some(format!(
                "A message can carry at most {MAX_FILES_PER_MESSAGE} files."
            )));
            break;
        }
        let pending = PendingFile {
            key: next_key(),
            name: StoredValue::new(file.name()),
            size: file.size(),
            upload: RwSignal::new(Upload::Sending(0)),
        };
        state.files.try_update(|f| f.push(pending));
        added.push((file, pending));
    }
    leptos::task::spawn_local(async move {
        // Asked each time (another tab may have uploaded since); without an answer the
        // server's own checks still refuse in words.
        let limits = file_limits().await.ok();
        if limits.is_some() {
            LIMITS.with(|shown| shown.set(limits));
        }
        let mut uploading: u64 = 0;
        for (file, pending) in added {
            // The bytes of the files before this one; `None`: taken off the message meanwhile.
            let message_bytes = state.files.try_with_untracked(|f| {
                let position = f.iter().position(|p| p.key == pending.key)?;
                Some(
                    f.iter()
                        .take(position)
                        .filter_map(PendingFile::counted_bytes)
                        .sum::<u64>(),
                )
            });
            let Some(message_bytes) = message_bytes.flatten() else {
                continue;
            };
            let size = file.size().max(0.0) as u64;
            if let Some(words) = limits.and_then(|l| l.refusal(size, message_bytes, uploading)) {
                pending
                    .upload
                    .set(Upload::Failed(format!("Not sent: {words}")));
                continue;
            }
            uploading = uploading.saturating_add(size);
            if let Err(words) = send(file, pending.upload) {
                pending.upload.set(Upload::Failed(words));
            }
        }
    });
}

/// Sends one file; `upload` follows it to its end.
fn send(file: web_sys::File, upload: RwSignal<Upload>) -> Result<(), String> {
    let fail = |_| "the browser could not send the file".to_owned();
    let request = web_sys::XmlHttpRequest::new().map_err(fail)?;
    let name = String::from(web_sys::js_sys::encode_uri_component(&file.name()));
    request
        .open("POST", &format!("{ATTACHMENTS_PATH}?name={name}"))
        .map_err(fail)?;
    request
        .set_request_header("content-type", "application/octet-stream")
        .map_err(fail)?;
    let on_progress =
        Closure::<dyn Fn(web_sys::ProgressEvent)>::new(move |event: web_sys::ProgressEvent| {
            if event.total() > 0.0 {
                let percent = (event.loaded() / event.total() * 100.0).clamp(0.0, 100.0);
                // Whole percent from 0 to 100: the cast cannot overflow.
                upload.try_set(Upload::Sending(percent as u8));
            }
        });
    request
        .upload()
        .map_err(fail)?
        .set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    let on_load = {
        let request = request.clone();
        Closure::<dyn Fn()>::new(move || {
            let text = request.response_text().ok().flatten().unwrap_or_default();
            let status = request.status().unwrap_or(0);
            let answer = match serde_json::from_str::<AttachmentView>(&text) {
                Ok(view) if status == 200 => Upload::Ready(view),
                _ => Upload::Failed(refusal(status, &text)),
            };
            upload.try_set(answer);
        })
    };
    request.set_onload(Some(on_load.as_ref().unchecked_ref()));
    let on_error = Closure::<dyn Fn()>::new(move || {
        upload.try_set(Upload::Failed(
            "the connection to the server was lost".into(),
        ));
    });
    request.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    request.send_with_opt_blob(Some(&file)).map_err(fail)?;
    // The request and the browser own the callbacks from here until it ends.
    on_progress.forget();
    on_load.forget();
    on_error.forget();
    Ok(())
}

/// The composer's files, as chips.
#[component]
pub fn FileTray(state: ChatState) -> impl IntoView {
    let limits = LIMITS.with(ArcRwSignal::clone);
    view! {
        {move || limits.get().map(|l| view! { <p class="file-limits">{l.summary()}</p> })}
        <ul class="file-tray" aria-label="Attached files">
            <For each=move || state.files.get() key=|f| f.key let:file>
                <FileChip file state />
            </For>
        </ul>
    }
}

#[component]
fn FileChip(file: PendingFile, state: ChatState) -> impl IntoView {
    let name = file.name.get_value();
    let size = byte_size(file.size.max(0.0) as u64);
    let remove = move |_| state.files.update(|f| f.retain(|p| p.key != file.key));
    let label = format!("Remove {name}");
    view! {
        <li class="file-chip" class:failed=move || matches!(file.upload.get(), Upload::Failed(_))>
            {move || match file.upload.get() {
                Upload::Ready(view) if view.kind == AttachmentKind::Image => view! {
                    <img class="file-thumb" src=format!("{ATTACHMENTS_PATH}/{}", view.id) alt="" />
                }.into_any(),
                _ => ().into_any(),
            }}
            <span class="file-name">{name.clone()}</span>
            <span class="file-size">{size}</span>
            {move || match file.upload.get() {
                Upload::Sending(percent) => view! {
                    <progress max="100" value=percent aria-label=format!("Uploading {}", file.name.get_value())></progress>
                }.into_any(),
                Upload::Failed(words) => view! { <span class="file-error" role="alert">{words}</span> }.into_any(),
                Upload::Ready(view) => match view.note {
                    Some(note) => view! { <span class="file-note">{note}</span> }.into_any(),
                    None => ().into_any(),
                },
            }}
            <button type="button" class="file-remove" aria-label=label title="Remove" on:click=remove>"×"</button>
        </li>
    }
}
