//! The page's client state and the one loop that applies a turn's events to it.

use futures::future::{AbortHandle, Abortable};
use futures::StreamExt;
use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;
use server_fn::codec::ByteStream;
use uuid::Uuid;

use crate::api::turns::{send_message, stop_turn, turn_events};
use crate::error::ApiError;
use crate::model::{ndjson, ConversationView, MessageStatus, MessageView, Role, TurnEvent, Usage};

/// How close to the bottom (px) the reader must be for new text to scroll the list.
const FOLLOW_THRESHOLD_PX: i32 = 100;

#[derive(Clone, Copy)]
pub struct ChatEntry {
    pub key: Uuid,
    pub role: Role,
    pub content: RwSignal<String>,
    pub status: RwSignal<MessageStatus>,
    pub error: RwSignal<Option<String>>,
    pub usage: RwSignal<Option<UsageInfo>>,
    /// While waiting for a busy model: how many replies are ahead.
    pub queued: RwSignal<Option<u32>>,
    /// The `provider/model` that wrote this reply.
    pub model: RwSignal<Option<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UsageInfo {
    pub usage: Usage,
    pub estimated: bool,
    pub cost_usd: Option<f64>,
}

impl ChatEntry {
    fn from_view(m: MessageView) -> Self {
        Self {
            key: m.id,
            role: m.role,
            content: RwSignal::new(m.content),
            status: RwSignal::new(m.status),
            error: RwSignal::new(m.error),
            usage: RwSignal::new(m.usage.map(|usage| UsageInfo {
                usage,
                estimated: m.usage_estimated,
                cost_usd: m.cost_usd,
            })),
            queued: RwSignal::new(None),
            model: RwSignal::new(m.model),
        }
    }

    fn new(role: Role, content: String, status: MessageStatus) -> Self {
        Self {
            key: Uuid::from_u128(next_local_key()),
            role,
            content: RwSignal::new(content),
            status: RwSignal::new(status),
            error: RwSignal::new(None),
            usage: RwSignal::new(None),
            queued: RwSignal::new(None),
            model: RwSignal::new(None),
        }
    }

    fn fail(&self, message: String) {
        self.status.set(MessageStatus::Failed);
        self.error.set(Some(message));
    }
}

/// Keys for entries created in the browser before the server names them; only `<For>` sees them.
fn next_local_key() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The turn this page is streaming.
#[derive(Clone)]
pub struct ActiveTurn {
    pub turn_id: Uuid,
    abort: AbortHandle,
}

#[derive(Clone, Copy)]
pub struct ChatState {
    pub conversation_id: RwSignal<Option<Uuid>>,
    pub messages: RwSignal<Vec<ChatEntry>>,
    pub active: RwSignal<Option<ActiveTurn>>,
    /// Set while Stop waits for the server to confirm.
    pub stopping: RwSignal<bool>,
    /// A problem that belongs to no single message (e.g. an unknown conversation).
    pub notice: RwSignal<Option<String>>,
    /// A turn found still running when a conversation loaded; the page re-attaches to it.
    pub resume: RwSignal<Option<Uuid>>,
    /// The model the next turn uses (picker value); `None` means the server's default.
    pub model: RwSignal<Option<String>>,
    /// Bumped when the list of conversations changed (a new one started).
    pub conversations_changed: RwSignal<u32>,
    pub scroller: NodeRef<Div>,
    /// Whether new text scrolls the list: true while the reader is within reach of the bottom.
    /// Updated from scroll events, so a scroll already queued by an earlier token cannot pull a
    /// reader back down after they scrolled up.
    following: StoredValue<bool>,
}

impl ChatState {
    pub fn new() -> Self {
        Self {
            conversation_id: RwSignal::new(None),
            messages: RwSignal::new(Vec::new()),
            active: RwSignal::new(None),
            stopping: RwSignal::new(false),
            notice: RwSignal::new(None),
            resume: RwSignal::new(None),
            model: RwSignal::new(None),
            conversations_changed: RwSignal::new(0),
            scroller: NodeRef::new(),
            following: StoredValue::new(true),
        }
    }

    pub fn is_streaming(&self) -> bool {
        self.active.with(Option::is_some)
    }

