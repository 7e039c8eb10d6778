//! The page's one connection to the server: a loop that follows either the turn this page started
//! or the conversation (turns started in other tabs), and re-attaches by itself after a dropped
//! connection, from the last event seen. It does the framing and the cursor (`cursor.rs`); what
//! the lines mean is the page's ([`Listener`]), as mini-redis splits `Connection` and `Handler`.

use futures::future::{AbortHandle, Abortable, Either};
use futures::StreamExt;
use leptos::prelude::*;
use leptos::task::spawn_local;
use server_fn::codec::ByteStream;
use uuid::Uuid;

use super::browser::{is_hidden, now_ms, random_fraction, sleep};
use super::cursor::{
    failures_after_loss, missed_heartbeat, retry_wait, Cursor, Request, SILENCE_LIMIT,
};
use super::on_demand::{self, NotLoaded};
use super::state::ChatState;
use crate::api::turns::{continue_reply, conversation_events, send_message, turn_events};
use crate::error::ApiError;
use crate::model::{ndjson, MessageView, SendRequest, StreamLine, TurnEvent};

/// A hidden tab lets go of its connection after this long (browsers allow six per server), and
/// takes it up again when shown.
const PARK_HIDDEN_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// The state of the page's connection to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Connected, or not needed.
    Up,
    /// Lost; trying again by itself.
    Reconnecting,
}

/// What the connection hands the page, line by line.
pub enum Heard {
    /// The server has this page's message (the first event of its turn came back).
    Accepted(SendRequest),
    /// The conversation's stream announced a turn; while it is being written its events follow.
    Turn {
        user: Box<MessageView>,
        reply: Box<MessageView>,
    },
    /// An event of the reply to `turn_id`: this page's own turn, or the one announced last.
    Event { turn_id: Uuid, event: TurnEvent },
    /// The conversation's title, as the server has it now.
    Title(String),
}

/// What the lines mean: the page's side of the connection.
pub trait Listener: Copy + 'static {
    fn heard(&self, heard: Heard);
    /// The server refused `cursor`'s request, for a reason trying again will not change: say so
    /// where it belongs.
    fn refused(&self, cursor: &Cursor, error: ApiError);
    /// The last turn the page has, as far as the server has named it; following the
    /// conversation picks up after it.
    fn last_turn(&self) -> Option<Uuid>;
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
pub struct Connection {
    /// Shown in the header while it is not `Up`.
    pub link: RwSignal<Link>,
    cursor: StoredValue<Option<Cursor>>,
    /// Ends the running connection loop.
    running: StoredValue<Option<AbortHandle>>,
    /// Cuts a reconnection wait short (the network came back, the tab was shown).
    wake: StoredValue<Option<futures::channel::oneshot::Sender<()>>>,
    /// When the last line arrived (ms since the page loaded), to spot a dead connection.
    last_line_at: StoredValue<f64>,
    /// The connection was let go while the tab was hidden.
    parked: StoredValue<bool>,
}

impl Connection {
    pub fn new() -> Self {
        Self {
            link: RwSignal::new(Link::Up),
            cursor: StoredValue::new(None),
            running: StoredValue::new(None),
            wake: StoredValue::new(None),
            last_line_at: StoredValue::new(0.0),
            parked: StoredValue::new(false),
        }
    }

    /// Ends the running loop; also when the page goes (its signals go with it).
    pub fn disconnect(&self) {
        if let Some(handle) = self.running.try_update_value(Option::take).flatten() {
            handle.abort();
        }
    }

    /// Ends the loop and forgets where it was: the page shows something else. Also runs on the
    /// server, where only what differs is written (ARCHITECTURE.md).
    pub fn close(&self) {
        self.disconnect();
        self.cursor.try_set_value(None);
        if self.link.try_with_untracked(|link| *link != Link::Up) == Some(true) {
            self.link.set(Link::Up);
        }
    }

    /// Whether the request running is a send or Continue the server has not acknowledged yet.
    pub fn awaits_acknowledgement(&self) -> bool {
        self.cursor
            .with_value(|c| c.as_ref().is_some_and(Cursor::awaits_acknowledgement))
    }

    /// Replaces the running loop with one that starts at `cursor` and tells `page` what it hears.
    /// The loop (and the reading of the lines) is its own WASM file, fetched when the page first
    /// connects (`on_demand.rs`); a failed fetch is a lost connection, tried again the same way.
    pub fn connect(self, page: ChatState, cursor: Cursor) {
        self.disconnect();
        self.parked.set_value(false);
        self.cursor.set_value(Some(cursor));
        let (handle, registration) = AbortHandle::new_pair();
        self.running.set_value(Some(handle));
        spawn_local(async move {
            let following = async move {
                let mut failures: u32 = 0;
                let run = loop {
                    match on_demand::follow(self, page).await {
                        Ok(run) => break run,
                        Err(NotLoaded) => {
                            failures = failures_after_loss(failures, false);
                            self.link.set(Link::Reconnecting);
                            self.wait_before_retry(failures).await;
                        }
                    }
                };
                run.await;
            };
            let _ = Abortable::new(following, registration).await;
        });
    }

