//! The hub: which turns are running, the streams that follow them, Stop, Continue, and the drain
//! at shutdown. Each turn runs in its own supervised task (see `run`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llm::RetryPolicy;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::checkpoints::write_checkpoints;
use super::live::{lock, spawn_lines, CancelReason, Lines, LiveTurn, Refusal};
use super::run;
use crate::error::ApiError;
use crate::model::{MessageStatus, MessageView, Outcome, StreamLine, TurnEnvelope, TurnEvent};
use crate::server::clock::SharedClock;
use crate::server::config::{Config, TurnSettings};
use crate::server::db::{
    self, BeginContinuation, BeginTurn, Db, DbError, NewTurn, Owner, ReplyRef, TurnRecord,
};
use crate::server::input::{self, InputError};
use crate::server::limits::{LimitError, RunningSlot, Slot, TurnLimits};
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
    #[error(transparent)]
    Limited(#[from] LimitError),
    #[error("the reply did not confirm that it stopped")]
    StopUnconfirmed,
    #[error("the turn could not be started")]
    StartFailed,
    #[error("{0}")]
    OverQuota(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<Refusal> for TurnError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NoSuchConversation => TurnError::NoSuchConversation,
            Refusal::NoSuchTurn => TurnError::NoSuchTurn,
            Refusal::Busy => TurnError::Busy,
            Refusal::Limited(limit) => TurnError::Limited(limit),
            Refusal::OverQuota(words) => TurnError::OverQuota(words),
            Refusal::AlreadyContinued(_) | Refusal::NotStored => TurnError::StartFailed,
        }
    }
}

/// A claim that is given up (its readers told) unless it is settled: a start that fails in any
/// way, a panic included, never leaves a claimed turn id that nothing ends.
struct Claim<'a> {
    registry: &'a Registry,
    turn: Arc<LiveTurn>,
    settled: bool,
}

impl<'a> Claim<'a> {
    fn new(registry: &'a Registry, turn: Arc<LiveTurn>) -> Self {
        Self {
            registry,
            turn,
            settled: false,
        }
    }

    /// The claim became a run, or a replay.
    fn settle(mut self) -> Arc<LiveTurn> {
        self.settled = true;
        self.turn.clone()
    }

    fn refuse(mut self, refusal: Refusal) {
        self.settled = true;
        self.registry.unclaim(&self.turn, refusal);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.registry.unclaim(&self.turn, Refusal::NotStored);
        }
    }
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
            TurnError::Limited(_) => ApiError::TooManyRequests(message),
            TurnError::OverQuota(_) => ApiError::InsufficientStorage(message),
            TurnError::StopUnconfirmed | TurnError::StartFailed => {
                tracing::error!("{message}");
                ApiError::Internal
            }
            TurnError::Db(e) => e.into(),
        }
    }
}

/// What a turn needs from the rest of the server.
pub(super) struct Deps {
    pub db: Db,
    pub models: Arc<ModelCatalog>,
    pub prices: Arc<PriceTable>,
    pub settings: TurnSettings,
    pub retry: RetryPolicy,
    pub limits: TurnLimits,
    /// Runs are billed to the month this clock says they began in.
    pub clock: SharedClock,
    /// People with a budget may use models with no price (`RILL_ALLOW_UNPRICED_MODELS`).
    pub allow_unpriced_models: bool,
    /// Bytes one person may store (`RILL_STORAGE_QUOTA_MB`).
    pub storage_quota: Option<u64>,
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

    /// Claims `turn_id` for its run `run` (1 for a send, later runs for a Continue), in one
    /// step under the lock. A turn already here at that run or a later one is returned to follow
    /// (`false`): a repeated send, a repeated Continue. An ended earlier run is replaced by the
    /// claim (its readers are answered from the database); a running one makes the claim busy.
    fn claim(
        &self,
        turn_id: Uuid,
        owner: &Owner,
        run: u32,
    ) -> Result<(Arc<LiveTurn>, bool), TurnError> {
        let mut turns = lock(&self.turns);
        match turns.get(&turn_id) {
            Some(turn) if turn.owner != *owner => Err(TurnError::NoSuchTurn),
            Some(turn) if turn.run() >= run => Ok((turn.clone(), false)),
            Some(turn) if !turn.is_finished() => Err(TurnError::Busy),
            _ => {
                let turn = Arc::new(LiveTurn::new(turn_id, owner.clone(), run));
                turns.insert(turn_id, turn.clone());
                Ok((turn, true))
            }
        }
    }

