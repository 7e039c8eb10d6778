//! The page's client state, and its one connection to the server: a loop that follows either the
//! turn this page started or the conversation (turns started in other tabs), applies each event to
//! the messages, and re-attaches by itself after a dropped connection, from the last event seen.

use std::time::Duration;

use futures::future::{AbortHandle, Abortable, Either};
use futures::StreamExt;
use leptos::html::{Div, Textarea};
use leptos::prelude::*;
use leptos::task::spawn_local;
use server_fn::codec::ByteStream;
use uuid::Uuid;

use super::remembered;
use crate::api::conversations::{get_conversation, switch_branch};
use crate::api::turns::{
    continue_reply, conversation_events, send_message, stop_turn, turn_events,
};
use crate::error::ApiError;
use crate::model::{
    ndjson, ConversationView, MessageStatus, MessageView, Outcome, PromptRevision, Role,
    SendRequest, StreamLine, Totals, TurnEvent, HEARTBEAT_SECS,
};

/// How close to the bottom (px) the reader must be for new text to scroll the list.
const FOLLOW_THRESHOLD_PX: i32 = 100;
/// A stream silent for this long (no event, no heartbeat) is taken for dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(HEARTBEAT_SECS * 5 / 2);
/// Waits between reconnection attempts grow from the first to the last.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(8);
/// A hidden tab lets go of its connection after this long (browsers allow six per server), and
/// takes it up again when shown.
const PARK_HIDDEN_AFTER: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
pub struct ChatEntry {
    /// For `<For>` only: stable from the moment the entry appears.
    pub key: Uuid,
    pub role: Role,
    pub content: RwSignal<String>,
    /// A reply's thinking, plain text (`MessageView::thinking`).
    pub thinking: RwSignal<String>,
    /// The server's rendering of a reply it sent with the page (`MessageView::html`).
    pub html: StoredValue<String>,
    pub outcome: RwSignal<Outcome>,
    /// While waiting for a busy model: how many replies are ahead.
    pub queued: RwSignal<Option<u32>>,
    /// The `provider/model` that wrote this reply.
    pub model: RwSignal<Option<String>>,
    /// The server's ids, once it has named them.
    pub message_id: StoredValue<Option<Uuid>>,
    pub turn_id: StoredValue<Option<Uuid>>,
    /// Which run of the reply the page shows (a Continue starts the next).
    pub run: StoredValue<u32>,
    /// The system prompt revision the reply was written with (0: none).
    pub prompt_revision: RwSignal<Option<u32>>,
    /// A question's place in the tree: the turn before it, and its alternatives (edits and
    /// regenerations, itself included; empty when it has none).
    pub parent_turn: StoredValue<Option<Uuid>>,
    pub alternatives: RwSignal<Vec<Uuid>>,
}

impl ChatEntry {
    fn from_view(m: MessageView) -> Self {
        Self {
            key: m.id,
            role: m.role,
            content: RwSignal::new(m.content),
            thinking: RwSignal::new(m.thinking),
            html: StoredValue::new(m.html),
            outcome: RwSignal::new(m.outcome),
            queued: RwSignal::new(None),
            model: RwSignal::new(m.model),
            message_id: StoredValue::new(Some(m.id)),
            turn_id: StoredValue::new(Some(m.turn_id)),
            run: StoredValue::new(m.run),
            prompt_revision: RwSignal::new(m.system_prompt_revision),
            parent_turn: StoredValue::new(m.parent_turn_id),
            alternatives: RwSignal::new(m.alternatives),
        }
    }

    fn new(role: Role, turn_id: Uuid, content: String, outcome: Outcome) -> Self {
        Self {
            key: Uuid::from_u128(next_local_key()),
            role,
            content: RwSignal::new(content),
            thinking: RwSignal::new(String::new()),
            html: StoredValue::new(String::new()),
            outcome: RwSignal::new(outcome),
            queued: RwSignal::new(None),
            model: RwSignal::new(None),
            message_id: StoredValue::new(None),
            turn_id: StoredValue::new(Some(turn_id)),
            run: StoredValue::new(1),
            prompt_revision: RwSignal::new(None),
            parent_turn: StoredValue::new(None),
            alternatives: RwSignal::new(Vec::new()),
        }
    }

    /// Takes the stored state of this message (a turn announced by the server).
    fn update_from(&self, m: MessageView) {
        self.message_id.set_value(Some(m.id));
        self.turn_id.set_value(Some(m.turn_id));
        self.run.set_value(m.run);
        self.content.set(m.content);
        self.thinking.set(m.thinking);
        self.outcome.set(m.outcome);
        self.model.set(m.model);
        self.prompt_revision.set(m.system_prompt_revision);
        self.queued.set(None);
    }

    fn fail(&self, message: String) {
        self.queued.set(None);
        self.outcome.set(Outcome::failed(message));
    }

    pub fn is_streaming(&self) -> bool {
        self.status() == Some(MessageStatus::Streaming)
    }

    /// How the reply stands; `None` once the page is gone (see [`ChatState`] on `try_`).
    pub fn status(&self) -> Option<MessageStatus> {
        self.outcome.try_with(|o| o.status)
    }

    fn is_streaming_untracked(&self) -> bool {
        self.outcome
            .with_untracked(|o| o.status == MessageStatus::Streaming)
    }
}

