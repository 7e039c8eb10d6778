//! Running turns.
//!
//! A turn belongs to the server, not to the HTTP request that started it: the provider call runs in
//! a supervised task owned by [`TurnHub`], every event goes into a per-turn log numbered from 1, and
//! any number of readers follow that log from any point, with heartbeats while it is quiet. Stop
//! cancels the task, which drops the provider stream and with it the upstream connection. A reader
//! that goes away without Stop (closed tab, reload, lost network) leaves the turn running to
//! completion, so its text is stored in full and the page re-attaches to it.
//!
//! Read in this order: `hub` (what the API calls), `run` (one turn, top to bottom), `history`
//! (what of the branch a send reads), `prompt` (what is sent), `budget` (whether the owner may
//! spend it), `titles` (a conversation's title from its first exchange), `follow` (the readers'
//! side: re-attach, replay, a conversation's stream), `registry` (the turns in memory), `live`
//! (one run's event log), `checkpoints` (saving running text), `completion` (a run asked through
//! the OpenAI-compatible API: no conversation, the same limits, budgets and ledger), `replicas`
//! (this replica among others: its lease, dead replicas' replies, the others' signals) and
//! `remote` (following a turn another replica runs, through its rows); `deps` and `error` are
//! shared by all.
//! Arrows only point down this list's dependencies: nothing imports `hub`.

mod budget;
mod checkpoints;
mod completion;
mod deps;
mod error;
mod files;
mod follow;
mod follower;
mod history;
mod hub;
mod live;
mod prompt;
mod registry;
mod remote;
mod replicas;
mod run;
mod titles;

pub use budget::{settle_open_runs, KeyBudget};
pub use completion::{Caller, CompletionError, CompletionEvent, CompletionRequest};
pub use error::{RunError, TurnError};
pub use hub::TurnHub;
pub use live::{ndjson_chunks, Lines};
pub use replicas::join;