    /// Ends a claim that did not become a run: the readers that found it get the same answer.
    fn unclaim(&self, turn: &Arc<LiveTurn>, refusal: Refusal) {
        turn.refuse(refusal);
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
        drop(turns);
        self.sweep_conversations();
    }

    /// Forgets conversations nobody watches and nothing runs in, so that an ended turn's log is
    /// not kept for a conversation no page shows.
    fn sweep_conversations(&self) {
        lock(&self.conversations).retain(|_, sender| {
            sender.receiver_count() > 0
                || sender.borrow().as_ref().is_some_and(|t| !t.is_finished())
        });
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
        self.sweep_conversations();
        lock(&self.conversations)
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
    /// Starting turns and the supervisors of running ones, awaited at shutdown.
    tasks: TaskTracker,
    draining: AtomicBool,
    /// Set once the grace period is over: a turn that starts now is cut at once.
    cutting: AtomicBool,
    /// Ends the conversation streams and the checkpoint writer, last thing at shutdown.
    closing: CancellationToken,
}

/// A message to send, as the browser asked.
#[derive(Clone, Debug)]
pub struct SendTurn {
    pub turn_id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub text: String,
    pub model: Option<String>,
    /// The system prompt a new conversation starts with (ignored for an existing one).
    pub system_prompt: String,
    /// An edit or a regeneration: the turn this one replaces on the branch (kept as a sibling).
    pub alternative_to: Option<Uuid>,
}

impl TurnHub {
    /// Starts the hub and its checkpoint writer (call inside the runtime).
    pub fn start(
        db: Db,
        models: Arc<ModelCatalog>,
        prices: Arc<PriceTable>,
        config: &Config,
        clock: SharedClock,
    ) -> Self {
        let registry = Arc::new(Registry::default());
        let closing = CancellationToken::new();
        tokio::spawn(write_checkpoints(
            db.clone(),
            registry.clone(),
            closing.clone(),
        ));
        Self {
            deps: Arc::new(Deps {
                db,
                models,
                prices,
                settings: config.turns.clone(),
                retry: RetryPolicy::default(),
                limits: TurnLimits::new(&config.limits),
                clock,
                allow_unpriced_models: config.limits.allow_unpriced_models,
                storage_quota: config.limits.storage_quota_bytes,
            }),
            registry,
            tasks: TaskTracker::new(),
            draining: AtomicBool::new(false),
            cutting: AtomicBool::new(false),
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

    /// Runs `start` as a task of its own and waits for it: a request dropped midway (the
    /// client's connection broke) must not leave a claimed turn that nothing finishes.
    async fn detached<F>(&self, start: F) -> Result<Lines, TurnError>
    where
        F: std::future::Future<Output = Result<Lines, TurnError>> + Send + 'static,
    {
        self.tasks.spawn(start).await.map_err(|e| {
            tracing::error!("starting a turn failed: {e}");
            TurnError::StartFailed
        })?
    }

    /// Starts a turn, or re-attaches to it if this turn id was sent before, and returns its events.
    /// `model` (a catalog id) switches the conversation to that model from this turn on.
    pub async fn send(self: &Arc<Self>, owner: &Owner, turn: SendTurn) -> Result<Lines, TurnError> {
        self.refuse_while_draining()?;
        let stream = self.open_stream(owner)?;
        if let Some(model) = turn
            .model
            .as_deref()
            .filter(|m| !self.deps.models.contains(m))
        {
            return Err(TurnError::UnknownModel(input::shown(model, 80)));
        }
        input::message_text(&turn.text)?;
        let hub = self.clone();
        let owner = owner.clone();
        let lines = self
            .detached(async move { hub.start_turn(&owner, turn).await })
            .await?;
        Ok(held(lines, stream))
    }

    /// One more of the owner's open event streams, or the refusal that says they hold too many.
    fn open_stream(&self, owner: &Owner) -> Result<Slot, TurnError> {
        Ok(self.deps.limits.open_stream(owner)?)
    }

    async fn start_turn(&self, owner: &Owner, turn: SendTurn) -> Result<Lines, TurnError> {
        // Claim the turn id in memory first, so two concurrent sends of it start one turn.
        let (live, claimed) = self.registry.claim(turn.turn_id, owner, 1)?;
        if !claimed {
            // This turn id is here already (a repeated send): its answer is this one's too.
            return self.follow_claimed(owner, live).await;
        }
        let claim = Claim::new(&self.registry, live);
        let slot = match self.deps.limits.admit(owner) {
            Ok(slot) => slot,
            Err(limit) => {
                claim.refuse(Refusal::Limited(limit.clone()));
                return Err(limit.into());
            }
        };
        let text = input::message_text(&turn.text)?;
        let system_prompt = input::system_prompt(&turn.system_prompt)?;
        let mut repaired = false;
        loop {
            let new_turn = NewTurn {
                turn_id: turn.turn_id,
                conversation_id: turn.conversation_id,
                text,
                model: turn.model.as_deref(),
                default_model: self.deps.models.default_model(),
                system_prompt,
                alternative_to: turn.alternative_to,
                quota_bytes: self.deps.storage_quota,
            };
            return match db::begin_turn(&self.deps.db, owner, new_turn).await? {
                BeginTurn::Started(record) => {
                    let live = claim.settle();
                    live.set_record(*record);
                    self.spawn(live.clone(), slot);
                    Ok(live.follow(0, self.heartbeat()))
                }
                BeginTurn::Repeated => self.replay_into(claim, owner).await,
                BeginTurn::NoSuchConversation => {
                    claim.refuse(Refusal::NoSuchConversation);
                    Err(TurnError::NoSuchConversation)
                }
                BeginTurn::NoSuchTurn => {
                    claim.refuse(Refusal::NoSuchTurn);
                    Err(TurnError::NoSuchTurn)
                }
                BeginTurn::OverQuota { used, quota } => {
                    let words = crate::server::quota::refusal(used, quota);
                    claim.refuse(Refusal::OverQuota(words.clone()));
                    Err(TurnError::OverQuota(words))
                }
                BeginTurn::Busy => {
                    // Busy with a reply nothing here writes (its end could not be stored)?
                    let conversation = turn.conversation_id;
                    if !repaired && self.repair_orphan(owner, conversation).await? {
                        repaired = true;
                        continue;
                    }
                    claim.refuse(Refusal::Busy);
                    Err(TurnError::Busy)
                }
            };
        }
    }

    /// Follows a turn another request claimed, once that request knows whether it became a run;
    /// a refusal is answered the same way to both.
    async fn follow_claimed(&self, owner: &Owner, live: Arc<LiveTurn>) -> Result<Lines, TurnError> {
        match live.begun().await {
            Ok(()) => Ok(live.follow(0, self.heartbeat())),
            Err(Refusal::AlreadyContinued(run)) => {
                self.events_of(owner, live.turn_id, run, 0).await
            }
            Err(refusal) => Err(refusal.into()),
        }
    }

    /// A turn id sent before and since forgotten here: its claim replays the stored turn.
    async fn replay_into(&self, claim: Claim<'_>, owner: &Owner) -> Result<Lines, TurnError> {
        let Some((user, reply, conversation_id)) =
            self.stored_turn(owner, claim.turn.turn_id).await?
        else {
            claim.refuse(Refusal::NoSuchTurn);
            return Err(TurnError::NoSuchTurn);
        };
        let live = claim.settle();
        live.set_record(TurnRecord {
            owner: owner.clone(),
            conversation_id,
            user,
            reply: reply.clone(),
            system_prompt: String::new(),
        });
        live.mark_replay();
        for event in replay_events(conversation_id, reply) {
            live.emit(event.event);
        }
        self.registry
            .forget_later(live.clone(), self.deps.settings.keep_finished);
        Ok(live.follow(0, self.heartbeat()))
    }

    /// Asks the model to go on with a stopped or interrupted reply; the continuation joins the
    /// same reply, as its next run. `from_run` is the run the asker saw: asking again (a retry
    /// after a dropped connection) follows the continuation already started.
    pub async fn continue_reply(
        self: &Arc<Self>,
        owner: &Owner,
        turn_id: Uuid,
        from_run: u32,
    ) -> Result<Lines, TurnError> {
        self.refuse_while_draining()?;
        let stream = self.open_stream(owner)?;
        let hub = self.clone();
        let owner = owner.clone();
        let lines = self
            .detached(async move { hub.start_continuation(&owner, turn_id, from_run).await })
            .await?;
        Ok(held(lines, stream))
    }

    async fn start_continuation(
        &self,
        owner: &Owner,
        turn_id: Uuid,
        from_run: u32,
    ) -> Result<Lines, TurnError> {
        let next_run = from_run.saturating_add(1);
        let (live, claimed) = self.registry.claim(turn_id, owner, next_run)?;
        if !claimed {
            // This continuation, or a later one, is under way or just ended: follow it.
            return self.follow_claimed(owner, live).await;
        }
        let claim = Claim::new(&self.registry, live);
        let slot = match self.deps.limits.admit(owner) {
            Ok(slot) => slot,
            Err(limit) => {
                claim.refuse(Refusal::Limited(limit.clone()));
                return Err(limit.into());
            }
        };
        let mut repaired = false;
        loop {
            let begun = db::begin_continuation(&self.deps.db, owner, turn_id, from_run).await?;
            return match begun {
                BeginContinuation::Started(record) => {
                    let live = claim.settle();
                    live.set_record(*record);
                    self.spawn(live.clone(), slot);
                    Ok(live.follow(0, self.heartbeat()))
                }
                BeginContinuation::AlreadyContinued { run } => {
                    claim.refuse(Refusal::AlreadyContinued(run));
                    self.events_of(owner, turn_id, run, 0).await
                }
                BeginContinuation::NoSuchTurn => {
                    claim.refuse(Refusal::NoSuchTurn);
                    Err(TurnError::NoSuchTurn)
                }
                BeginContinuation::Refused(why) => {
                    claim.refuse(Refusal::Busy);
                    Err(TurnError::CannotContinue(why))
                }
                BeginContinuation::Busy { conversation_id } => {
                    if !repaired && self.repair_orphan(owner, Some(conversation_id)).await? {
                        repaired = true;
                        continue;
                    }
                    claim.refuse(Refusal::Busy);
                    Err(TurnError::Busy)
                }
            };
        }
    }

    /// Runs the turn in a supervised task: if the task dies, the supervisor stores the reply as
    /// failed with its text and ends the log, so no reader waits forever and Stop tells the truth.
    /// The owner's running slot is held until the task ends.
    fn spawn(&self, live: Arc<LiveTurn>, slot: RunningSlot) {
        self.registry.publish(&live);
        let deps = self.deps.clone();
        let registry = self.registry.clone();
        // Every log line of the turn carries its id (in JSON logs too, as a span field).
        let span = tracing::info_span!("turn", turn_id = %live.turn_id);
        let runner = tokio::spawn(tracing::Instrument::instrument(
            run::run_turn(deps.clone(), live.clone()),
            span.clone(),
        ));
        if self.cutting.load(Ordering::Acquire) {
            live.cancel(CancelReason::Shutdown);
        }
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let _slot = slot;
                if let Err(error) = runner.await {
                    if !live.is_finished() {
                        run::store_crashed(&deps, &live, &error).await;
                    }
                }
                registry.forget_later(live, deps.settings.keep_finished);
            },
            span,
        ));
    }

