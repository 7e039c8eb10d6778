//! Parts of the chat the first screen never shows, each in its own WASM file (`cargo leptos
//! --split`), fetched when first used: the conversation's settings, a reply's thinking read open,
//! the keyboard shortcuts' list, and a conversation's messages with the connection that streams
//! replies, what reads a conversation, loads its earlier and later windows and stops a reply
//! (fetched with a new chat's first message, or before a conversation's page hydrates).
//! Editing a question comes
//! with the messages: it is only reached from them, so it is in their file and in place at once.
//! The first load is smaller by their code and by what only they use (docs/decisions.md,
//! "Smaller first load").
//!
//! A part's file is fetched as soon as a person shows they are about to use it (the pointer over
//! its button, or the focus on it), so it is usually in place before the click: the part then
//! shows at once, as it did when it was in the main module. A failed fetch says so in words and
//! is tried again the next time the part is opened (it never stops the page).
//!
//! Built without `--split` (or on the server, which never renders these parts for a first load)
//! the functions are called directly.

use std::future::Future;
use std::pin::Pin;

use leptos::prelude::*;
use leptos::wasm_split::{wasm_split, SplitLoaderError};
use uuid::Uuid;

use super::attach::{add_files, FileTray};
use super::connection::Connection;
use super::loaded::{Answer, Loaded};
use super::page::MessageItems;
use super::settings::SettingsPanel;
use super::shortcuts::ShortcutsDialog;
use super::state::{ChatEntry, ChatState};
use super::thinking_text::ThinkingText;
use crate::api::conversations::get_conversation;
use crate::api::search::open_at;
use crate::error::ApiError;

/// A part's WASM file could not be fetched (the network dropped, or a deploy replaced it).
#[derive(Debug, Clone, Copy)]
pub struct NotLoaded;

impl From<SplitLoaderError> for NotLoaded {
    fn from(_: SplitLoaderError) -> Self {
        NotLoaded
    }
}

/// Shows a part once its file is in: nothing before that (never a placeholder that the part then
/// replaces), and a sentence if it cannot be fetched.
pub fn on_demand<F>(part: impl Fn() -> F + Send + Sync + 'static) -> impl IntoView
where
    F: Future<Output = Result<AnyView, NotLoaded>> + Send + 'static,
{
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let loading = part();
                Suspend::new(async move {
                    loading.await.unwrap_or_else(|NotLoaded| {
                        view! {
                            <p class="notice" role="alert">
                                "This part of the page could not be loaded. Check the connection and try again."
                            </p>
                        }
                        .into_any()
                    })
                })
            }}
        </Suspense>
    }
}

/// Starts fetching a part's file without showing it (the pointer is over its button).
fn preload<F>(load: fn() -> F)
where
    F: Future<Output = Result<(), SplitLoaderError>> + 'static,
{
    leptos::task::spawn_local(async move {
        // A failure here is reported when the part is opened (the load is tried again then).
        let _ = load().await;
    });
}

#[wasm_split(
    chat_settings,
    wasm_split_path = ::leptos::wasm_split,
    fallible,
    preload(preload_settings_file)
)]
pub fn settings_panel(state: ChatState) -> Result<AnyView, NotLoaded> {
    Ok(view! { <SettingsPanel state /> }.into_any())
}

pub fn preload_settings() {
    preload(preload_settings_file);
}

#[wasm_split(
    chat_thinking,
    wasm_split_path = ::leptos::wasm_split,
    fallible,
    preload(preload_thinking_file)
)]
pub fn thinking_text(entry: ChatEntry) -> Result<AnyView, NotLoaded> {
    Ok(view! { <ThinkingText entry /> }.into_any())
}

pub fn preload_thinking() {
    preload(preload_thinking_file);
}

#[wasm_split(
    chat_shortcuts,
    wasm_split_path = ::leptos::wasm_split,
    fallible,
    preload(preload_shortcuts_file)
)]
pub fn shortcuts_dialog(open: RwSignal<bool>) -> Result<AnyView, NotLoaded> {
    Ok(view! { <ShortcutsDialog open /> }.into_any())
}

pub fn preload_shortcuts() {
    preload(preload_shortcuts_file);
}

// Attaching files: their uploads and the composer's chips, fetched with the first file picked,
// dropped or pasted.

#[wasm_split(chat_attach, wasm_split_path = ::leptos::wasm_split, fallible)]
fn start_uploads(state: ChatState, files: Vec<web_sys::File>) -> Result<(), NotLoaded> {
    add_files(state, files);
    Ok(())
}

/// Uploads `files` to go with the message being written.
pub fn attach_files(state: ChatState, files: Vec<web_sys::File>) {
    if files.is_empty() {
        return;
    }
    leptos::task::spawn_local(async move {
        if start_uploads(state, files).await.is_err() {
            state.notice.try_set(Some(
                "Could not attach the files: this part of the page could not be loaded. Check the connection and try again."
                    .into(),
            ));
        }
    });
}

#[wasm_split(chat_attach, wasm_split_path = ::leptos::wasm_split, fallible)]
pub fn file_tray(state: ChatState) -> Result<AnyView, NotLoaded> {
    Ok(view! { <FileTray state /> }.into_any())
}

// A conversation's file: its messages and the connection that streams replies into them, needed
// together (a new chat fetches it with its first message; a conversation's page before it
// hydrates, see `preload_for_page`).

/// The conversation's file in the split manifest: the module named in `wasm_split` below.
const CONVERSATION_FILE: &str = "chat_conversation";

