//! The page's client state: the conversation on screen, and sending, steering and continuing
//! its turns. The connection (`connection.rs`) hands it what the server says, line by line, and
//! this gives the lines their meaning; following new text is `follow.rs`.

use leptos::html::Textarea;
use leptos::prelude::*;
use leptos::task::spawn_local;
use uuid::Uuid;

use super::browser::{new_turn_id, set_address};
use super::connection::{Connection, Heard, Listener};
use super::cursor::Cursor;
use super::files::PendingFile;
use super::follow::Follow;
use super::loaded::{Answer, Loaded, Unreadable};
use super::on_demand::{self, Act};
use super::remembered;
use super::windows::{self, Dropped, Window, HELD_WINDOWS};
use crate::api::conversations::{get_conversation, switch_branch};
use crate::api::turns::stop_turn;
use crate::error::ApiError;
use crate::model::attachments::AttachmentView;
use crate::model::{
    ConversationView, MessageStatus, MessageView, Outcome, PromptRevision, Role, SendRequest,
    Totals, TurnEvent,
};

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
    /// A question's files.
    pub attachments: StoredValue<Vec<AttachmentView>>,
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
            attachments: StoredValue::new(m.attachments),
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
            attachments: StoredValue::new(Vec::new()),
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

#[derive(Clone, Copy)]
pub struct ChatState {
    pub conversation_id: RwSignal<Option<Uuid>>,
    pub messages: RwSignal<Vec<ChatEntry>>,
    pub writing: RwSignal<Option<Writing>>,
    /// Set while Stop waits for the server to confirm.
    pub stopping: RwSignal<bool>,
    /// A Stop pressed before the server acknowledged the turn's request: it goes out with the
    /// turn's first event, so that it can never arrive before the turn it stops.
    stop_when_heard: StoredValue<Option<Uuid>>,
    /// The page's one connection to the server.
    pub connection: Connection,
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
    /// the newest ones); scrolling near the top, or "Show earlier messages", asks for them.
    pub older_before: RwSignal<Option<u32>>,
    /// The figures of those older messages, for the conversation's totals.
    pub older_totals: RwSignal<Totals>,
    pub loading_older: RwSignal<bool>,
    /// Newer windows the page let go of while the reader was further up (`windows.rs`), the
    /// nearest last: scrolling down asks for them again.
    pub newer: RwSignal<Vec<Dropped>>,
    pub loading_newer: RwSignal<bool>,
    /// While newer windows are let go of: the conversation's last turn the page knows of.
    latest_turn: StoredValue<Option<Uuid>>,
    /// The windows the page holds, oldest first; the entries of each live as long as it does.
    windows: StoredValue<Vec<Window>>,
    /// Counts what the page has shown (a conversation, another branch, a new chat): an answer
    /// for something shown before is dropped.
    shown_count: StoredValue<u64>,
    /// For a conversation not yet started: the system prompt set in its settings (`None`: the
    /// server's default).
    pub new_system_prompt: RwSignal<Option<String>>,
    pub settings_open: RwSignal<bool>,
    /// The question being edited in place (its entry's key).
    pub editing: RwSignal<Option<Uuid>>,
    /// Bumped when the list of conversations changed (a new one started, a title arrived).
    pub conversations_changed: RwSignal<u32>,
    /// The conversation's title as the server last named it (loaded, or a stream's title line:
    /// a model's title from the first exchange arrives that way).
    pub title: RwSignal<Option<String>>,
    /// Set when a conversation was shown and the page should start following it.
    pub needs_attach: RwSignal<bool>,
    /// The message list, scrolled along as new text arrives.
    pub follow: Follow,
    pub composer: NodeRef<Textarea>,
    /// On a narrow screen: the conversation list is shown over the chat.
    pub menu_open: RwSignal<bool>,
    /// Files attached to the message being written (`files.rs`).
    pub files: RwSignal<Vec<PendingFile>>,
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
            stop_when_heard: StoredValue::new(None),
            connection: Connection::new(),
            notice: RwSignal::new(None),
            draft: RwSignal::new(String::new()),
            model: RwSignal::new(None),
            system_prompt: RwSignal::new(String::new()),
            prompt_revisions: RwSignal::new(Vec::new()),
            older_before: RwSignal::new(None),
            older_totals: RwSignal::new(Totals::default()),
            loading_older: RwSignal::new(false),
            newer: RwSignal::new(Vec::new()),
            loading_newer: RwSignal::new(false),
            latest_turn: StoredValue::new(None),
            windows: StoredValue::new(Vec::new()),
            shown_count: StoredValue::new(0),
            new_system_prompt: RwSignal::new(None),
            settings_open: RwSignal::new(false),
            editing: RwSignal::new(None),
            conversations_changed: RwSignal::new(0),
            title: RwSignal::new(None),
            needs_attach: RwSignal::new(false),
            follow: Follow::new(),
            composer: NodeRef::new(),
            menu_open: RwSignal::new(false),
            files: RwSignal::new(Vec::new()),
            page: StoredValue::new(Owner::current()),
            shown: StoredValue::new(None),
        }
    }

    pub fn is_streaming(&self) -> bool {
        self.writing.try_with(Option::is_some).unwrap_or(false)
    }

    /// Takes what the page's resource loaded: an error or a new chat is shown here; a
    /// conversation is returned for the conversation's file to show (`show_loaded`), unless it
    /// is the one already on screen. `found`: opened at a message (a search result), shown again
    /// even if it is on screen.
    pub fn show(&self, loaded: Answer, found: bool) -> Option<Loaded> {
        match loaded {
            Ok(Some(conversation)) => {
                let id = Some(conversation.glance.id);
                (found || id != self.conversation_id.try_get_untracked().flatten())
                    .then_some(conversation)
            }
            Ok(None) => {
                self.begin_showing();
                None
            }
            Err(ApiError::NotFound(_)) => {
                self.reset();
                self.notice.set(Some(
                    "That conversation does not exist. Start a new one below.".into(),
                ));
                None
            }
            Err(e) => {
                self.notice
                    .set(Some(format!("Could not load the conversation: {e}")));
                None
            }
        }
    }

    /// Shows a conversation loaded for the page (in the conversation's file: it reads it).
    pub fn show_loaded(&self, conversation: Loaded) {
        match conversation.read() {
            Ok(view) => self.display(Some(view)),
            Err(Unreadable) => {
                self.reset();
                self.notice.set(Some(
                    "Could not read the conversation. Reload the page to try again.".into(),
                ));
            }
        }
    }

    /// Empties the page for what is shown next, under a fresh owner for its entries.
    fn begin_showing(&self) {
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
    }

    /// Replaces what the page shows with `conversation` (`None`: a new one).
    fn display(&self, conversation: Option<ConversationView>) {
        self.begin_showing();
        let Some(conversation) = conversation else {
            return;
        };
        let window = self.new_window(None, &conversation);
        change(self.conversation_id, Some(conversation.id));
        change(self.title, Some(conversation.title.clone()));
        change(self.model, Some(conversation.model.clone()));
        change(self.system_prompt, conversation.system_prompt);
        change(self.prompt_revisions, conversation.system_prompts);
        change(self.older_before, conversation.older_before);
        change(self.older_totals, conversation.older_totals);
        let entries: Vec<ChatEntry> = window.owner.with(|| {
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
        self.windows
            .try_update_value(|windows| windows.push(window));
    }

    /// A window for the entries of `view`, loaded with `before` as `key`; owned by what is shown.
    fn new_window(&self, key: Option<u32>, view: &ConversationView) -> Window {
        let owner = self
            .shown
            .try_with_value(|shown| shown.as_ref().map(Owner::child))
            .flatten()
            .unwrap_or_default();
        Window {
            owner,
            key,
            older_before: view.older_before,
            older_totals: view.older_totals,
            first: view.messages.first().map(|m| m.id),
        }
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
        self.follow.show_latest();
        let from_turn = self.last_turn();
        self.connection.connect(
            self,
            Cursor::Watch {
                conversation_id,
                from_turn,
            },
        );
    }

    /// Empties the page for a new conversation. A turn still streaming keeps running on the
    /// server; only this page stops reading it.
    pub fn reset(&self) {
        self.connection.close();
        // Only what differs is written: on the server a page starts empty, and other parts of
        // it may be reading these signals on another thread meanwhile (ARCHITECTURE.md).
        if self.writing.try_with_untracked(Option::is_some) == Some(true) {
            self.writing.set(None);
        }
        if self.messages.try_with_untracked(Vec::is_empty) == Some(false) {
            self.messages.set(Vec::new());
        }
        change(self.stopping, false);
        self.stop_when_heard.try_set_value(None);
        change(self.conversation_id, None);
        change(self.notice, None);
        change(self.follow.detached, false);
        change(self.menu_open, false);
        change(self.system_prompt, String::new());
        change(self.prompt_revisions, Vec::new());
        change(self.older_before, None);
        change(self.older_totals, Totals::default());
        change(self.loading_older, false);
        change(self.newer, Vec::new());
        change(self.loading_newer, false);
        self.shown_count.try_update_value(|n| *n += 1);
        change(self.new_system_prompt, None);
        change(self.settings_open, false);
        change(self.editing, None);
        change(self.title, None);
        // Their entries go with them, now that the list no longer has them.
        let _gone = self.windows.try_update_value(std::mem::take);
    }

    /// New chat: an empty page with the new conversation's draft and the model chosen last.
    pub fn start_new(self) {
        self.reset();
        self.attach();
        self.focus_composer();
    }

    /// Sends `text` as a new turn and streams the reply into the list.
    pub fn send(self, text: String) {
        // A new turn goes after the newest: bring it back first if the page let it go.
        if self.newer.with_untracked(Vec::is_empty) {
            self.start_turn(text, None);
        } else {
            on_demand::act(self, Act::SendAtLatest(text));
        }
    }

    /// Brings the newest messages back, then sends `text` (in the conversation's file).
    pub fn send_at_latest(self, text: String) {
        self.reload_then(move |state| state.start_turn(text, None));
    }

    /// "Jump to latest": the newest text, brought back first if the page let it go.
    pub fn jump_to_latest(self) {
        if self.newer.with_untracked(Vec::is_empty) {
            self.follow.jump_to_latest();
        } else {
            on_demand::act(self, Act::Latest);
        }
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
    pub fn reload(self) {
        self.reload_then(|_| ());
    }

    /// Loads the conversation afresh at its newest messages, follows it again, and then does
    /// `then`.
    fn reload_then(self, then: impl FnOnce(ChatState) + 'static) {
        let Some(conversation_id) = self.conversation_id.get_untracked() else {
            return;
        };
        self.connection.disconnect();
        spawn_local(async move {
            match get_conversation(conversation_id, None).await {
                Ok(view) => {
                    if self.conversation_id.try_get_untracked() == Some(Some(conversation_id)) {
                        self.display(Some(view));
                        // Attached here, before `then` (a send would otherwise be replaced by
                        // the page's own attaching, which follows).
                        self.needs_attach.set(false);
                        self.attach();
                        then(self);
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
        // An alternative takes the old turn's place: it and what followed leave the screen
        // (first, so that the new entries belong to a window that stays).
        let replaced = alternative_to.and_then(|t| self.question_of(t).map(|old| (t, old)));
        let mut gone = Vec::new();
        if let Some((_, old)) = replaced {
            self.messages.update(|m| {
                if let Some(place) = m.iter().position(|e| e.key == old.key) {
                    m.truncate(place);
                }
            });
            gone = self.forget_windows_after_branch();
        }
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
        // A new question carries the composer's files; an edit or a regeneration keeps those of
        // the question it replaces.
        let files = match replaced {
            Some((_, old)) => old.attachments.get_value(),
            None => {
                let files = self
                    .files
                    .get_untracked()
                    .iter()
                    .filter_map(PendingFile::ready)
                    .collect();
                self.files.set(Vec::new());
                files
            }
        };
        let attachments = files.iter().map(|f| f.id).collect();
        question.attachments.set_value(files);
        if let Some((replaced, old)) = replaced {
            let mut family = old.alternatives.get_untracked();
            if family.is_empty() {
                family.push(replaced);
            }
            family.push(turn_id);
            question.alternatives.set(family);
            question.parent_turn.set_value(old.parent_turn.get_value());
        } else {
            question.parent_turn.set_value(self.last_turn());
        }
        self.messages.update(|m| {
            m.push(question);
            m.push(reply);
        });
        drop(gone);
        self.writing.set(Some(Writing { turn_id, reply }));
        // Sending is a request to see the reply.
        self.follow.show_latest();
        let request = SendRequest {
            turn_id,
            conversation_id: self.conversation_id.get_untracked(),
            text,
            model: self.model.get_untracked(),
            system_prompt: self.new_system_prompt.get_untracked(),
            alternative_to,
            attachments,
        };
        self.connection.connect(self, Cursor::Send(request));
    }

    /// Puts the conversation's earlier messages above those shown, keeping what the reader sees
    /// where it is.
    pub fn show_older(self) {
        let (Some(id), Some(before)) = (
            self.conversation_id.get_untracked(),
            self.older_before.get_untracked(),
        ) else {
            return;
        };
        if self.loading_window() {
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
                    let reading = self.follow.reading();
                    let window = self.new_window(Some(before), &page);
                    let older: Vec<ChatEntry> = window.owner.with(|| {
                        page.messages
                            .into_iter()
                            .map(ChatEntry::from_view)
                            .collect()
                    });
                    self.messages.update(|shown| {
                        let newer = std::mem::replace(shown, older);
                        shown.extend(newer);
                    });
                    self.windows
                        .update_value(|windows| windows.insert(0, window));
                    self.learn_revisions(page.system_prompts);
                    self.older_before.set(page.older_before);
                    self.older_totals.set(page.older_totals);
                    self.let_go_of_newest();
                    // Once the earlier messages are laid out, the same message stays in view.
                    if let Some(place) = reading {
                        self.follow.keep(place);
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

    /// Puts the next newer window the page let go of back below those shown; the reader's
    /// place holds.
    pub fn show_newer(self) {
        let (Some(id), Some(next)) = (
            self.conversation_id.get_untracked(),
            self.newer.with_untracked(|newer| newer.last().copied()),
        ) else {
            return;
        };
        if self.loading_window() {
            return;
        }
        self.loading_newer.set(true);
        let shown = self.shown_count.get_value();
        spawn_local(async move {
            let loaded = get_conversation(id, next.key).await;
            if self.shown_count.try_get_value() != Some(shown) {
                return;
            }
            self.loading_newer.try_set(false);
            // An edit replaced the end of the branch meanwhile: what was asked for is gone.
            if self
                .newer
                .try_with_untracked(|newer| newer.last() != Some(&next))
                != Some(false)
            {
                return;
            }
            let page = match loaded {
                Ok(page) => page,
                Err(e) => {
                    self.notice
                        .try_set(Some(format!("Could not load later messages: {e}")));
                    return;
                }
            };
            // The newest window may have grown while it was away (turns from another tab): it
            // follows the page's last turn, or the page starts again from the newest.
            let follows = page
                .messages
                .first()
                .is_some_and(|m| m.parent_turn_id == self.last_turn());
            if !follows {
                self.reload();
                return;
            }
            let reading = self.follow.reading();
            let window = self.new_window(next.key, &page);
            let newer: Vec<ChatEntry> = window.owner.with(|| {
                page.messages
                    .into_iter()
                    .map(ChatEntry::from_view)
                    .collect()
            });
            let writing = newer
                .iter()
                .rev()
                .find(|e| e.role == Role::Assistant && e.is_streaming_untracked())
                .copied();
            self.messages.update(|shown| shown.extend(newer));
            self.windows.update_value(|windows| windows.push(window));
            self.newer.update(|newer| {
                newer.pop();
            });
            self.learn_revisions(page.system_prompts);
            self.let_go_of_oldest();
            if let Some(place) = reading {
                self.follow.keep(place);
            }
            // A reply another tab is writing: follow it from here on, as when the page opened.
            if let (Some(reply), Some(turn_id)) =
                (writing, writing.and_then(|w| w.turn_id.get_value()))
            {
                self.writing.set(Some(Writing { turn_id, reply }));
                self.connection.connect(
                    self,
                    Cursor::Watch {
                        conversation_id: id,
                        from_turn: Some(turn_id),
                    },
                );
            }
        });
    }

    /// One window at a time, either way: each changes the other end of what the page holds.
    fn loading_window(&self) -> bool {
        self.loading_older.get_untracked() || self.loading_newer.get_untracked()
    }

    /// Adds system prompt revisions that came with a window to those the page knows.
    fn learn_revisions(&self, revisions: Vec<PromptRevision>) {
        self.prompt_revisions.update(|known| {
            for revision in revisions {
                if known.iter().all(|k| k.revision != revision.revision) {
                    known.push(revision);
                }
            }
            known.sort_by_key(|r| r.revision);
        });
    }

    /// Lets go of the newest windows beyond [`HELD_WINDOWS`] (the reader went up), remembering
    /// how to ask for them again. Not while a reply is being written: it is in the newest.
    fn let_go_of_newest(&self) {
        while self.windows.with_value(Vec::len) > HELD_WINDOWS && !self.is_streaming() {
            let first = self.windows.with_value(|w| w.last().map(|w| w.first));
            let start = first.and_then(|first| {
                self.messages
                    .with_untracked(|m| windows::start_of(m.iter().map(|e| e.key), first))
            });
            let Some(start) = start else {
                return;
            };
            let Some(window) = self.windows.try_update_value(Vec::pop).flatten() else {
                return;
            };
            if self.newer.with_untracked(Vec::is_empty) {
                self.latest_turn.set_value(self.last_turn());
            }
            let mut totals = Totals::default();
            self.messages.update(|m| {
                for entry in m.drain(start..) {
                    entry
                        .outcome
                        .with_untracked(|o| windows::add(&mut totals, o));
                }
            });
            self.newer.update(|newer| {
                newer.push(Dropped {
                    key: window.key,
                    totals,
                })
            });
            // `window` goes here, and its entries with it.
        }
    }

    /// Lets go of the oldest windows beyond [`HELD_WINDOWS`] (the reader went down); the
    /// oldest held then says how to ask for them again (`older_before`).
    fn let_go_of_oldest(&self) {
        while self.windows.with_value(Vec::len) > HELD_WINDOWS {
            let second = self.windows.with_value(|w| w.get(1).map(|w| w.first));
            let end = second.and_then(|first| {
                self.messages
                    .with_untracked(|m| windows::start_of(m.iter().map(|e| e.key), first))
            });
            let Some(end) = end else {
                return;
            };
            let _gone = self.windows.try_update_value(|w| w.remove(0));
            self.messages.update(|m| {
                m.drain(..end);
            });
            if let Some((before, totals)) = self
                .windows
                .with_value(|w| w.first().map(|w| (w.older_before, w.older_totals)))
            {
                self.older_before.set(before);
                self.older_totals.set(totals);
            }
        }
    }

    /// After an edit or a regeneration replaced the end of the branch: the windows that went
    /// with it (to be dropped once the list no longer has them), and newer ones are gone too.
    fn forget_windows_after_branch(&self) -> Vec<Window> {
        self.newer.set(Vec::new());
        let keys: Vec<Uuid> = self
            .messages
            .with_untracked(|m| m.iter().map(|e| e.key).collect());
        self.windows
            .try_update_value(|windows| {
                let (kept, gone) = std::mem::take(windows)
                    .into_iter()
                    .partition(|w| windows::start_of(keys.iter().copied(), w.first).is_some());
                *windows = kept;
                gone
            })
            .unwrap_or_default()
    }

    /// Runs `make` with the newest window's owner (or the shown conversation's), so that what
    /// it creates lives as long as it is on screen (not as long as the component whose event
    /// made it).
    fn in_shown<T>(&self, make: impl FnOnce() -> T) -> T {
        let newest = self
            .windows
            .try_with_value(|w| w.last().map(|w| w.owner.clone()))
            .flatten();
        match newest.or_else(|| self.shown.try_get_value().flatten()) {
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
        let (Some(turn_id), Some(conversation_id)) = (
            reply.turn_id.get_value(),
            self.conversation_id.get_untracked(),
        ) else {
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
        self.connection.connect(
            self,
            Cursor::Continue {
                conversation_id,
                turn_id,
                from_run: reply.run.get_value(),
                before,
            },
        );
    }

    /// Asks the server to stop the reply being written. Text keeps arriving until the server
    /// confirms (those are tokens it had already sent), so the page ends with exactly the text
    /// that was stored; the stream carries the ending, in every tab.
    pub fn stop(self) {
        let Some(writing) = self.writing.get_untracked() else {
            return;
        };
        self.stopping.set(true);
        if self.connection.awaits_acknowledgement() {
            self.stop_when_heard.set_value(Some(writing.turn_id));
        } else {
            self.send_stop(writing.turn_id);
        }
    }

    fn send_stop(self, turn_id: Uuid) {
        spawn_local(async move {
            if let Err(e) = stop_turn(turn_id).await {
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

    /// Call when the network comes back or the tab is shown again (see [`Connection::on_back`]).
    pub fn on_back(self) {
        self.connection.on_back(self);
    }

    /// The reply the events of `turn_id` build: the one being written (this page's own, or one
    /// the conversation's stream announced).
    fn reply_to(&self, turn_id: Uuid) -> Option<ChatEntry> {
        self.writing
            .with_untracked(|w| w.filter(|w| w.turn_id == turn_id).map(|w| w.reply))
    }

    /// A turn the server announced: update the entries the page has for it, or add them.
    fn announce(&self, user: MessageView, reply: MessageView) {
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
        let entry = match (
            find(Role::User, user.id, turn_id),
            find(Role::Assistant, reply.id, turn_id),
        ) {
            (Some(_), Some(entry)) => {
                entry.update_from(reply);
                entry
            }
            // The page let go of the newest windows: the turn is there when they come back.
            _ if !self.newer.with_untracked(Vec::is_empty) => {
                self.latest_turn.set_value(Some(turn_id));
                return;
            }
            _ if user.parent_turn_id != self.last_turn() => {
                // A turn on another branch (an edit or a regeneration in another tab): the
                // page shows that branch now.
                self.reload();
                return;
            }
            _ => {
                let (user, entry) =
                    self.in_shown(|| (ChatEntry::from_view(user), ChatEntry::from_view(reply)));
                self.messages.update(|m| {
                    m.push(user);
                    m.push(entry);
                });
                self.follow.new_text();
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
    }

    fn apply(&self, reply: &ChatEntry, event: TurnEvent) {
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
                }
            }
            TurnEvent::Queued { ahead } => reply.queued.set(Some(ahead)),
            TurnEvent::Delta { text } => {
                reply.queued.set(None);
                reply.content.update(|c| c.push_str(&text));
                self.follow.new_text();
            }
            TurnEvent::Thinking { text } => {
                reply.queued.set(None);
                reply.thinking.update(|t| t.push_str(&text));
                self.follow.new_text();
            }
            TurnEvent::Finished(outcome) => {
                reply.queued.set(None);
                reply.outcome.set(outcome);
                self.writing.set(None);
                self.stopping.set(false);
                self.return_focus();
            }
        }
    }

    /// Token and cost totals of the replies on screen: (input, output, cost, any estimated).
    /// The conversation's figures: those of the messages shown, and of the older ones not loaded.
    pub fn totals(&self) -> (u64, u64, Option<f64>, bool) {
        let away = self.newer.with(|newer| {
            newer.iter().fold(self.older_totals.get(), |all, w| {
                windows::sum(all, w.totals)
            })
        });
        let totals = self.messages.with(|messages| {
            let mut totals = away;
            for entry in messages {
                entry.outcome.with(|o| windows::add(&mut totals, o));
            }
            totals
        });
        (
            totals.input_tokens,
            totals.output_tokens,
            totals.cost_usd,
            totals.estimated,
        )
    }

    /// Whether `entry` is the conversation's last reply (only that one can be continued).
    pub fn is_last_reply(&self, entry: &ChatEntry) -> bool {
        self.newer.try_with(Vec::is_empty) == Some(true)
            && self
                .messages
                .try_with(|m| {
                    m.iter()
                        .rev()
                        .find(|e| e.role == Role::Assistant)
                        .map(|e| e.key)
                })
                .flatten()
                == Some(entry.key)
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
}

/// The meaning of what the connection hears.
impl Listener for ChatState {
    fn heard(&self, heard: Heard) {
        match heard {
            // The server has the message: its draft is no longer needed.
            Heard::Accepted(sent) => {
                remembered::forget_sent_draft(sent.conversation_id, &sent.text)
            }
            Heard::Turn { user, reply } => self.announce(*user, *reply),
            // A new title (or the first the page hears of a new conversation's): the list and
            // the tab take it up.
            Heard::Title(title) => {
                if self.title.get_untracked().as_deref() != Some(title.as_str()) {
                    self.title.set(Some(title));
                    self.conversations_changed.update(|n| *n += 1);
                }
            }
            Heard::Event { turn_id, event } => {
                let finished = matches!(event, TurnEvent::Finished(_));
                if let Some(reply) = self.reply_to(turn_id) {
                    self.apply(&reply, event);
                }
                if self.stop_when_heard.get_value() == Some(turn_id) {
                    self.stop_when_heard.set_value(None);
                    if !finished {
                        self.send_stop(turn_id);
                    }
                }
            }
        }
    }

    /// Takes back what the refused request was for, and says why.
    fn refused(&self, cursor: &Cursor, error: ApiError) {
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
            }
        }
        self.writing.set(None);
        self.stopping.set(false);
        self.stop_when_heard.set_value(None);
    }

    fn last_turn(&self) -> Option<Uuid> {
        if self.newer.with_untracked(Vec::is_empty) {
            ChatState::last_turn(self)
        } else {
            self.latest_turn.get_value()
        }
    }
}

impl Default for ChatState {
    fn default() -> Self {
        Self::new()
    }
}
