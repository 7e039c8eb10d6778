//! The hub: which turns are running, the streams that follow them, Stop, Continue, and the drain
//! at shutdown. Each turn runs in its own supervised task (see `run`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llm::RetryPolicy;
use sqlx::SqlitePool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::checkpoints::write_checkpoints;
use super::live::{lock, spawn_lines, CancelReason, Lines, LiveTurn};
use super::run;
use crate::error::ApiError;
use crate::model::{MessageStatus, MessageView, Outcome, StreamLine, TurnEnvelope, TurnEvent};
use crate::server::config::TurnSettings;
use crate::server::db::{self, BeginContinuation, BeginTurn, DbError, NewTurn, Owner, TurnRecord};
use crate::server::input::{self, InputError};
use crate::server::models::ModelCatalog;
use crate::server::pricing::PriceTable;

/// How long Stop waits for the turn to store its text before it says it could not.
const STOP_WAIT: Duration = Duration::from_secs(15);
/// After the grace period, how long cut turns get to store their text.
const STORE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("unknown model {0}")]
    UnknownModel(String),
    #[error("no such conversation")]
    NoSuchConversation,
    #[error("no such turn")]
    NoSuchTurn,
    #[error("a reply is already being written in this conversation; wait for it, or stop it")]
    Busy,
    #[error("{0}")]
    CannotContinue(String),
    #[error("the server is restarting; try again in a moment")]
    Draining,
    #[error("the reply did not confirm that it stopped")]
    StopUnconfirmed,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<TurnError> for ApiError {
    fn from(error: TurnError) -> Self {
        let message = error.to_string();
        match error {
            TurnError::Input(e) => e.into(),
            TurnError::UnknownModel(_) => ApiError::BadRequest(message),
            TurnError::NoSuchConversation | TurnError::NoSuchTurn => ApiError::NotFound(message),
            TurnError::Busy | TurnError::CannotContinue(_) => ApiError::Conflict(message),
            TurnError::Draining => ApiError::Unavailable(message),
            TurnError::StopUnconfirmed => {
                tracing::error!("{message}");
                ApiError::Internal
            }
            TurnError::Db(e) => e.into(),
        }
    }
}

/// What a turn needs from the rest of the server.
pub(super) struct Deps {
    pub pool: SqlitePool,
    pub models: Arc<ModelCatalog>,
    pub prices: Arc<PriceTable>,
    pub settings: TurnSettings,
    pub retry: RetryPolicy,
}

/// The turns in memory: running ones, and ended ones kept for late readers.
#[derive(Default)]
pub(super) struct Registry {
    turns: Mutex<HashMap<Uuid, Arc<LiveTurn>>>,
    /// Each watched or active conversation's latest turn, for the pages showing it.
    conversations: Mutex<HashMap<Uuid, watch::Sender<Option<Arc<LiveTurn>>>>>,
}

impl Registry {
    fn get(&self, turn_id: Uuid) -> Option<Arc<LiveTurn>> {
        lock(&self.turns).get(&turn_id).cloned()
    }

    /// Turns that have not ended.
    pub fn running(&self) -> Vec<Arc<LiveTurn>> {
        lock(&self.turns)
            .values()
            .filter(|t| !t.is_finished())
            .cloned()
            .collect()
    }

    /// Claims `turn_id` for a new turn, or returns the turn already holding it (`false`).
    fn claim(&self, turn_id: Uuid, owner: &Owner) -> Result<(Arc<LiveTurn>, bool), TurnError> {
        let mut turns = lock(&self.turns);
        match turns.get(&turn_id) {
            Some(turn) if turn.owner == *owner => Ok((turn.clone(), false)),
            Some(_) => Err(TurnError::NoSuchTurn),
            None => {
                let turn = Arc::new(LiveTurn::new(turn_id, owner.clone()));
                turns.insert(turn_id, turn.clone());
                Ok((turn, true))
            }
        }
    }

    fn insert(&self, turn: Arc<LiveTurn>) {
        lock(&self.turns).insert(turn.turn_id, turn);
    }

    /// Ends a claim that did not become a turn; its readers learn why.
    fn unclaim(&self, turn: &Arc<LiveTurn>, why: &str) {
        turn.emit(TurnEvent::Finished(Outcome::failed(why)));
        self.remove(turn);
    }

    fn remove(&self, turn: &Arc<LiveTurn>) {
        let mut turns = lock(&self.turns);
        if turns
            .get(&turn.turn_id)
            .is_some_and(|t| Arc::ptr_eq(t, turn))
        {
            turns.remove(&turn.turn_id);
        }
    }