    /// Call when the network comes back or the tab is shown again: reconnect now, and take up a
    /// connection that was let go or that went quiet while the tab was away.
    pub fn on_back(self, page: ChatState) {
        if let Some(wake) = self.wake.try_update_value(Option::take).flatten() {
            let _ = wake.send(());
        }
        let quiet = missed_heartbeat(now_ms(), self.last_line_at.get_value());
        let cursor = self.cursor.get_value();
        if let Some(cursor) = cursor {
            if self.parked.get_value() || (quiet && self.running.with_value(Option::is_some)) {
                self.connect(page, cursor);
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

    /// The loop: one request at a time, following the cursor, until the page leaves this
    /// conversation or the server refuses for good.
    pub(super) async fn run(self, page: impl Listener) {
        let mut failures: u32 = 0;
        loop {
            let Some(cursor) = self.cursor.get_value() else {
                return;
            };
            match self.follow(page, &cursor).await {
                Ended::TurnDone => {
                    failures = 0;
                    self.link.set(Link::Up);
                }
                Ended::Refused(error) if !error.is_transient() => {
                    self.link.set(Link::Up);
                    page.refused(&cursor, error);
                    // If the conversation itself is gone, following it is refused in turn, and
                    // that ends it.
                    let next = cursor.after_refusal(|| page.last_turn());
                    let follow = next.is_some();
                    self.cursor.set_value(next);
                    if !follow {
                        return;
                    }
                    failures = 0;
                }
                ended => {
                    let heard = matches!(ended, Ended::Lost { heard: true });
                    failures = failures_after_loss(failures, heard);
                    self.link.set(Link::Reconnecting);
                    self.wait_before_retry(failures).await;
                }
            }
        }
    }

    /// One request and its stream, read to the end.
    async fn follow(self, page: impl Listener, cursor: &Cursor) -> Ended {
        let response = match cursor.request() {
            Request::Send(request) => send_message(request).await,
            Request::Continue { turn_id, from_run } => continue_reply(turn_id, from_run).await,
            Request::TurnEvents {
                turn_id,
                run,
                after_seq,
            } => turn_events(turn_id, run, after_seq).await,
            Request::ConversationEvents {
                conversation_id,
                from_turn,
            } => conversation_events(conversation_id, from_turn).await,
        };
        match response {
            Ok(stream) => {
                self.link.set(Link::Up);
                self.read(page, stream, cursor).await
            }
            Err(error) => Ended::Refused(error),
        }
    }

    /// Hands the page every line of one stream, moving the cursor past each; says how the
    /// stream ended. A turn's own stream ends with its `Finished`; a conversation's stream goes
    /// on to the next turn.
    async fn read(
        self,
        page: impl Listener,
        stream: ByteStream<ApiError>,
        cursor: &Cursor,
    ) -> Ended {
        let watching = cursor.is_watch();
        let mut lines = std::pin::pin!(ndjson::lines(stream.into_inner()));
        // The turn the events belong to: this page's own, or the one announced last.
        let mut followed = cursor.own_turn();
        let mut heard = false;
        loop {
            self.last_line_at.set_value(now_ms());
            let next = futures::future::select(lines.next(), Box::pin(sleep(SILENCE_LIMIT)));
            let line = match next.await {
                Either::Left((Some(Ok(line)), _)) => line,
                // Ended, broken, garbled, or silent past every heartbeat: the connection is gone.
                Either::Left((None | Some(Err(_)), _)) | Either::Right(_) => {
                    return Ended::Lost { heard };
                }
            };
            heard = true;
            match line {
                StreamLine::Heartbeat => {}
                StreamLine::Title { title } => page.heard(Heard::Title(title)),
                StreamLine::Turn { user, reply } => {
                    let (turn_id, run) = (reply.turn_id, reply.run);
                    let streaming = reply.outcome.status == crate::model::MessageStatus::Streaming;
                    followed = Some(turn_id);
                    page.heard(Heard::Turn { user, reply });
                    self.move_cursor(|c| c.on_announced(turn_id, run, streaming));
                }
                StreamLine::Event(envelope) => {
                    let Some(turn_id) = followed else { continue };
                    let done = matches!(envelope.event, TurnEvent::Finished(_));
                    if matches!(envelope.event, TurnEvent::Started { .. }) {
                        if let Some(Cursor::Send(sent)) = self.cursor.get_value() {
                            page.heard(Heard::Accepted(sent));
                        }
                    }
                    self.move_cursor(|c| c.on_event(turn_id, envelope.seq, &envelope.event));
                    page.heard(Heard::Event {
                        turn_id,
                        event: envelope.event,
                    });
                    if done && !watching {
                        return Ended::TurnDone;
                    }
                }
            }
        }
    }

    fn move_cursor(&self, step: impl FnOnce(&mut Cursor)) {
        self.cursor.update_value(|cursor| {
            if let Some(cursor) = cursor {
                step(cursor);
            }
        });
    }

    /// Backs off before the next attempt, unless woken early.
    async fn wait_before_retry(&self, failures: u32) {
        let wait = retry_wait(failures, random_fraction());
        let (wake, woken) = futures::channel::oneshot::channel();
        self.wake.set_value(Some(wake));
        let _ = futures::future::select(Box::pin(sleep(wait)), woken).await;
        self.wake.set_value(None);
    }
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}