    /// Shows a conversation loaded from the server, unless it is the one already on screen
    /// (which may be streaming).
    pub fn show(&self, loaded: Result<Option<ConversationView>, ApiError>) {
        let conversation = match loaded {
            Ok(c) => c,
            Err(ApiError::NotFound(_)) => {
                self.reset();
                self.notice.set(Some(
                    "That conversation does not exist. Start a new one below.".into(),
                ));
                return;
            }
            Err(e) => {
                self.notice
                    .set(Some(format!("Could not load the conversation: {e}")));
                return;
            }
        };
        let id = conversation.as_ref().map(|c| c.id);
        if id.is_some() && id == self.conversation_id.get_untracked() {
            return;
        }
        self.reset();
        let Some(conversation) = conversation else {
            return;
        };
        let resume = conversation
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant && m.status == MessageStatus::Streaming)
            .map(|m| m.turn_id);
        self.conversation_id.set(Some(conversation.id));
        self.model.set(Some(conversation.model.clone()));
        self.messages.set(
            conversation
                .messages
                .into_iter()
                .map(ChatEntry::from_view)
                .collect(),
        );
        self.resume.set(resume);
    }

    /// Empties the page for a new conversation. A turn still streaming keeps running on the
    /// server; only this page stops reading it.
    pub fn reset(&self) {
        if let Some(active) = self.active.get_untracked() {
            active.abort.abort();
        }
        self.active.set(None);
        self.stopping.set(false);
        self.conversation_id.set(None);
        self.messages.set(Vec::new());
        self.notice.set(None);
        self.resume.set(None);
    }

    /// Sends `text` as a new turn and streams the reply into the list.
    pub fn send(self, text: String) {
        if self.is_streaming() {
            return;
        }
        let Some(turn_id) = new_turn_id() else {
            self.notice.set(Some(
                "This browser cannot generate random ids (no crypto.getRandomValues).".into(),
            ));
            return;
        };
        self.notice.set(None);
        let reply = ChatEntry::new(Role::Assistant, String::new(), MessageStatus::Streaming);
        self.messages.update(|m| {
            m.push(ChatEntry::new(
                Role::User,
                text.clone(),
                MessageStatus::Complete,
            ));
            m.push(reply);
        });
        // Sending is a request to see the reply.
        self.following.set_value(true);
        self.scroll_to_bottom();
        let conversation_id = self.conversation_id.get_untracked();
        let model = self.model.get_untracked();
        self.follow(turn_id, reply, async move {
            send_message(turn_id, conversation_id, text, model).await
        });
    }

    /// Re-attaches to a turn that was still running when the page loaded.
    pub fn resume(self, turn_id: Uuid) {
        let Some(reply) = self
            .messages
            .with_untracked(|m| m.last().filter(|e| e.role == Role::Assistant).cloned())
        else {
            return;
        };
        // The log is replayed from its first event, so start from empty text.
        reply.content.set(String::new());
        self.follow(turn_id, reply, async move { turn_events(turn_id, 0).await });
    }

    /// Asks the server to stop the turn. Text keeps arriving until the server confirms (those are
    /// tokens it had already sent), so the page ends with exactly the text that was stored.
    pub fn stop(self) {
        let Some(active) = self.active.get_untracked() else {
            return;
        };
        self.stopping.set(true);
        spawn_local(async move {
            if stop_turn(active.turn_id).await.is_err() {
                // The server is unreachable: at least stop reading here.
                active.abort.abort();
            }
        });
    }

    fn follow(
        self,
        turn_id: Uuid,
        reply: ChatEntry,
        events: impl std::future::Future<Output = Result<ByteStream<ApiError>, ApiError>> + 'static,
    ) {
        let (abort, registration) = AbortHandle::new_pair();
        self.active.set(Some(ActiveTurn { turn_id, abort }));
        self.stopping.set(false);
        spawn_local(async move {
            let outcome = Abortable::new(self.read_events(&reply, events), registration).await;
            if reply.status.get_untracked() == MessageStatus::Streaming {
                match outcome {
                    Err(_aborted) if self.stopping.get_untracked() => {
                        reply.status.set(MessageStatus::Stopped)
                    }
                    Err(_aborted) => {}
                    Ok(()) => reply.fail(
                        "The connection to the server was lost. Reload to see the full reply."
                            .into(),
                    ),
                }
            }
            if self
                .active
                .with_untracked(|a| a.as_ref().is_some_and(|a| a.turn_id == turn_id))
            {
                self.active.set(None);
                self.stopping.set(false);
            }
        });
    }