/// A copy of `source` for parts of the page that have a Suspense of their own (the sidebar, the
/// model picker): the server renders `initial`, and only the browser follows `source` (an
/// effect). On the server those parts render on other threads while the conversation's Suspense
/// writes the page's state, and in Leptos 0.8 reading a signal that another thread is writing
/// panics; through a mirror they never read it there.
pub fn mirror<T>(source: impl Fn() -> T + Send + Sync + 'static, initial: T) -> RwSignal<T>
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    let copy = RwSignal::new(initial);
    Effect::new(move || change(copy, source()));
    copy
}

/// Sets `signal` to `value` unless it holds that already (no write, no notification).
fn change<T: PartialEq + Send + Sync + 'static>(signal: RwSignal<T>, value: T) {
    if signal.try_with_untracked(|current| *current != value) == Some(true) {
        signal.set(value);
    }
}

/// Keys for entries created in the browser before the server names them; only `<For>` sees them.
fn next_local_key() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The reply being written in this conversation, by this tab or another.
#[derive(Clone, Copy)]
pub struct Writing {
    pub turn_id: Uuid,
    pub reply: ChatEntry,
}

/// The state of the page's connection to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Connected, or not needed.
    Up,
    /// Lost; trying again by itself.
    Reconnecting,
}

/// What the page's connection asks for next, and from where; kept up to date event by event so
/// that a reconnection carries on exactly where the last one stopped.
#[derive(Clone, Debug, PartialEq)]
enum Cursor {
    /// This page's send that no event has acknowledged yet: sending it again is safe (the server
    /// knows the turn id).
    Send(SendRequest),
    /// A Continue this page asked for that no event has acknowledged yet: asking again is safe
    /// (the server follows the continuation already started from `from_run`). `before` is how the
    /// reply stood, to put back if the server says no.
    Continue {
        turn_id: Uuid,
        from_run: u32,
        before: Outcome,
    },
    /// Following one run of a turn, after the event numbered `seq`.
    Turn {
        conversation_id: Uuid,
        turn_id: Uuid,
        run: u32,
        seq: u32,
    },
    /// Following the conversation, having its turns up to `from_turn`.
    Watch {
        conversation_id: Uuid,
        from_turn: Option<Uuid>,
    },
}

/// How one connection ended.
enum Ended {
    /// The followed turn finished; the page goes on to watch its conversation.
    TurnDone,
    /// The connection dropped or went silent; try again. `heard`: it had worked for a while.
    Lost { heard: bool },
    /// The server refused the request.
    Refused(ApiError),
}

#[derive(Clone, Copy)]
pub struct ChatState {
    pub conversation_id: RwSignal<Option<Uuid>>,
    pub messages: RwSignal<Vec<ChatEntry>>,
    pub writing: RwSignal<Option<Writing>>,
    /// Set while Stop waits for the server to confirm.
    pub stopping: RwSignal<bool>,
    pub link: RwSignal<Link>,
    /// A problem that belongs to no single message (e.g. an unknown conversation).
    pub notice: RwSignal<Option<String>>,
    /// The composer's text; a refused send puts its text back here.
    pub draft: RwSignal<String>,
    /// The model the next turn uses (picker value); `None` means the server's default.
    pub model: RwSignal<Option<String>>,
    /// The conversation's system prompt as the server has it, its revision, and every revision.
    pub system_prompt: RwSignal<String>,
    pub prompt_revisions: RwSignal<Vec<PromptRevision>>,
    /// Older messages of the branch on screen exist before this position (the page opened with
    /// the newest ones); "Show earlier messages" asks for them.
    pub older_before: RwSignal<Option<u32>>,
    /// The figures of those older messages, for the conversation's totals.
    pub older_totals: RwSignal<Totals>,
    pub loading_older: RwSignal<bool>,
    /// Counts what the page has shown (a conversation, another branch, a new chat): an answer
    /// for something shown before is dropped.
    shown_count: StoredValue<u64>,
    /// For a conversation not yet started: the system prompt set in its settings (`None`: the
    /// server's default).
    pub new_system_prompt: RwSignal<Option<String>>,
    pub settings_open: RwSignal<bool>,
    /// The question being edited in place (its entry's key).
    pub editing: RwSignal<Option<Uuid>>,
    /// Bumped when the list of conversations changed (a new one started).
    pub conversations_changed: RwSignal<u32>,
    /// Set when a conversation was shown and the page should start following it.
    pub needs_attach: RwSignal<bool>,
    pub scroller: NodeRef<Div>,
    pub composer: NodeRef<Textarea>,
    /// The reader scrolled away from the newest text (shows "Jump to latest").
    pub detached: RwSignal<bool>,
    /// On a narrow screen: the conversation list is shown over the chat.
    pub menu_open: RwSignal<bool>,
    /// Whether new text scrolls the list: true while the reader is within reach of the bottom.
    /// Updated from scroll events, so a scroll already queued by an earlier token cannot pull a
    /// reader back down after they scrolled up.
    following: StoredValue<bool>,
    /// A mouse button or finger is down on the list (selecting, dragging the scrollbar).
    holding: StoredValue<bool>,
    cursor: StoredValue<Option<Cursor>>,
    /// Ends the running connection loop.
    connection: StoredValue<Option<AbortHandle>>,
    /// Cuts a reconnection wait short (the network came back, the tab was shown).
    wake: StoredValue<Option<futures::channel::oneshot::Sender<()>>>,
    /// When the last line arrived (ms since the page loaded), to spot a dead connection.
    last_line_at: StoredValue<f64>,
    /// The connection was let go while the tab was hidden.
    parked: StoredValue<bool>,
    /// The page's reactive owner, and a child of it that owns the entries of the conversation on
    /// screen: entries live as long as their conversation is shown, whichever component (a
    /// message's Edit, a stream's callback) made them.
    page: StoredValue<Option<Owner>>,
    shown: StoredValue<Option<Owner>>,
}