    /// Tells the pages watching the turn's conversation that it began.
    fn publish(&self, turn: &Arc<LiveTurn>) {
        let Some(record) = turn.record() else { return };
        let mut conversations = lock(&self.conversations);
        let sender = conversations
            .entry(record.conversation_id)
            .or_insert_with(|| watch::Sender::new(None));
        sender.send_replace(Some(turn.clone()));
    }

    fn watch(&self, conversation_id: Uuid) -> watch::Receiver<Option<Arc<LiveTurn>>> {
        let mut conversations = lock(&self.conversations);
        // Forget conversations nobody watches and nothing runs in.
        conversations.retain(|_, sender| {
            sender.receiver_count() > 0
                || sender.borrow().as_ref().is_some_and(|t| !t.is_finished())
        });
        conversations
            .entry(conversation_id)
            .or_insert_with(|| watch::Sender::new(None))
            .subscribe()
    }

    /// Keeps an ended turn for late readers a while, then lets the database answer for it.
    fn forget_later(self: &Arc<Self>, turn: Arc<LiveTurn>, after: Duration) {
        let registry = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            registry.remove(&turn);
        });
    }
}

pub struct TurnHub {
    deps: Arc<Deps>,
    registry: Arc<Registry>,
    /// The supervisors of running turns, awaited at shutdown.
    tasks: TaskTracker,
    draining: AtomicBool,
    /// Ends the conversation streams and the checkpoint writer, last thing at shutdown.
    closing: CancellationToken,
}

/// A message to send, as the browser asked.
pub struct SendTurn<'a> {
    pub turn_id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub text: &'a str,
    pub model: Option<&'a str>,
}

impl TurnHub {
    /// Starts the hub and its checkpoint writer (call inside the runtime).
    pub fn start(
        pool: SqlitePool,
        models: Arc<ModelCatalog>,
        prices: Arc<PriceTable>,
        settings: TurnSettings,
    ) -> Self {
        let registry = Arc::new(Registry::default());
        let closing = CancellationToken::new();
        tokio::spawn(write_checkpoints(
            pool.clone(),
            registry.clone(),
            closing.clone(),
        ));
        Self {
            deps: Arc::new(Deps {
                pool,
                models,
                prices,
                settings,
                retry: RetryPolicy::default(),
            }),
            registry,
            tasks: TaskTracker::new(),
            draining: AtomicBool::new(false),
            closing,
        }
    }

    fn heartbeat(&self) -> Duration {
        self.deps.settings.heartbeat
    }

