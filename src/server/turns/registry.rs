//! The turns in memory: running ones, and ended ones kept a while for late readers; each
//! watched conversation's latest turn; and the claim that makes a turn id this process's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use super::error::TurnError;
use super::live::{lock, LiveTurn, Refusal};
use crate::server::db::Owner;

pub(super) struct Registry {
    turns: Mutex<HashMap<Uuid, Arc<LiveTurn>>>,
    /// Each watched or active conversation's latest turn, for the pages showing it.
    conversations: Mutex<HashMap<Uuid, watch::Sender<Option<Arc<LiveTurn>>>>>,
    /// Bumped when another replica saved running text (see `remote`).
    saved_elsewhere: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            turns: Mutex::default(),
            conversations: Mutex::default(),
            saved_elsewhere: watch::Sender::new(0),
        }
    }
}

impl Registry {
    pub fn get(&self, turn_id: Uuid) -> Option<Arc<LiveTurn>> {
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

    /// Whether `turn_id`'s run `run` is being written by a turn in this process.
    pub fn is_running(&self, turn_id: Uuid, run: u32) -> bool {
        self.get(turn_id)
            .is_some_and(|t| t.run() == run && !t.is_finished())
    }

    /// Turns and conversations held.
    pub fn sizes(&self) -> (usize, usize) {
        (lock(&self.turns).len(), lock(&self.conversations).len())
    }

    /// Claims `turn_id` for its run `run` (1 for a send, later runs for a Continue), in one
    /// step under the lock. A turn already here at that run or a later one is returned to follow
    /// (`false`): a repeated send, a repeated Continue. An ended earlier run is replaced by the
    /// claim (its readers are answered from the database); a running one makes the claim busy.
    pub fn claim(
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
    pub fn publish(&self, turn: &Arc<LiveTurn>) {
        let Some(record) = turn.record() else { return };
        let mut conversations = lock(&self.conversations);
        let sender = conversations
            .entry(record.conversation_id)
            .or_insert_with(|| watch::Sender::new(None));
        sender.send_replace(Some(turn.clone()));
    }

    /// Wakes the pages watching a conversation, to read what another replica began in it.
    pub fn poke(&self, conversation_id: Uuid) {
        if let Some(sender) = lock(&self.conversations).get(&conversation_id) {
            sender.send_modify(|_| {});
        }
    }

    /// Wakes the pages watching any conversation (signals may have been missed).
    pub fn poke_all(&self) {
        for sender in lock(&self.conversations).values() {
            sender.send_modify(|_| {});
        }
    }

    /// Another replica saved running text: readers of its replies read them now.
    pub fn saved_elsewhere(&self) {
        self.saved_elsewhere.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn watch_saves_elsewhere(&self) -> watch::Receiver<u64> {
        self.saved_elsewhere.subscribe()
    }

    pub fn watch(&self, conversation_id: Uuid) -> watch::Receiver<Option<Arc<LiveTurn>>> {
        self.sweep_conversations();
        lock(&self.conversations)
            .entry(conversation_id)
            .or_insert_with(|| watch::Sender::new(None))
            .subscribe()
    }

    /// Keeps an ended turn for late readers a while, then lets the database answer for it.
    pub fn forget_later(self: &Arc<Self>, turn: Arc<LiveTurn>, after: Duration) {
        let registry = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            registry.remove(&turn);
        });
    }
}

/// A claim that is given up (its readers told) unless it is settled: a start that fails in any
/// way, a panic included, never leaves a claimed turn id that nothing ends.
pub(super) struct Claim<'a> {
    registry: &'a Registry,
    turn: Arc<LiveTurn>,
    settled: bool,
}

impl<'a> Claim<'a> {
    pub fn new(registry: &'a Registry, turn: Arc<LiveTurn>) -> Self {
        Self {
            registry,
            turn,
            settled: false,
        }
    }

    pub fn turn_id(&self) -> Uuid {
        self.turn.turn_id
    }

    /// The claim became a run, or a replay.
    pub fn settle(mut self) -> Arc<LiveTurn> {
        self.settled = true;
        self.turn.clone()
    }

    pub fn refuse(mut self, refusal: Refusal) {
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