impl ChatState {
    pub fn new() -> Self {
        Self {
            conversation_id: RwSignal::new(None),
            messages: RwSignal::new(Vec::new()),
            writing: RwSignal::new(None),
            stopping: RwSignal::new(false),
            link: RwSignal::new(Link::Up),
            notice: RwSignal::new(None),
            draft: RwSignal::new(String::new()),
            model: RwSignal::new(None),
            system_prompt: RwSignal::new(String::new()),
            prompt_revisions: RwSignal::new(Vec::new()),
            older_before: RwSignal::new(None),
            older_totals: RwSignal::new(Totals::default()),
            loading_older: RwSignal::new(false),
            shown_count: StoredValue::new(0),
            new_system_prompt: RwSignal::new(None),
            settings_open: RwSignal::new(false),
            editing: RwSignal::new(None),
            conversations_changed: RwSignal::new(0),
            needs_attach: RwSignal::new(false),
            scroller: NodeRef::new(),
            composer: NodeRef::new(),
            detached: RwSignal::new(false),
            menu_open: RwSignal::new(false),
            following: StoredValue::new(true),
            holding: StoredValue::new(false),
            cursor: StoredValue::new(None),
            connection: StoredValue::new(None),
            wake: StoredValue::new(None),
            last_line_at: StoredValue::new(0.0),
            parked: StoredValue::new(false),
            page: StoredValue::new(Owner::current()),
            shown: StoredValue::new(None),
        }
    }

    pub fn is_streaming(&self) -> bool {
        self.writing.try_with(Option::is_some).unwrap_or(false)
    }

