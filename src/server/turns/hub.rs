//! The hub: what the API asks of turns — send, Continue, follow, Stop — and the drain at
//! shutdown. It claims a turn id, admits it under the owner's limits, begins it in storage and
//! runs it in a supervised task (see `run`); the readers' side is `follow`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::checkpoints::write_checkpoints;
use super::completion::{self, Caller, CompletionError, CompletionEvent, CompletionRequest};
use super::deps::{Admitted, Deps};
use super::error::TurnError;
use super::follow::Readers;
use super::follower;
use super::live::{CancelReason, Lines, LiveTurn, Refusal};
use super::registry::{Claim, Registry};
use super::replicas;
use super::run;
use crate::model::{MessageStatus, Outcome, SendRequest};
use crate::server::catalog::ModelCatalog;
use crate::server::clock::SharedClock;
use crate::server::config::Config;
use crate::server::db::{self, BeginContinuation, BeginTurn, Db, NewTurn, Owner, TurnRecord};
use crate::server::input::ValidSend;
use crate::server::limits::Slot;
use crate::server::pricing::PriceTable;

/// How long Stop waits for the turn to store its text before it says it could not.
const STOP_WAIT: Duration = Duration::from_secs(15);
/// After the grace period, how long cut turns get to store their text.
const STORE_WAIT: Duration = Duration::from_secs(3);

pub struct TurnHub {
    deps: Arc<Deps>,
    registry: Arc<Registry>,
    readers: Arc<Readers>,
    /// Starting turns and the supervisors of running ones, awaited at shutdown.
    tasks: TaskTracker,
    draining: AtomicBool,
    /// Set once the grace period is over: a turn that starts now is cut at once.
    cutting: AtomicBool,
    /// Ends the conversation streams and the checkpoint writer, last thing at shutdown.
    closing: CancellationToken,
    /// The API's completions (see `completion`): a drain gives them the grace turns get, then
    /// cuts them (`cut_completions`) as it cuts turns.
    completions: TaskTracker,
    cut_completions: CancellationToken,
}

/// How storage answered a request to begin a run (a send's first, or a Continue's next).
enum Begun {
    Started(Box<TurnRecord>),
    /// A send of a turn id stored before and since forgotten here: replay it.
    Repeated,
    /// The reply was continued already; that run is the answer.
    AlreadyContinued(u32),
    /// The conversation has a reply streaming, which may be one nothing writes any more.
    Busy(Option<Uuid>),
    /// No, for good: what the claim's readers are told, and what the asker is.
    Refused(Refusal, TurnError),
}

impl Begun {
    fn of_send(begun: BeginTurn, conversation_id: Option<Uuid>) -> Self {
        match begun {
            BeginTurn::Started(record) => Begun::Started(record),
            BeginTurn::Repeated => Begun::Repeated,
            BeginTurn::Busy => Begun::Busy(conversation_id),
            BeginTurn::NoSuchConversation => {
                Begun::Refused(Refusal::NoSuchConversation, TurnError::NoSuchConversation)
            }
            BeginTurn::NoSuchTurn => Begun::Refused(Refusal::NoSuchTurn, TurnError::NoSuchTurn),
            BeginTurn::OverQuota { used, quota } => {
                let words = crate::server::quota::refusal(used, quota);
                Begun::Refused(
                    Refusal::OverQuota(words.clone()),
                    TurnError::OverQuota(words),
                )
            }
        }
    }

    fn of_continuation(begun: BeginContinuation) -> Self {
        match begun {
            BeginContinuation::Started(record) => Begun::Started(record),
            BeginContinuation::AlreadyContinued { run } => Begun::AlreadyContinued(run),
            BeginContinuation::NoSuchTurn => {
                Begun::Refused(Refusal::NoSuchTurn, TurnError::NoSuchTurn)
            }
            BeginContinuation::Refused(why) => {
                Begun::Refused(Refusal::Busy, TurnError::CannotContinue(why))
            }
            BeginContinuation::Busy { conversation_id } => Begun::Busy(Some(conversation_id)),
        }
    }
}