#[wasm_split(
    chat_conversation,
    wasm_split_path = ::leptos::wasm_split,
    fallible,
    preload(preload_conversation_file)
)]
pub fn message_items(state: ChatState) -> Result<AnyView, NotLoaded> {
    Ok(view! { <MessageItems state /> }.into_any())
}

/// On the server, while a conversation's page renders: a preload link for its file in the
/// page's head (it must be named before the head is sent, so not from inside the list's
/// Suspense). In the browser, nothing.
pub fn name_conversation_file() {
    leptos::prefetch_lazy_fn_on_server(CONVERSATION_FILE);
}

/// Fetches the conversation's file (a failure shows where the messages go, and is tried again).
/// Each function split out has a loader of its own, which answers at once only after it has
/// run: both that the page's Suspense calls (`Act::Show`, then the list) are made ready here,
/// so hydrating them never waits (a wait would hydrate the list as nothing, and the server's
/// messages would stay beside the browser's).
pub async fn preload_messages() {
    let _ = preload_conversation_file().await;
    let _ = preload_acts().await;
}

/// Before a conversation's page hydrates: its messages were rendered by the server, and hydrating
/// them needs their code in place (a part still loading would not match the page's HTML).
pub async fn preload_for_page(path: &str) {
    if path.starts_with("/c/") {
        preload_messages().await;
    }
}

/// The connection's loop (`Connection::connect`): requests, the lines of their streams, and
/// what the page makes of them (`Listener for ChatState`).
#[wasm_split(chat_conversation, wasm_split_path = ::leptos::wasm_split, fallible)]
pub fn follow(
    connection: Connection,
    page: ChatState,
) -> Result<Pin<Box<dyn Future<Output = ()>>>, NotLoaded> {
    Ok(Box::pin(connection.run(page)))
}

/// What the conversation's file is asked to do with the conversation on screen (or, for `Show`,
/// the one loaded for the page). One way into the file for all of them: each function split out
/// brings its own loader into the main module.
pub enum Act {
    /// Read and show a conversation the page loaded (`ChatState::show_loaded`).
    Show(Loaded),
    /// Its earlier messages, above those shown: only asked for in a conversation on screen,
    /// whose file is in by then.
    Older,
    /// The next newer window the page let go of.
    Newer,
    /// The newest messages again (the page let go of them), and then follow them.
    Latest,
    /// Send this text as a new turn once the newest messages are back.
    SendAtLatest(String),
    /// Stop the reply being written: only a reply streaming through this file's connection can
    /// be stopped.
    Stop,
}

impl Act {
    /// What could not be done when the file could not be fetched.
    fn what(&self) -> &'static str {
        match self {
            Act::Show(_) => "show the conversation",
            Act::Older => "load earlier messages",
            Act::Newer => "load later messages",
            Act::Latest => "show the latest messages",
            Act::SendAtLatest(_) => "send the message",
            Act::Stop => "stop the reply",
        }
    }
}

#[wasm_split(
    chat_conversation,
    wasm_split_path = ::leptos::wasm_split,
    fallible,
    preload(preload_acts)
)]
fn in_conversation_file(state: ChatState, act: Act) -> Result<(), NotLoaded> {
    match act {
        Act::Show(loaded) => state.show_loaded(loaded),
        Act::Older => state.show_older(),
        Act::Newer => state.show_newer(),
        Act::Latest => state.reload(),
        Act::SendAtLatest(text) => state.send_at_latest(text),
        Act::Stop => state.stop(),
    }
    Ok(())
}

/// Does `act` in the conversation's file; if the file cannot be fetched, says so (and a message
/// to send goes back into the composer).
pub fn act(state: ChatState, act: Act) {
    leptos::task::spawn_local(run(state, act));
}

async fn run(state: ChatState, act: Act) {
    let what = act.what();
    let unsent = match &act {
        Act::SendAtLatest(text) => Some(text.clone()),
        _ => None,
    };
    if in_conversation_file(state, act).await.is_err() {
        if let Some(text) = unsent {
            if state.draft.try_with_untracked(String::is_empty) == Some(true) {
                state.draft.try_set(text);
            }
        }
        state.notice.try_set(Some(format!(
            "Could not {what}: this part of the page could not be loaded. Check the connection and try again."
        )));
    }
}

/// Shows what the page's resource loaded (in the page's Suspense, so the list waits for it): an
/// error or a new chat at once, a conversation through its file.
pub async fn show(state: ChatState, loaded: Answer, found: bool) {
    if let Some(conversation) = state.show(loaded, found) {
        run(state, Act::Show(conversation)).await;
    }
}

/// A conversation for the page's resource: asked for in the browser (a link followed), it is
/// read in the conversation's file; on the server this is a plain call.
pub async fn fetch_conversation(id: Uuid, at: Option<Uuid>) -> Answer {
    match fetch(id, at).await {
        Ok(fetching) => fetching.await.map(Some),
        Err(NotLoaded) => Err(ApiError::Network("the conversation's file".into())),
    }
}

#[wasm_split(chat_conversation, wasm_split_path = ::leptos::wasm_split, fallible)]
fn fetch(id: Uuid, at: Option<Uuid>) -> Result<Fetching, NotLoaded> {
    Ok(Box::pin(async move {
        let view = match at {
            None => get_conversation(id, None).await,
            Some(message) => open_at(id, message).await,
        };
        view.map(Loaded::new)
    }))
}

type Fetching = Pin<Box<dyn Future<Output = Result<Loaded, ApiError>> + Send>>;