    /// Shows a conversation loaded from the server, unless it is the one already on screen.
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
        if id.is_some() && id == self.conversation_id.try_get_untracked().flatten() {
            return;
        }
        self.display(conversation);
    }

    /// Replaces what the page shows with `conversation` (`None`: a new one).
    fn display(&self, conversation: Option<ConversationView>) {
        self.reset();
        let fresh = self
            .page
            .try_with_value(|page| page.as_ref().map(Owner::child))
            .flatten()
            .unwrap_or_default();
        // The entries of what was shown go with their owner, once the list no longer has them.
        let _previous = self.shown.try_update_value(|shown| shown.replace(fresh));
        // Once the page is live (an effect, so only in the browser): take up the draft and, for a
        // conversation, follow it.
        self.needs_attach.set(true);
        let Some(conversation) = conversation else {
            return;
        };
        change(self.conversation_id, Some(conversation.id));
        change(self.model, Some(conversation.model.clone()));
        change(self.system_prompt, conversation.system_prompt);
        change(self.prompt_revisions, conversation.system_prompts);
        change(self.older_before, conversation.older_before);
        change(self.older_totals, conversation.older_totals);
        let entries: Vec<ChatEntry> = self.in_shown(|| {
            conversation
                .messages
                .into_iter()
                .map(ChatEntry::from_view)
                .collect()
        });
        // A reply still being written: Stop, not Send, until the connection takes it up.
        let writing = entries
            .iter()
            .rev()
            .find(|e| e.role == Role::Assistant && e.is_streaming_untracked())
            .and_then(|e| {
                e.turn_id
                    .get_value()
                    .map(|turn_id| Writing { turn_id, reply: *e })
            });
        if writing.is_some() {
            self.writing.set(writing);
        }
        self.messages.set(entries);
    }

    /// Takes up the conversation on screen in the browser: its unsent draft, and then turns from
    /// other tabs and a reply that was still being written when it loaded. A new conversation
    /// starts with the model chosen last.
    pub fn attach(self) {
        let conversation_id = self.conversation_id.get_untracked();
        self.draft.set(remembered::draft(conversation_id));
        let Some(conversation_id) = conversation_id else {
            if let Some(model) = remembered::model() {
                self.model.set(Some(model));
            }
            return;
        };
        // A conversation opens at its latest message, following it.
        self.following.set_value(true);
        self.scroll_to_bottom();
        let from_turn = self.last_turn();
        self.connect(Cursor::Watch {
            conversation_id,
            from_turn,
        });
    }

    /// Empties the page for a new conversation. A turn still streaming keeps running on the
    /// server; only this page stops reading it.
    pub fn reset(&self) {
        self.disconnect();
        self.cursor.try_set_value(None);
        // Only what differs is written: on the server a page starts empty, and other parts of
        // it may be reading these signals on another thread meanwhile (ARCHITECTURE.md).
        if self.writing.try_with_untracked(Option::is_some) == Some(true) {
            self.writing.set(None);
        }
        if self.messages.try_with_untracked(Vec::is_empty) == Some(false) {
            self.messages.set(Vec::new());
        }
        change(self.stopping, false);
        change(self.link, Link::Up);
        change(self.conversation_id, None);
        change(self.notice, None);
        change(self.detached, false);
        change(self.menu_open, false);
        change(self.system_prompt, String::new());
        change(self.prompt_revisions, Vec::new());
        change(self.older_before, None);
        change(self.older_totals, Totals::default());
        change(self.loading_older, false);
        self.shown_count.try_update_value(|n| *n += 1);
        change(self.new_system_prompt, None);
        change(self.settings_open, false);
        change(self.editing, None);
    }

    /// New chat: an empty page with the new conversation's draft and the model chosen last.
    pub fn start_new(self) {
        self.reset();
        self.attach();
        self.focus_composer();
    }

    /// Sends `text` as a new turn and streams the reply into the list.
    pub fn send(self, text: String) {
        self.start_turn(text, None);
    }

    /// Edits a question (or, with its own text, regenerates its answer): a new turn that takes
    /// its place on the branch; the old one stays as an alternative, reachable by `‹ ›`.
    pub fn resend(self, turn_id: Uuid, text: String) {
        self.start_turn(text, Some(turn_id));
    }

    /// Regenerates the answer to `reply`'s question.
    pub fn regenerate(self, reply: ChatEntry) {
        let Some(turn_id) = reply.turn_id.get_value() else {
            return;
        };
        if let Some(question) = self.question_of(turn_id) {
            self.resend(turn_id, question.content.get_untracked());
        }
    }

    /// Opens the last question for editing (Up in an empty composer).
    pub fn edit_last(&self) -> bool {
        if self.is_streaming() {
            return false;
        }
        let last = self.messages.with_untracked(|m| {
            m.iter()
                .rev()
                .find(|e| e.role == Role::User && e.turn_id.get_value().is_some())
                .map(|e| e.key)
        });
        self.editing.set(last);
        last.is_some()
    }

    /// Shows the branch through `turn_id`, one of a question's alternatives.
    pub fn switch_to(self, turn_id: Uuid) {
        let Some(conversation_id) = self.conversation_id.get_untracked() else {
            return;
        };
        if self.is_streaming() {
            return;
        }
        spawn_local(async move {
            match switch_branch(conversation_id, turn_id).await {
                Ok(view) => {
                    self.display(Some(view));
                    self.attach();
                }
                Err(e) => {
                    self.notice
                        .try_set(Some(format!("Could not show that version: {e}")));
                }
            }
        });
    }

    /// Loads the conversation afresh (its branch changed elsewhere) and follows it again.
    fn reload(self) {
        let Some(conversation_id) = self.conversation_id.get_untracked() else {
            return;
        };
        self.disconnect();
        spawn_local(async move {
            match get_conversation(conversation_id, None).await {
                Ok(view) => {
                    if self.conversation_id.try_get_untracked() == Some(Some(conversation_id)) {
                        self.display(Some(view));
                        self.attach();
                    }
                }
                Err(e) => {
                    self.notice
                        .try_set(Some(format!("Could not load the conversation: {e}")));
                }
            }
        });
    }

    fn question_of(&self, turn_id: Uuid) -> Option<ChatEntry> {
        self.messages.with_untracked(|m| {
            m.iter()
                .find(|e| e.role == Role::User && e.turn_id.get_value() == Some(turn_id))
                .copied()
        })
    }

    fn start_turn(self, text: String, alternative_to: Option<Uuid>) {
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
        self.editing.set(None);
        let (question, reply) = self.in_shown(|| {
            (
                ChatEntry::new(Role::User, turn_id, text.clone(), Outcome::complete()),
                ChatEntry::new(
                    Role::Assistant,
                    turn_id,
                    String::new(),
                    Outcome::streaming(),
                ),
            )
        });
        // An alternative takes the old turn's place: it and what followed leave the screen.
        if let Some((replaced, old)) =
            alternative_to.and_then(|t| self.question_of(t).map(|old| (t, old)))
        {
            let mut family = old.alternatives.get_untracked();
            if family.is_empty() {
                family.push(replaced);
            }
            family.push(turn_id);
            question.alternatives.set(family);
            question.parent_turn.set_value(old.parent_turn.get_value());
            self.messages.update(|m| {
                if let Some(place) = m.iter().position(|e| e.key == old.key) {
                    m.truncate(place);
                }
            });
        } else {
            question.parent_turn.set_value(self.last_turn());
        }
        self.messages.update(|m| {
            m.push(question);
            m.push(reply);
        });
        self.writing.set(Some(Writing { turn_id, reply }));
        // Sending is a request to see the reply.
        self.following.set_value(true);
        self.scroll_to_bottom();
        self.connect(Cursor::Send(SendRequest {
            turn_id,
            conversation_id: self.conversation_id.get_untracked(),
            text,
            model: self.model.get_untracked(),
            system_prompt: self.new_system_prompt.get_untracked(),
            alternative_to,
        }));
    }

    /// Runs `make` with the shown conversation's owner, so that what it creates lives as long as
    /// that conversation is on screen (not as long as the component whose event made it).
    /// Puts the conversation's earlier messages above those shown, keeping what the reader sees
    /// where it is.
    pub fn show_older(self) {
        let (Some(id), Some(before)) = (
            self.conversation_id.get_untracked(),
            self.older_before.get_untracked(),
        ) else {
            return;
        };
        if self.loading_older.get_untracked() {
            return;
        }
        self.loading_older.set(true);
        let shown = self.shown_count.get_value();
        spawn_local(async move {
            let loaded = get_conversation(id, Some(before)).await;
            // The page may have shown something else meanwhile (another conversation, another
            // branch, the same one reloaded): this answer belongs to what is gone.
            if self.shown_count.try_get_value() != Some(shown) {
                return;
            }
            match loaded {
                Ok(page) => {
                    let height = self
                        .scroller
                        .get_untracked()
                        .map(|el| (el.scroll_height(), el.scroll_top()));
                    let older: Vec<ChatEntry> = self.in_shown(|| {
                        page.messages
                            .into_iter()
                            .map(ChatEntry::from_view)
                            .collect()
                    });
                    self.messages.update(|shown| {
                        let newer = std::mem::replace(shown, older);
                        shown.extend(newer);
                    });
                    self.prompt_revisions.update(|known| {
                        for revision in page.system_prompts {
                            if known.iter().all(|k| k.revision != revision.revision) {
                                known.push(revision);
                            }
                        }
                        known.sort_by_key(|r| r.revision);
                    });
                    self.older_before.set(page.older_before);
                    self.older_totals.set(page.older_totals);
                    // Once the earlier messages are laid out, the same message stays in view.
                    if let Some((before_height, top)) = height {
                        let scroller = self.scroller;
                        request_animation_frame(move || {
                            if let Some(el) = scroller.try_get_untracked().flatten() {
                                el.set_scroll_top(top + el.scroll_height() - before_height);
                            }
                        });
                    }
                }
                Err(e) => {
                    self.notice
                        .try_set(Some(format!("Could not load earlier messages: {e}")));
                }
            }
            self.loading_older.try_set(false);
        });
    }

    fn in_shown<T>(&self, make: impl FnOnce() -> T) -> T {
        match self.shown.try_get_value().flatten() {
            Some(owner) => owner.with(make),
            None => make(),
        }
    }

    /// The conversation's system prompt is now `text`, as `revision`.
    pub fn adopt_system_prompt(&self, revision: u32, text: String) {
        if revision > 0
            && self
                .prompt_revisions
                .with_untracked(|r| r.iter().all(|p| p.revision != revision))
        {
            self.prompt_revisions.update(|r| {
                r.push(PromptRevision {
                    revision,
                    text: text.clone(),
                })
            });
        }
        self.system_prompt.set(text);
        self.new_system_prompt.set(None);
    }

    /// The text of a system prompt revision, if the page has it.
    pub fn prompt_text(&self, revision: u32) -> Option<String> {
        self.prompt_revisions
            .try_with(|r| {
                r.iter()
                    .find(|p| p.revision == revision)
                    .map(|p| p.text.clone())
            })
            .flatten()
    }

    /// Asks the model to go on with a stopped or interrupted reply.
    pub fn continue_reply(self, reply: ChatEntry) {
        let Some(turn_id) = reply.turn_id.get_value() else {
            return;
        };
        if self.is_streaming() {
            return;
        }
        self.notice.set(None);
        let before = reply.outcome.get_untracked();
        reply
            .outcome
            .update(|o| o.status = MessageStatus::Streaming);
        self.writing.set(Some(Writing { turn_id, reply }));
        self.connect(Cursor::Continue {
            turn_id,
            from_run: reply.run.get_value(),
            before,
        });
    }

    /// Asks the server to stop the reply being written. Text keeps arriving until the server
    /// confirms (those are tokens it had already sent), so the page ends with exactly the text
    /// that was stored; the stream carries the ending, in every tab.
    pub fn stop(self) {
        let Some(writing) = self.writing.get_untracked() else {
            return;
        };
        self.stopping.set(true);
        spawn_local(async move {
            if let Err(e) = stop_turn(writing.turn_id).await {
                self.stopping.try_set(false);
                self.notice
                    .try_set(Some(format!("Could not stop the reply: {e}")));
            }
        });
    }

    /// The last turn on the page, as far as the server has named it.
    fn last_turn(&self) -> Option<Uuid> {
        self.messages
            .with_untracked(|m| m.iter().rev().find_map(|e| e.turn_id.get_value()))
    }

    /// Ends the page's connection; also when the page goes (its signals go with it).
    pub(super) fn disconnect(&self) {
        if let Some(handle) = self.connection.try_update_value(Option::take).flatten() {
            handle.abort();
        }
    }

    /// Replaces the page's connection with one that starts at `cursor`.
    fn connect(self, cursor: Cursor) {
        self.disconnect();
        self.parked.set_value(false);
        self.cursor.set_value(Some(cursor));
        let (handle, registration) = AbortHandle::new_pair();
        self.connection.set_value(Some(handle));
        spawn_local(async move {
            let _ = Abortable::new(self.run_connection(), registration).await;
        });
    }

    /// The connection loop: one request at a time, following the cursor, until the page leaves
    /// this conversation or the server refuses for good.
    async fn run_connection(self) {
        let mut failures: u32 = 0;
        loop {
            let Some(cursor) = self.cursor.get_value() else {
                return;
            };
            let ended = self.follow(cursor.clone()).await;
            match ended {
                Ended::TurnDone => {
                    failures = 0;
                    self.link.set(Link::Up);
                }
                Ended::Refused(error) if !error.is_transient() => {
                    self.link.set(Link::Up);
                    if !self.refused(&cursor, error) {
                        return;
                    }
                    failures = 0;
                }
                Ended::Refused(_) | Ended::Lost { .. } => {
                    if matches!(ended, Ended::Lost { heard: true }) {
                        // A connection that worked starts the waits over.
                        failures = 0;
                    }
                    self.link.set(Link::Reconnecting);
                    failures = failures.saturating_add(1);
                    self.wait_before_retry(failures).await;
                }
            }
        }
    }

    /// One request and its stream, read to the end.
    async fn follow(self, cursor: Cursor) -> Ended {
        let watching = matches!(cursor, Cursor::Watch { .. });
        let request = match cursor {
            Cursor::Send(request) => send_message(request).await,
            Cursor::Continue {
                turn_id, from_run, ..
            } => continue_reply(turn_id, from_run).await,
            Cursor::Turn {
                turn_id, run, seq, ..
            } => turn_events(turn_id, run, seq).await,
            Cursor::Watch {
                conversation_id,
                from_turn,
            } => conversation_events(conversation_id, from_turn).await,
        };
        match request {
            Ok(stream) => {
                self.link.set(Link::Up);
                self.read(stream, watching).await
            }
            Err(error) => Ended::Refused(error),
        }
    }

    /// Applies every line of one stream; says how the stream ended. A turn's own stream ends with
    /// its `Finished`; a conversation's stream goes on to the next turn.
    async fn read(self, stream: ByteStream<ApiError>, watching: bool) -> Ended {
        let mut stream = stream.into_inner();
        let mut decoder = ndjson::Decoder::default();
        // The reply the events build: this page's own, or the one the last `Turn` announced.
        let mut target = if watching {
            None
        } else {
            self.writing.get_untracked().map(|w| w.reply)
        };
        let mut heard = false;
        loop {
            self.last_line_at.set_value(now_ms());
            let next = futures::future::select(stream.next(), Box::pin(sleep(SILENCE_LIMIT)));
            let chunk = match next.await {
                Either::Left((Some(Ok(bytes)), _)) => bytes,
                // Ended, broken, or silent past every heartbeat: the connection is gone.
                Either::Left((None | Some(Err(_)), _)) | Either::Right(_) => {
                    return Ended::Lost { heard };
                }
            };
            for line in decoder.push(&chunk) {
                let Ok(line) = line else {
                    return Ended::Lost { heard };
                };
                heard = true;
                match line {
                    StreamLine::Heartbeat => {}
                    StreamLine::Turn { user, reply } => {
                        target = Some(self.announce(*user, *reply));
                    }
                    StreamLine::Event(envelope) => {
                        let Some(reply) = target else { continue };
                        let done = matches!(envelope.event, TurnEvent::Finished(_));
                        self.apply(&reply, envelope.seq, envelope.event);
                        if done && !watching {
                            return Ended::TurnDone;
                        }
                    }
                }
            }
        }
    }

    /// A turn the server announced: update the entries the page has for it, or add them.
    fn announce(&self, user: MessageView, reply: MessageView) -> ChatEntry {
        let find = |role: Role, id: Uuid, turn_id: Uuid| {
            self.messages.with_untracked(|m| {
                m.iter()
                    .find(|e| {
                        e.role == role
                            && (e.message_id.get_value() == Some(id)
                                || e.turn_id.get_value() == Some(turn_id))
                    })
                    .copied()
            })
        };
        let turn_id = reply.turn_id;
        let streaming = reply.outcome.status == MessageStatus::Streaming;
        let run = reply.run;
        let entry = match (
            find(Role::User, user.id, turn_id),
            find(Role::Assistant, reply.id, turn_id),
        ) {
            (Some(_), Some(entry)) => {
                entry.update_from(reply);
                entry
            }
            _ if user.parent_turn_id != self.last_turn() => {
                // A turn on another branch (an edit or a regeneration in another tab): the
                // page shows that branch now.
                self.reload();
                return self.in_shown(|| ChatEntry::from_view(reply));
            }
            _ => {
                let (user, entry) =
                    self.in_shown(|| (ChatEntry::from_view(user), ChatEntry::from_view(reply)));
                self.messages.update(|m| {
                    m.push(user);
                    m.push(entry);
                });
                self.follow_new_text();
                entry
            }
        };
        if streaming {
            self.writing.set(Some(Writing {
                turn_id,
                reply: entry,
            }));
        } else if self
            .writing
            .with_untracked(|w| w.is_some_and(|w| w.turn_id == turn_id))
        {
            // It ended while this page was not listening.
            self.writing.set(None);
            self.stopping.set(false);
        }
        if let Some(conversation_id) = self.conversation_id.get_untracked() {
            if streaming {
                // Until its events say otherwise, the turn is followed from its start.
                self.set_turn_cursor(conversation_id, turn_id, run, 0);
            } else {
                self.watch_from(conversation_id, turn_id);
            }
        }
        entry
    }

    fn set_turn_cursor(&self, conversation_id: Uuid, turn_id: Uuid, run: u32, seq: u32) {
        // In a conversation's stream the cursor only says where to resume a turn after a drop.
        let watching = self
            .cursor
            .with_value(|c| matches!(c, Some(Cursor::Watch { .. })));
        if !watching {
            self.cursor.set_value(Some(Cursor::Turn {
                conversation_id,
                turn_id,
                run,
                seq,
            }));
        }
    }

    fn watch_from(&self, conversation_id: Uuid, turn_id: Uuid) {
        self.cursor.set_value(Some(Cursor::Watch {
            conversation_id,
            from_turn: Some(turn_id),
        }));
    }

    fn apply(&self, reply: &ChatEntry, seq: u32, event: TurnEvent) {
        match event {
            TurnEvent::Started {
                conversation_id,
                message_id,
                model,
                run,
                system_prompt_revision,
            } => {
                // Every run's log starts from empty text and replays it whole.
                reply.content.set(String::new());
                reply.thinking.set(String::new());
                reply.prompt_revision.set(system_prompt_revision);
                reply.message_id.set_value(Some(message_id));
                reply.run.set_value(run);
                reply.model.set(Some(model));
                reply.outcome.set(Outcome::streaming());
                // The server has the message: its draft is no longer needed.
                if let Some(Cursor::Send(sent)) = self.cursor.get_value() {
                    remembered::forget_sent_draft(sent.conversation_id, &sent.text);
                }
                if self.conversation_id.get_untracked().is_none() {
                    self.conversation_id.set(Some(conversation_id));
                    set_address(&format!("/c/{conversation_id}"));
                    // The new conversation started with the prompt its settings had.
                    if let Some(text) = self.new_system_prompt.get_untracked() {
                        self.adopt_system_prompt(system_prompt_revision.unwrap_or(0), text);
                    }
                }
                // New, or newly active: the sidebar lists it first.
                self.conversations_changed.update(|n| *n += 1);
                if let Some(turn_id) = reply.turn_id.get_value() {
                    self.writing.set(Some(Writing {
                        turn_id,
                        reply: *reply,
                    }));
                    self.set_turn_cursor(conversation_id, turn_id, run, seq);
                }
            }
            TurnEvent::Queued { ahead } => reply.queued.set(Some(ahead)),
            TurnEvent::Delta { text } => {
                reply.queued.set(None);
                reply.content.update(|c| c.push_str(&text));
                self.follow_new_text();
            }
            TurnEvent::Thinking { text } => {
                reply.queued.set(None);
                reply.thinking.update(|t| t.push_str(&text));
                self.follow_new_text();
            }
            TurnEvent::Finished(outcome) => {
                reply.queued.set(None);
                reply.outcome.set(outcome);
                self.writing.set(None);
                self.stopping.set(false);
                self.return_focus();
                if let (Some(conversation_id), Some(turn_id)) = (
                    self.conversation_id.get_untracked(),
                    reply.turn_id.get_value(),
                ) {
                    self.watch_from(conversation_id, turn_id);
                }
                return;
            }
        }
        // Count the event, so a reconnection resumes after it.
        self.cursor.update_value(|c| {
            if let Some(Cursor::Turn { seq: last, .. }) = c {
                *last = seq;
            }
        });
    }

    /// The server said no to the cursor's request, for a reason trying again will not change.
    /// Says so where it belongs, then goes on following the conversation if there is one;
    /// false when there is nothing left to follow.
    fn refused(&self, cursor: &Cursor, error: ApiError) -> bool {
        match cursor {
            Cursor::Send(SendRequest {
                text,
                alternative_to,
                ..
            }) => {
                // Nothing was stored: take the message back off the page and into the composer.
                self.messages.update(|m| {
                    m.truncate(m.len().saturating_sub(2));
                });
                if alternative_to.is_some() {
                    // What the edit replaced on screen comes back from the server.
                    self.reload();
                }
                if self.draft.with_untracked(String::is_empty) {
                    self.draft.set(text.clone());
                    remembered::save_draft(self.conversation_id.get_untracked(), text);
                }
                self.notice
                    .set(Some(format!("The message was not sent: {error}")));
            }
            Cursor::Continue { before, .. } => {
                if let Some(writing) = self.writing.get_untracked() {
                    writing.reply.outcome.set(before.clone());
                }
                self.notice
                    .set(Some(format!("The reply was not continued: {error}")));
            }
            Cursor::Turn { .. } => {
                if let Some(writing) = self.writing.get_untracked() {
                    writing.reply.fail(error.to_string());
                }
            }
            Cursor::Watch { .. } => {
                self.notice.set(Some(format!(
                    "This page stopped following the conversation: {error}"
                )));
                self.writing.set(None);
                self.stopping.set(false);
                self.cursor.set_value(None);
                return false;
            }
        }
        self.writing.set(None);
        self.stopping.set(false);
        // If the conversation itself is gone, following it is refused in turn, and that ends it.
        let next = self
            .conversation_id
            .get_untracked()
            .map(|conversation_id| Cursor::Watch {
                conversation_id,
                from_turn: self.last_turn(),
            });
        let follow = next.is_some();
        self.cursor.set_value(next);
        follow
    }

    /// Backs off before the next attempt (up to [`LAST_RETRY`], with jitter so that many pages
    /// do not come back at once), unless woken early.
    async fn wait_before_retry(&self, failures: u32) {
        let exponent = failures.saturating_sub(1).min(5);
        let wait = FIRST_RETRY
            .saturating_mul(1 << exponent)
            .min(LAST_RETRY)
            .mul_f64(0.75 + 0.25 * random_fraction());
        let (wake, woken) = futures::channel::oneshot::channel();
        self.wake.set_value(Some(wake));
        let _ = futures::future::select(Box::pin(sleep(wait)), woken).await;
        self.wake.set_value(None);
    }

    /// Call when the network comes back or the tab is shown again: reconnect now, and take up a
    /// connection that was let go or that went quiet while the tab was away.
    pub fn on_back(self) {
        if let Some(wake) = self.wake.try_update_value(Option::take).flatten() {
            let _ = wake.send(());
        }
        let quiet =
            now_ms() - self.last_line_at.get_value() > (HEARTBEAT_SECS as f64 + 5.0) * 1000.0;
        let cursor = self.cursor.get_value();
        if let Some(cursor) = cursor {
            if self.parked.get_value() || (quiet && self.connection.with_value(Option::is_some)) {
                self.connect(cursor);
            }
        }
    }

    /// Call when the tab is hidden: after a while, let go of the connection.
    pub fn on_hidden(self) {
        set_timeout(
            move || {
                if is_hidden() && self.cursor.try_with_value(Option::is_some) == Some(true) {
                    self.disconnect();
                    self.parked.try_set_value(true);
                }
            },
            PARK_HIDDEN_AFTER,
        );
    }

    /// Token and cost totals of the replies on screen: (input, output, cost, any estimated).
    /// The conversation's figures: those of the messages shown, and of the older ones not loaded.
    pub fn totals(&self) -> (u64, u64, Option<f64>, bool) {
        let older = self.older_totals.get();
        self.messages.with(|messages| {
            let mut totals = (
                older.input_tokens,
                older.output_tokens,
                older.cost_usd,
                older.estimated,
            );
            for entry in messages {
                entry.outcome.with(|o| {
                    if let Some(usage) = o.usage {
                        totals.0 += u64::from(usage.input_tokens);
                        totals.1 += u64::from(usage.output_tokens);
                    }
                    if let Some(cost) = o.cost_usd {
                        totals.2 = Some(totals.2.unwrap_or(0.0) + cost);
                    }
                    totals.3 |= o.usage_estimated;
                });
            }
            totals
        })
    }

    /// Whether `entry` is the conversation's last reply (only that one can be continued).
    pub fn is_last_reply(&self, entry: &ChatEntry) -> bool {
        self.messages
            .try_with(|m| {
                m.iter()
                    .rev()
                    .find(|e| e.role == Role::Assistant)
                    .map(|e| e.key)
            })
            .flatten()
            == Some(entry.key)
    }

    /// Call on every scroll of the message list (the reader's and our own).
    pub fn on_scroll(&self) {
        if let Some(el) = self.scroller.get_untracked() {
            let distance = el.scroll_height() - el.scroll_top() - el.client_height();
            let following = distance <= FOLLOW_THRESHOLD_PX;
            self.following.set_value(following);
            if self.detached.get_untracked() == following {
                self.detached.set(!following);
            }
        }
    }

    /// "Jump to latest": back to the newest text, following it again.
    pub fn jump_to_latest(&self) {
        self.following.set_value(true);
        self.detached.set(false);
        self.scroll_to_bottom();
    }

    /// Puts the cursor in the composer once the DOM is there (a new page, New chat).
    pub fn focus_composer(&self) {
        let composer = self.composer;
        request_animation_frame(move || {
            if let Some(Some(el)) = composer.try_get_untracked() {
                let _ = el.focus();
            }
        });
    }

    /// After a turn, the composer gets the cursor back unless the reader put it somewhere else
    /// (the Stop button it was on is gone, which leaves focus nowhere).
    fn return_focus(&self) {
        let nowhere = document().active_element().is_none_or(|el| {
            el.tag_name() == "BODY" || el.closest(".composer").ok().flatten().is_some()
        });
        if nowhere {
            self.focus_composer();
        }
    }

    /// Keeps the newest text in view while the reader is near the bottom: called when text
    /// arrives and again when it has been rendered (the markdown renderer may be a frame later).
    pub fn follow_new_text(&self) {
        // A reader selecting text keeps their place: the list moves again once they let go.
        if self.following.try_get_value() == Some(true) && !self.selecting() {
            self.scroll_to_bottom();
        }
    }

    /// Call when a pointer goes down on the list (`true`) and when it is let go anywhere.
    pub fn set_holding(&self, holding: bool) {
        self.holding.try_set_value(holding);
        if !holding {
            self.follow_new_text();
        }
    }

    /// Whether the reader is selecting, or has selected, text in the message list.
    fn selecting(&self) -> bool {
        if self.holding.try_get_value() == Some(true) {
            return true;
        }
        let Some(Some(list)) = self.scroller.try_get_untracked() else {
            return false;
        };
        let Some(selection) = web_sys::window().and_then(|w| w.get_selection().ok().flatten())
        else {
            return false;
        };
        !selection.is_collapsed()
            && selection
                .anchor_node()
                .is_some_and(|node| list.contains(Some(&node)))
    }

    /// Scrolls after the DOM has taken the new text, unless the reader scrolled away meanwhile.
    fn scroll_to_bottom(&self) {
        let state = *self;
        // `try_`: the page may have left this conversation before the frame.
        request_animation_frame(move || {
            // Asked again: the reader may have started selecting since the frame was asked for.
            if state.selecting() {
                return;
            }
            if let (Some(true), Some(Some(el))) = (
                state.following.try_get_value(),
                state.scroller.try_get_untracked(),
            ) {
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

/// Resolves after `duration` (a browser timer).
async fn sleep(duration: Duration) {
    let (done, wait) = futures::channel::oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = done.send(());
        },
        duration,
    );
    let _ = wait.await;
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

fn is_hidden() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.hidden())
}

/// Random bytes from the browser's CSPRNG.
fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    let crypto = web_sys::window()?.crypto().ok()?;
    crypto.get_random_values_with_u8_array(&mut bytes).ok()?;
    Some(bytes)
}

/// A number in [0, 1).
fn random_fraction() -> f64 {
    random_bytes::<2>().map_or(0.5, |b| f64::from(u16::from_le_bytes(b)) / 65_536.0)
}

/// A random (v4) id from the browser's CSPRNG, which unlike `crypto.randomUUID` also exists on
/// plain-http LAN addresses.
fn new_turn_id() -> Option<Uuid> {
    random_bytes::<16>().map(|bytes| uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// Changes the address bar without a router navigation, which would reload the page's data
/// mid-stream.
fn set_address(path: &str) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ =
            history.replace_state_with_url(&leptos::wasm_bindgen::JsValue::NULL, "", Some(path));
    }
}