    /// Whether `reply`'s run is being written by a turn in this process.
    fn is_running(&self, reply: &MessageView) -> bool {
        self.registry
            .get(reply.turn_id)
            .is_some_and(|t| t.run() == reply.run && !t.is_finished())
    }

    /// A conversation's streaming reply that no turn here is writing — its end could not be
    /// stored, or a crash left it — is marked interrupted. Returns whether one was.
    async fn repair_orphan(
        &self,
        owner: &Owner,
        conversation_id: Option<Uuid>,
    ) -> Result<bool, TurnError> {
        let Some(conversation_id) = conversation_id else {
            return Ok(false);
        };
        let Some(reply) = db::streaming_reply_of(&self.deps.db, owner, conversation_id).await?
        else {
            return Ok(false);
        };
        if self.is_running(&reply) {
            return Ok(false);
        }
        let reply = ReplyRef {
            owner: owner.clone(),
            message_id: reply.id,
            run: reply.run,
        };
        let repaired = db::interrupt_reply(&self.deps.db, &reply).await?;
        if repaired {
            tracing::warn!(message_id = %reply.message_id, "a reply left streaming with nothing writing it was marked interrupted");
            // Its run's reservation is settled at an estimate, as after a crash.
            super::budget::settle_open_runs(
                &self.deps.db,
                &self.deps.prices,
                Some(reply.message_id),
            )
            .await?;
        }
        Ok(repaired)
    }