impl TurnHub {
    /// Starts the hub and its checkpoint writer (call inside the runtime).
    pub fn start(
        db: Db,
        catalog: Arc<ModelCatalog>,
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
        let deps = Arc::new(Deps::new(db, catalog, prices, config, clock));
        replicas::start(&deps, &registry, &closing);
        let tasks = deps.tasks.clone();
        Self {
            readers: Arc::new(Readers::new(
                deps.clone(),
                registry.clone(),
                closing.clone(),
            )),
            deps,
            registry,
            tasks,
            draining: AtomicBool::new(false),
            cutting: AtomicBool::new(false),
            closing,
            completions: TaskTracker::new(),
            cut_completions: CancellationToken::new(),
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

    /// One more of the owner's open event streams, or the refusal that says they hold too many.
    fn open_stream(&self, owner: &Owner) -> Result<Slot, TurnError> {
        Ok(self.deps.limits.open_stream(owner)?)
    }

    /// Runs `start` as a task of its own and waits for it: a request dropped midway (the
    /// client's connection broke) must not leave a claimed turn that nothing finishes.
    ///
    /// Spawned at the call, not in an `async fn`: its caller's future would otherwise hold room
    /// for `start` (the turn's whole start, its database calls included) all the while it waits,
    /// and under load thousands of requests wait here.
    fn detached<F>(&self, start: F) -> impl Future<Output = Result<Lines, TurnError>> + use<F>
    where
        F: Future<Output = Result<Lines, TurnError>> + Send + 'static,
    {
        let started = self.tasks.spawn(start);
        async move {
            started.await.map_err(|e| {
                tracing::error!("starting a turn failed: {e}");
                TurnError::StartFailed
            })?
        }
    }

    /// Starts a turn, or re-attaches to it if this turn id was sent before, and returns its
    /// events. The request is checked once, before anything is claimed or stored.
    pub async fn send(
        self: &Arc<Self>,
        owner: &Owner,
        request: SendRequest,
    ) -> Result<Lines, TurnError> {
        self.refuse_while_draining()?;
        let stream = self.open_stream(owner)?;
        let catalog = &self.deps.catalog;
        let send = ValidSend::new(
            request,
            |id| catalog.contains(id),
            &self.deps.default_system_prompt,
        )?;
        let hub = self.clone();
        let owner = owner.clone();
        let lines = self
            .detached(async move {
                let deps = &hub.deps;
                let begin = || async {
                    let turn = NewTurn {
                        send: &send,
                        default_model: deps.catalog.default_model(),
                        quota_bytes: deps.storage_quota,
                    };
                    let begun = db::begin_turn(&deps.db, &owner, turn).await?;
                    Ok(Begun::of_send(begun, send.conversation_id()))
                };
                hub.begin(&owner, send.turn_id(), 1, begin).await
            })
            .await?;
        Ok(held(lines, stream))
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
            .detached(async move {
                let db = &hub.deps.db;
                let begin = || async {
                    let begun = db::begin_continuation(db, &owner, turn_id, from_run).await?;
                    Ok(Begun::of_continuation(begun))
                };
                hub.begin(&owner, turn_id, from_run.saturating_add(1), begin)
                    .await
            })
            .await?;
        Ok(held(lines, stream))
    }

    /// Begins run `run` of `turn_id`: claims it in memory first (so two concurrent requests for
    /// it start one run; the second follows the first), admits it under the owner's limits, then
    /// asks storage (`begin`) — once more after repairing a reply that was left streaming with
    /// nothing writing it.
    async fn begin<B, F>(
        &self,
        owner: &Owner,
        turn_id: Uuid,
        run: u32,
        begin: B,
    ) -> Result<Lines, TurnError>
    where
        B: Fn() -> F,
        F: Future<Output = Result<Begun, TurnError>>,
    {
        let (live, claimed) = self.registry.claim(turn_id, owner, run)?;
        if !claimed {
            // Asked again (a repeated send or Continue): the first request's answer is this one's.
            return self.readers.follow_claimed(owner, live).await;
        }
        let claim = Claim::new(&self.registry, live);
        let slot = match self.deps.admit(owner).await {
            Ok(slot) => slot,
            Err(limit) => {
                claim.refuse(Refusal::Limited(limit.clone()));
                return Err(limit.into());
            }
        };
        let mut repaired = false;
        loop {
            return match begin().await? {
                Begun::Started(record) => {
                    let live = claim.settle();
                    live.set_record(*record);
                    self.spawn(live.clone(), slot);
                    Ok(follower::lines(live, 0, self.heartbeat()))
                }
                Begun::Repeated => self.readers.replay_into(claim, owner).await,
                Begun::AlreadyContinued(run) => {
                    claim.refuse(Refusal::AlreadyContinued(run));
                    self.readers.events(owner, turn_id, run, 0).await
                }
                Begun::Busy(conversation_id) => {
                    if !repaired && self.readers.repair_orphan(owner, conversation_id).await? {
                        repaired = true;
                        continue;
                    }
                    claim.refuse(Refusal::Busy);
                    Err(TurnError::Busy)
                }
                Begun::Refused(refusal, error) => {
                    claim.refuse(refusal);
                    Err(error)
                }
            };
        }
    }

    /// Runs the turn in a supervised task: if the task dies, the supervisor stores the reply as
    /// failed with its text and ends the log, so no reader waits forever and Stop tells the truth.
    /// The run holds its owner's running slot until it has stored its end (or its task dies).
    fn spawn(&self, live: Arc<LiveTurn>, slot: Admitted) {
        self.registry.publish(&live);
        let deps = self.deps.clone();
        let registry = self.registry.clone();
        // Every log line of the turn carries its id (in JSON logs too, as a span field).
        let span = tracing::info_span!("turn", turn_id = %live.turn_id);
        let runner = tokio::spawn(tracing::Instrument::instrument(
            run::run_turn(deps.clone(), live.clone(), slot),
            span.clone(),
        ));
        if self.cutting.load(Ordering::Acquire) {
            live.cancel(CancelReason::Shutdown);
        }
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                if let Err(error) = runner.await {
                    if !live.is_finished() {
                        // Boxed: this task waits beside every running reply, and would otherwise
                        // be as large as the store it almost never runs (about 1.8 KB).
                        Box::pin(run::store_crashed(&deps, &live, &error)).await;
                    }
                }
                registry.forget_later(live, deps.settings.keep_finished);
            },
            span,
        ));
    }

    /// A turn's events after `after_seq` (see `follow`), as one of the owner's open streams.
    pub async fn events(
        &self,
        owner: &Owner,
        turn_id: Uuid,
        run: u32,
        after_seq: u32,
    ) -> Result<Lines, TurnError> {
        let stream = self.open_stream(owner)?;
        let lines = self.readers.events(owner, turn_id, run, after_seq).await?;
        Ok(held(lines, stream))
    }

    /// A conversation's turns as they happen, for a page showing it (see `follow`).
    pub async fn conversation_events(
        &self,
        owner: &Owner,
        conversation_id: Uuid,
        from_turn: Option<Uuid>,
    ) -> Result<Lines, TurnError> {
        let stream = self.open_stream(owner)?;
        let lines = self
            .readers
            .conversation(owner, conversation_id, from_turn)
            .await?;
        Ok(held(lines, stream))
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
            None => {
                // Another replica may run it: told first (the replica running it checks the
                // owner), so the provider's connection closes before anything is read here.
                let stop = db::replicas::Signal::Stop {
                    turn: turn_id,
                    owner: owner.clone(),
                };
                db::replicas::tell(&self.deps.db, stop).await?;
                match self.readers.stored_turn(owner, turn_id).await? {
                    Some((_, reply, _)) if reply.outcome.status == MessageStatus::Streaming => {
                        self.stopped_elsewhere(owner, turn_id).await
                    }
                    Some((_, reply, _)) => Ok(reply.outcome),
                    None => Err(TurnError::NoSuchTurn),
                }
            }
        }
    }

    /// How a turn another replica runs ended, once that replica has stored it (it was told to
    /// stop it).
    async fn stopped_elsewhere(&self, owner: &Owner, turn_id: Uuid) -> Result<Outcome, TurnError> {
        /// How often the stored reply is read while its replica stores the ending.
        const LOOK_EVERY: Duration = Duration::from_millis(20);
        let stored = async {
            loop {
                tokio::time::sleep(LOOK_EVERY).await;
                match self.readers.stored_turn(owner, turn_id).await? {
                    Some((_, reply, _)) if reply.outcome.status == MessageStatus::Streaming => {}
                    Some((_, reply, _)) => return Ok(reply.outcome),
                    None => return Err(TurnError::NoSuchTurn),
                }
            }
        };
        tokio::time::timeout(STOP_WAIT, stored)
            .await
            .map_err(|_| TurnError::StopUnconfirmed)?
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
        self.completions.close();
        let _ = tokio::time::timeout(
            grace,
            futures::future::join(
                futures::future::join_all(running.iter().map(|t| t.wait_finished(grace))),
                self.completions.wait(),
            ),
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
        self.cut_completions.cancel();
        let stored = futures::future::join(self.tasks.wait(), self.completions.wait());
        if tokio::time::timeout(STORE_WAIT, stored).await.is_err() {
            tracing::error!("some replies could not be stored before shutdown");
        }
        // Its replies are stored: the lease goes, and nothing waits for it to run out.
        if let Err(e) = db::replicas::retire(&self.deps.db).await {
            tracing::warn!("could not give up this replica's lease: {e}");
        }
        self.closing.cancel();
    }

    /// Starts a completion asked through the OpenAI-compatible API (see `completion`); its
    /// events arrive on the receiver, and dropping the receiver ends it.
    pub async fn complete(
        &self,
        caller: Caller,
        request: CompletionRequest,
    ) -> Result<tokio::sync::mpsc::Receiver<CompletionEvent>, CompletionError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(CompletionError::Draining);
        }
        completion::start(
            &self.deps,
            &self.completions,
            &self.cut_completions,
            caller,
            request,
        )
        .await
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
        self.registry.sizes()
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
