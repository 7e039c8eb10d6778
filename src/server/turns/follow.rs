//! The readers' side of turns: following a run's events live or from storage, a page following
//! a whole conversation, re-attaching to a turn another request claimed, and replaying a stored
//! turn whose live log is gone, and (through `remote`) a turn another replica runs. Also the repair of a reply left `streaming` with nothing writing
//! it, which every answer from storage goes through first.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::budget;
use super::deps::Deps;
use super::error::TurnError;
use super::follower::{self, Follower};
use super::live::{spawn_lines, Lines, LiveTurn, Refusal};
use super::registry::{Claim, Registry};
use super::remote;
use crate::model::{MessageStatus, MessageView, StreamLine, TurnEnvelope, TurnEvent};
use crate::server::db::{self, Owner, ReplyRef, TurnRecord};

pub(super) struct Readers {
    deps: Arc<Deps>,
    registry: Arc<Registry>,
    /// Ends the conversation streams, last thing at shutdown.
    closing: CancellationToken,
}

impl Readers {
    pub fn new(deps: Arc<Deps>, registry: Arc<Registry>, closing: CancellationToken) -> Self {
        Self {
            deps,
            registry,
            closing,
        }
    }

    fn heartbeat(&self) -> std::time::Duration {
        self.deps.settings.heartbeat
    }

    /// Follows a turn another request claimed, once that request knows whether it became a run;
    /// a refusal is answered the same way to both.
    pub async fn follow_claimed(
        &self,
        owner: &Owner,
        live: Arc<LiveTurn>,
    ) -> Result<Lines, TurnError> {
        match live.begun().await {
            Ok(()) => Ok(follower::lines(live, 0, self.heartbeat())),
            Err(Refusal::AlreadyContinued(run)) => self.events(owner, live.turn_id, run, 0).await,
            Err(refusal) => Err(refusal.into()),
        }
    }

    /// A turn id sent before and since forgotten here: its claim replays the stored turn.
    pub async fn replay_into(&self, claim: Claim<'_>, owner: &Owner) -> Result<Lines, TurnError> {
        let Some((user, reply, conversation_id)) = self.stored_turn(owner, claim.turn_id()).await?
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
        Ok(follower::lines(live, 0, self.heartbeat()))
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
                let from = if turn.run() == run && !turn.is_replay() {
                    after_seq
                } else {
                    0
                };
                Ok(follower::lines(turn, from, self.heartbeat()))
            }
            Some(_) => Err(TurnError::NoSuchTurn),
            None => {
                let (_, reply, conversation_id) = self
                    .stored_turn(owner, turn_id)
                    .await?
                    .ok_or(TurnError::NoSuchTurn)?;
                if reply.outcome.status == MessageStatus::Streaming {
                    // Another replica writes it.
                    return Ok(self.remote(owner, conversation_id, reply));
                }
                // The stored reply is whole: it is replayed from the start, whatever the reader saw.
                let lines: Vec<StreamLine> = replay_events(conversation_id, reply)
                    .into_iter()
                    .map(StreamLine::Event)
                    .collect();
                Ok(Box::pin(futures::stream::iter(lines)))
            }
        }
    }

    /// A reply another replica writes, followed through its rows (see `remote`).
    fn remote(&self, owner: &Owner, conversation_id: Uuid, reply: MessageView) -> Lines {
        let db = self.deps.db.clone();
        let owner = owner.clone();
        let saves = self.registry.watch_saves_elsewhere();
        let heartbeat = self.heartbeat();
        spawn_lines(move |out| async move {
            remote::follow(&db, &owner, conversation_id, reply, saves, heartbeat, &out).await;
        })
    }

    /// A conversation's turns as they happen, for a page showing it: first the turns from
    /// `from_turn` on (the page may have missed them), then every turn started from now on, each
    /// with its events, and heartbeats in between. Ends when the server shuts down.
    pub async fn conversation(
        self: &Arc<Self>,
        owner: &Owner,
        conversation_id: Uuid,
        from_turn: Option<Uuid>,
    ) -> Result<Lines, TurnError> {
        // Subscribe before reading the database, so no turn falls between the two.
        let mut latest = self.registry.watch(conversation_id);
        let mut titles = self.deps.titles.subscribe();
        let Some(title) =
            db::titles::conversation_title(&self.deps.db, owner, conversation_id).await?
        else {
            return Err(TurnError::NoSuchConversation);
        };
        let readers = self.clone();
        let owner = owner.clone();
        Ok(spawn_lines(move |out| async move {
            let mut announced: HashSet<(Uuid, u32)> = HashSet::new();
            let mut last_turn = from_turn;
            // The title now: one that arrived while the page was between streams is not missed.
            if out.send(StreamLine::Title { title }).await.is_err() {
                return;
            }
            loop {
                // Turns stored since the last one announced: ones that began and ended while
                // this stream was busy with another turn are not skipped.
                if !readers
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
                        () = Follower::new(turn.clone(), 0, readers.heartbeat()).pump(&out) => {}
                        () = readers.closing.cancelled() => return,
                    }
                    continue;
                }
                tokio::select! {
                    () = readers.closing.cancelled() => return,
                    changed = latest.changed() => if changed.is_err() { return },
                    change = titles.recv() => match change {
                        Ok(change) if change.conversation_id == conversation_id => {
                            let line = StreamLine::Title { title: change.title };
                            if out.send(line).await.is_err() {
                                return;
                            }
                        }
                        // Another conversation's, or missed in a burst (the next load reads it).
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    () = tokio::time::sleep(readers.heartbeat()) => {
                        if out.send(StreamLine::Heartbeat).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }))
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
            // Still streaming here means another replica writes it: its events follow.
            let elsewhere =
                (reply.outcome.status == MessageStatus::Streaming).then(|| reply.clone());
            let line = StreamLine::Turn {
                user: Box::new(user),
                reply: Box::new(reply),
            };
            if out.send(line).await.is_err() {
                return false;
            }
            if let Some(reply) = elsewhere {
                let saves = self.registry.watch_saves_elsewhere();
                tokio::select! {
                    () = remote::follow(&self.deps.db, owner, conversation_id, reply, saves, self.heartbeat(), out) => {}
                    () = self.closing.cancelled() => return false,
                }
                if out.is_closed() {
                    return false;
                }
            }
        }
        true
    }

    /// A turn as stored; a reply left streaming with nothing writing it is repaired first.
    pub async fn stored_turn(
        &self,
        owner: &Owner,
        turn_id: Uuid,
    ) -> Result<Option<(MessageView, MessageView, Uuid)>, TurnError> {
        let Some((user, reply, conversation_id)) = db::turn(&self.deps.db, owner, turn_id).await?
        else {
            return Ok(None);
        };
        if reply.outcome.status == MessageStatus::Streaming
            && !self.registry.is_running(reply.turn_id, reply.run)
        {
            self.repair_orphan(owner, Some(conversation_id)).await?;
            return Ok(db::turn(&self.deps.db, owner, turn_id).await?);
        }
        Ok(Some((user, reply, conversation_id)))
    }

    /// A conversation's streaming reply that no turn here is writing — its end could not be
    /// stored, or a crash left it — is marked interrupted. Returns whether one was.
    pub async fn repair_orphan(
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
        if self.registry.is_running(reply.turn_id, reply.run) {
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
            budget::settle_open_runs(&self.deps.db, &self.deps.prices, Some(reply.message_id))
                .await?;
        }
        Ok(repaired)
    }
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