    /// A turn as stored; a reply left streaming with nothing writing it is repaired first.
    async fn stored_turn(
        &self,
        owner: &Owner,
        turn_id: Uuid,
    ) -> Result<Option<(MessageView, MessageView, Uuid)>, TurnError> {
        let Some((user, reply, conversation_id)) = db::turn(&self.deps.db, owner, turn_id).await?
        else {
            return Ok(None);
        };
        if reply.outcome.status == MessageStatus::Streaming && !self.is_running(&reply) {
            self.repair_orphan(owner, Some(conversation_id)).await?;
            return Ok(db::turn(&self.deps.db, owner, turn_id).await?);
        }
        Ok(Some((user, reply, conversation_id)))
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
        let stream = self.open_stream(owner)?;
        let lines = self.events_of(owner, turn_id, run, after_seq).await?;
        Ok(held(lines, stream))
    }

    /// [`Self::events`] for a stream already counted.
    async fn events_of(
        &self,
        owner: &Owner,
        turn_id: Uuid,
        run: u32,
        after_seq: u32,
    ) -> Result<Lines, TurnError> {
        match self.registry.get(turn_id) {
            Some(turn) if turn.owner == *owner => {
                let from = if turn.run() == run && !turn.is_replay() {
                    after_seq
                } else {
                    0
                };
                Ok(turn.follow(from, self.heartbeat()))
            }
            Some(_) => Err(TurnError::NoSuchTurn),
            None => {
                let (_, reply, conversation_id) = self
                    .stored_turn(owner, turn_id)
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
        self: &Arc<Self>,
        owner: &Owner,
        conversation_id: Uuid,
        from_turn: Option<Uuid>,
    ) -> Result<Lines, TurnError> {
        let stream = self.open_stream(owner)?;
        // Subscribe before reading the database, so no turn falls between the two.
        let mut latest = self.registry.watch(conversation_id);
        if !db::conversation_exists(&self.deps.db, owner, conversation_id).await? {
            return Err(TurnError::NoSuchConversation);
        }
        let hub = self.clone();
        let owner = owner.clone();
        let lines = spawn_lines(move |out| async move {
            let mut announced: HashSet<(Uuid, u32)> = HashSet::new();
            let mut last_turn = from_turn;
            loop {
                // Turns stored since the last one announced: ones that began and ended while
                // this stream was busy with another turn are not skipped.
                if !hub
                    .announce_stored(
                        &owner,
                        conversation_id,
                        &mut last_turn,
                        &mut announced,
                        &out,
                    )
                    .await
                {
                    return;
                }
                let current = latest.borrow_and_update().clone();
                if let Some((turn, record)) = current
                    .as_ref()
                    .and_then(|t| t.record().map(|r| (t, r)))
                    .filter(|(t, r)| {
                        t.owner == owner && !announced.contains(&(r.turn_id(), r.reply.run))
                    })
                {
                    announced.insert((record.turn_id(), record.reply.run));
                    last_turn = Some(record.turn_id());
                    // The record holds the figures from before this run; the page needs to know
                    // it is being written.
                    let mut reply = record.reply.clone();
                    reply.outcome.status = MessageStatus::Streaming;
                    let line = StreamLine::Turn {
                        user: Box::new(record.user.clone()),
                        reply: Box::new(reply),
                    };
                    if out.send(line).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = turn.pump(0, hub.heartbeat(), &out) => {}
                        () = hub.closing.cancelled() => return,
                    }
                    continue;
                }
                tokio::select! {
                    () = hub.closing.cancelled() => return,
                    changed = latest.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(hub.heartbeat()) => {
                        if out.send(StreamLine::Heartbeat).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(held(lines, stream))
    }

    /// Sends the stored turns from `last_turn` on that were not announced yet; a reply still
    /// being written here is left to its live log. False once the reader has gone.
    async fn announce_stored(
        &self,
        owner: &Owner,
        conversation_id: Uuid,
        last_turn: &mut Option<Uuid>,
        announced: &mut HashSet<(Uuid, u32)>,
        out: &tokio::sync::mpsc::Sender<StreamLine>,
    ) -> bool {
        let stored = match db::turns_from(&self.deps.db, owner, conversation_id, *last_turn).await {
            Ok(Some(stored)) => stored,
            // Gone, or unreadable for now: the live part still works, the log has the rest.
            Ok(None) => return true,
            Err(e) => {
                tracing::warn!("could not read turns for a conversation stream: {e}");
                return true;
            }
        };
        for (user, mut reply) in stored {
            let key = (reply.turn_id, reply.run);
            if announced.contains(&key) {
                continue;
            }
            if reply.outcome.status == MessageStatus::Streaming {
                match self
                    .registry
                    .get(reply.turn_id)
                    .filter(|t| t.run() == reply.run)
                {
                    // Announced with its live log.
                    Some(turn) if !turn.is_finished() => continue,
                    // Ended since it was read: its ending is in memory.
                    Some(turn) => {
                        let written = turn.written();
                        reply.content = written.content;
                        reply.thinking = written.thinking;
                        if let Some(outcome) = turn.outcome() {
                            reply.outcome = outcome;
                        }
                    }
                    None => match self.stored_turn(owner, reply.turn_id).await {
                        Ok(Some((_, repaired, _))) => reply = repaired,
                        _ => continue,
                    },
                }
            }
            announced.insert(key);
            *last_turn = Some(reply.turn_id);
            let line = StreamLine::Turn {
                user: Box::new(user),
                reply: Box::new(reply),
            };
            if out.send(line).await.is_err() {
                return false;
            }
        }
        true
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
            None => match self.stored_turn(owner, turn_id).await? {
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
        // From here a turn that still starts (its send passed the check above earlier) is cut
        // as it starts; the tracker waits for sends in flight too.
        self.cutting.store(true, Ordering::Release);
        self.tasks.close();
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

    /// Turns and conversations held in memory: ended turns are let go a while after they end,
    /// and conversations once no page follows them.
    pub fn held(&self) -> (usize, usize) {
        (
            lock(&self.registry.turns).len(),
            lock(&self.registry.conversations).len(),
        )
    }
}

/// `lines`, holding `slot` (one of its owner's open streams) for as long as the reader reads.
fn held(lines: Lines, slot: Slot) -> Lines {
    use futures::StreamExt;
    Box::pin(lines.map(move |line| {
        let _held = &slot;
        line
    }))
}

/// A stored reply as the events that would have built it.
fn replay_events(conversation_id: Uuid, reply: MessageView) -> Vec<TurnEnvelope> {
    let mut events = vec![TurnEvent::Started {
        conversation_id,
        message_id: reply.id,
        model: reply.model.clone().unwrap_or_default(),
        run: reply.run,
        system_prompt_revision: reply.system_prompt_revision,
    }];
    if !reply.thinking.is_empty() {
        events.push(TurnEvent::Thinking {
            text: reply.thinking,
        });
    }
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