    async fn read_events(
        self,
        reply: &ChatEntry,
        events: impl std::future::Future<Output = Result<ByteStream<ApiError>, ApiError>>,
    ) {
        let mut stream = match events.await {
            Ok(stream) => stream.into_inner(),
            Err(e) => return reply.fail(e.to_string()),
        };
        let mut decoder = ndjson::Decoder::default();
        while let Some(chunk) = stream.next().await {
            let Ok(bytes) = chunk else { return };
            for envelope in decoder.push(&bytes) {
                match envelope {
                    Ok(envelope) => self.apply(reply, envelope.event),
                    Err(e) => {
                        return reply.fail(format!("The server sent an unreadable event: {e}"))
                    }
                }
            }
        }
    }

    fn apply(&self, reply: &ChatEntry, event: TurnEvent) {
        match event {
            TurnEvent::Started {
                conversation_id,
                model,
                ..
            } => {
                reply.model.set(Some(model));
                if self.conversation_id.get_untracked().is_none() {
                    self.conversation_id.set(Some(conversation_id));
                    set_address(&format!("/c/{conversation_id}"));
                    self.conversations_changed.update(|n| *n += 1);
                }
            }
            TurnEvent::Queued { ahead } => reply.queued.set(Some(ahead)),
            TurnEvent::Delta { text } => {
                reply.queued.set(None);
                reply.content.update(|c| c.push_str(&text));
                if self.following.get_value() {
                    self.scroll_to_bottom();
                }
            }
            TurnEvent::Finished {
                status,
                error,
                usage,
                usage_estimated,
                cost_usd,
            } => {
                reply.status.set(status);
                reply.error.set(error);
                reply.usage.set(usage.map(|usage| UsageInfo {
                    usage,
                    estimated: usage_estimated,
                    cost_usd,
                }));
            }
        }
    }

    /// Token and cost totals of the replies on screen: (input, output, cost, any estimated).
    pub fn totals(&self) -> (u64, u64, Option<f64>, bool) {
        self.messages.with(|messages| {
            let mut totals = (0u64, 0u64, None::<f64>, false);
            for info in messages.iter().filter_map(|m| m.usage.get()) {
                totals.0 += u64::from(info.usage.input_tokens);
                totals.1 += u64::from(info.usage.output_tokens);
                if let Some(cost) = info.cost_usd {
                    totals.2 = Some(totals.2.unwrap_or(0.0) + cost);
                }
                totals.3 |= info.estimated;
            }
            totals
        })
    }

    /// Call on every scroll of the message list (the reader's and our own).
    pub fn on_scroll(&self) {
        if let Some(el) = self.scroller.get_untracked() {
            let distance = el.scroll_height() - el.scroll_top() - el.client_height();
            self.following.set_value(distance <= FOLLOW_THRESHOLD_PX);
        }
    }

    /// Scrolls after the DOM has taken the new text, unless the reader scrolled away meanwhile.
    fn scroll_to_bottom(&self) {
        let state = *self;
        request_animation_frame(move || {
            if let (true, Some(el)) = (state.following.get_value(), state.scroller.get_untracked())
            {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }
}

impl Default for ChatState {
    fn default() -> Self {
        Self::new()
    }
}

/// A random (v4) id from the browser's CSPRNG, which unlike `crypto.randomUUID` also exists on
/// plain-http LAN addresses.
fn new_turn_id() -> Option<Uuid> {
    let mut bytes = [0u8; 16];
    let crypto = web_sys::window()?.crypto().ok()?;
    crypto.get_random_values_with_u8_array(&mut bytes).ok()?;
    Some(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// Changes the address bar without a router navigation, which would reload the page's data
/// mid-stream.
fn set_address(path: &str) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ =
            history.replace_state_with_url(&leptos::wasm_bindgen::JsValue::NULL, "", Some(path));
    }
}