    fn refuse_while_draining(&self) -> Result<(), TurnError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(TurnError::Draining);
        }
        Ok(())
    }

    /// Starts a turn, or re-attaches to it if this turn id was sent before, and returns its events.
    /// `model` (a catalog id) switches the conversation to that model from this turn on.
    pub async fn send(&self, owner: &Owner, turn: SendTurn<'_>) -> Result<Lines, TurnError> {
        self.refuse_while_draining()?;
        if let Some(model) = turn.model.filter(|m| !self.deps.models.contains(m)) {
            return Err(TurnError::UnknownModel(model.to_owned()));
        }
        let text = input::message_text(turn.text)?;
        // Claim the turn id in memory first, so two concurrent sends of it start one turn.
        let (live, claimed) = self.registry.claim(turn.turn_id, owner)?;
        if !claimed {
            return Ok(live.follow(0, self.heartbeat()));
        }
        let new_turn = NewTurn {
            turn_id: turn.turn_id,
            conversation_id: turn.conversation_id,
            text,
            model: turn.model,
            default_model: self.deps.models.default_model(),
        };
        let begun = db::begin_turn(&self.deps.pool, owner, new_turn).await;
        match begun {
            Ok(BeginTurn::Started(record)) => {
                live.set_record(*record);
                self.spawn(live.clone());
                Ok(live.follow(0, self.heartbeat()))
            }
            Ok(BeginTurn::Repeated) => match db::turn(&self.deps.pool, owner, turn.turn_id).await {
                // Sent before and since forgotten here: the stored turn answers.
                Ok(Some((user, reply, conversation_id))) => {
                    live.set_record(TurnRecord {
                        owner: owner.clone(),
                        conversation_id,
                        user,
                        reply: reply.clone(),
                        system_prompt: String::new(),
                    });
                    for event in replay_events(conversation_id, reply) {
                        live.emit(event.event);
                    }
                    self.registry
                        .forget_later(live.clone(), self.deps.settings.keep_finished);
                    Ok(live.follow(0, self.heartbeat()))
                }
                Ok(None) => {
                    self.registry.unclaim(&live, "no such turn");
                    Err(TurnError::NoSuchTurn)
                }
                Err(e) => {
                    self.registry
                        .unclaim(&live, "the server could not read this turn");
                    Err(e.into())
                }
            },
            Ok(BeginTurn::NoSuchConversation) => {
                self.registry.unclaim(&live, "no such conversation");
                Err(TurnError::NoSuchConversation)
            }
            Ok(BeginTurn::Busy) => {
                self.registry.unclaim(&live, &TurnError::Busy.to_string());
                Err(TurnError::Busy)
            }
            Err(e) => {
                self.registry
                    .unclaim(&live, "the server could not store this message");
                Err(e.into())
            }
        }
    }

    /// Asks the model to go on with a stopped or interrupted reply; the continuation joins the
    /// same reply, as its next run.
    pub async fn continue_reply(&self, owner: &Owner, turn_id: Uuid) -> Result<Lines, TurnError> {
        self.refuse_while_draining()?;
        if self.registry.get(turn_id).is_some_and(|t| !t.is_finished()) {
            return Err(TurnError::Busy);
        }
        match db::begin_continuation(&self.deps.pool, owner, turn_id).await? {
            BeginContinuation::Started(record) => {
                let live = Arc::new(LiveTurn::started(*record));
                self.registry.insert(live.clone());
                self.spawn(live.clone());
                Ok(live.follow(0, self.heartbeat()))
            }
            BeginContinuation::NoSuchTurn => Err(TurnError::NoSuchTurn),
            BeginContinuation::Refused(why) => Err(TurnError::CannotContinue(why)),
            BeginContinuation::Busy => Err(TurnError::Busy),
        }
    }

    /// Runs the turn in a supervised task: if the task dies, the supervisor stores the reply as
    /// failed with its text and ends the log, so no reader waits forever and Stop tells the truth.
    fn spawn(&self, live: Arc<LiveTurn>) {
        self.registry.publish(&live);
        let deps = self.deps.clone();
        let registry = self.registry.clone();
        let runner = tokio::spawn(run::run_turn(deps.clone(), live.clone()));
        self.tasks.spawn(async move {
            if let Err(error) = runner.await {
                if !live.is_finished() {
                    run::store_crashed(&deps, &live, &error).await;
                }
            }
            registry.forget_later(live, deps.settings.keep_finished);
        });
    }

    /// Events of a turn's run after `after_seq`: live while it runs, from the database once it is
    /// done. A reader of an earlier run (the reply was continued since) gets the current run whole.
    pub async fn events(
        &self,
        owner: &Owner,
        turn_id: Uuid,
        run: u32,
        after_seq: u32,
    ) -> Result<Lines, TurnError> {
        match self.registry.get(turn_id) {
            Some(turn) if turn.owner == *owner => {
                let from = if turn.run() == run { after_seq } else { 0 };
                Ok(turn.follow(from, self.heartbeat()))
            }
            Some(_) => Err(TurnError::NoSuchTurn),
            None => {
                let (_, reply, conversation_id) = db::turn(&self.deps.pool, owner, turn_id)
                    .await?
                    .ok_or(TurnError::NoSuchTurn)?;
                // The stored reply is whole: it is replayed from the start, whatever the reader saw.
                let lines: Vec<StreamLine> = replay_events(conversation_id, reply)
                    .into_iter()
                    .map(StreamLine::Event)
                    .collect();
                Ok(Box::pin(futures::stream::iter(lines)))
            }
        }
    }

    /// A conversation's turns as they happen, for a page showing it: first the turns from
    /// `from_turn` on (the page may have missed them), then every turn started from now on, each
    /// with its events, and heartbeats in between. Ends when the server shuts down.
    pub async fn conversation_events(
        &self,
        owner: &Owner,
        conversation_id: Uuid,
        from_turn: Option<Uuid>,
    ) -> Result<Lines, TurnError> {
        // Subscribe before reading the database, so no turn falls between the two.
        let mut latest = self.registry.watch(conversation_id);
        let stored = db::turns_from(&self.deps.pool, owner, conversation_id, from_turn)
            .await?
            .ok_or(TurnError::NoSuchConversation)?;
        let registry = self.registry.clone();
        let closing = self.closing.clone();
        let heartbeat = self.heartbeat();
        let owner = owner.clone();
        Ok(spawn_lines(move |out| async move {
            let mut announced: HashSet<(Uuid, u32)> = HashSet::new();
            for (user, reply) in stored {
                // A reply still running is announced with its live log, below.
                let live = registry.get(reply.turn_id).filter(|t| !t.is_finished());
                if reply.outcome.status == MessageStatus::Streaming && live.is_some() {
                    continue;
                }
                announced.insert((reply.turn_id, reply.run));
                let line = StreamLine::Turn {
                    user: Box::new(user),
                    reply: Box::new(reply),
                };
                if out.send(line).await.is_err() {
                    return;
                }
            }
            loop {
                let current = latest.borrow_and_update().clone();
                if let Some((turn, record)) = current
                    .as_ref()
                    .and_then(|t| t.record().map(|r| (t, r)))
                    .filter(|(t, r)| {
                        t.owner == owner && !announced.contains(&(r.turn_id(), r.reply.run))
                    })
                {
                    announced.insert((record.turn_id(), record.reply.run));
                    let line = StreamLine::Turn {
                        user: Box::new(record.user.clone()),
                        reply: Box::new(record.reply.clone()),
                    };
                    if out.send(line).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = turn.pump(0, heartbeat, &out) => {}
                        () = closing.cancelled() => return,
                    }
                    continue;
                }
                tokio::select! {
                    () = closing.cancelled() => return,
                    changed = latest.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(heartbeat) => {
                        if out.send(StreamLine::Heartbeat).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }))
    }

    /// Stops a running turn and returns how it ended, once that is stored. Stopping a turn that
    /// already ended answers how it ended.
    pub async fn stop(&self, owner: &Owner, turn_id: Uuid) -> Result<Outcome, TurnError> {
        match self.registry.get(turn_id) {
            Some(turn) if turn.owner == *owner => {
                turn.cancel(CancelReason::Stop);
                turn.wait_finished(STOP_WAIT)
                    .await
                    .ok_or(TurnError::StopUnconfirmed)
            }
            Some(_) => Err(TurnError::NoSuchTurn),
            None => match db::turn(&self.deps.pool, owner, turn_id).await? {
                Some((_, reply, _)) => Ok(reply.outcome),
                None => Err(TurnError::NoSuchTurn),
            },
        }
    }

    /// Shutdown: new turns are refused at once; running replies get `grace` to finish; those
    /// still running then are cut and stored as interrupted; then every stream is closed.
    pub async fn drain(&self, grace: Duration) {
        self.draining.store(true, Ordering::Release);
        let running = self.registry.running();
        tracing::info!(
            running = running.len(),
            ?grace,
            "draining: new turns are refused"
        );
        let _ = tokio::time::timeout(
            grace,
            futures::future::join_all(running.iter().map(|t| t.wait_finished(grace))),
        )
        .await;
        self.tasks.close();
        // Twice: a send that passed the draining check just before it was set may start late.
        for _ in 0..2 {
            let cut = self.registry.running();
            if !cut.is_empty() {
                tracing::warn!(
                    turns = cut.len(),
                    "storing replies still running as interrupted"
                );
            }
            for turn in &cut {
                turn.cancel(CancelReason::Shutdown);
            }
            if tokio::time::timeout(STORE_WAIT, self.tasks.wait())
                .await
                .is_err()
            {
                tracing::error!("some replies could not be stored before shutdown");
            }
        }
        self.closing.cancel();
    }

    /// Whether the server is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Number of turns currently generating.
    pub fn running(&self) -> usize {
        self.registry.running().len()
    }
}

/// A stored reply as the events that would have built it.
fn replay_events(conversation_id: Uuid, reply: MessageView) -> Vec<TurnEnvelope> {
    let mut events = vec![TurnEvent::Started {
        conversation_id,
        message_id: reply.id,
        model: reply.model.clone().unwrap_or_default(),
        run: reply.run,
    }];
    if !reply.content.is_empty() {
        events.push(TurnEvent::Delta {
            text: reply.content,
        });
    }
    // A reply still `streaming` here belongs to a turn that is not running in this process.
    if reply.outcome.status != MessageStatus::Streaming {
        events.push(TurnEvent::Finished(reply.outcome));
    }
    events
        .into_iter()
        .zip(1..)
        .map(|(event, seq)| TurnEnvelope { seq, event })
        .collect()
}
