//! Storage. All SQL lives here, in `db/` by topic, and every query is scoped to an [`Owner`], so
//! per-user accounts (and a Postgres backend) change this module and nothing above it. This file
//! holds what every topic shares; the topics' items are re-exported here, so callers name them
//! `db::…` whichever file holds them:
//!
//! - `pool`: opening the database, its files' modes, backups, the readiness check;
//! - `conversations`: the list, a conversation as the page shows it, rename, delete, purge;
//! - `turns`: recording a turn or a continuation, reading turns back, a prompt's history
//!   (newest first, a page of turns at a time);
//! - `replies`: a running reply's checkpoints, how it ended, its rendering, interruptions;
//! - `prompts`: system prompt revisions;
//! - `messages`: a `messages` row and what it means, and the owner checks on messages;
//! - `ids`: uuids as they are stored (text);
//! - `lookups`: reads the topics share (a conversation's row, whether a reply is streaming);
//! - `totals`: the figures kept per turn (the totals before each question, on its row);
//! - `branches`, `accounts`, `usage`: the turn tree, users and settings, the spending ledger;
//! - `search`: titles and messages through the FTS5 indexes the triggers keep in step (on
//!   Postgres its tsvector columns);
//! - `shares`: share links, each a pinned snapshot of a branch;
//! - `api_keys`: keys for the OpenAI-compatible API, by their hash, and each one's month;
//! - `groups`: groups of people, their members (by hand and through the identity provider),
//!   models and budgets, and the budget warnings claimed for the webhook;
//! - `titles`: titles from the first exchange, never over a person's;
//! - `transfer`: a conversation read whole for an export, an import stored in one transaction;
//! - `attachments`: uploads, their blobs a chunk at a time, the turns that carry them;
//! - `to_postgres`: a single-node database copied into Postgres, checked by counts;
//! - `replicas`: which process writes each streaming reply, leases, signals between replicas;
//! - `limits`: running replies and turns per minute counted across replicas (Postgres);
//! - `throttles`: sign-in throttles' counts across replicas (Postgres).
//!
//! Two engines: SQLite (the default) and Postgres, chosen at start-up by `RILL_DATABASE`. A
//! [`Db`] knows its engine. Where the engines agree, a query's text is written once (`$1`
//! parameters, which SQLite reads too) and run on either pool by [`on_reader!`], [`on_writer!`]
//! or [`in_transaction!`], which repeat the body once per engine; where they differ (upserts on
//! a case-blind name, time functions, full-text search), `match db.engine()` holds each
//! engine's text side by side. Steps several calls share take a [`Conn`] (either engine's
//! connection, inside a transaction or the batch's savepoint) and run through [`on_conn!`].
//!
//! A message's owner is its conversation's: queries check it with a correlated `EXISTS` on the
//! conversation's primary key (an `IN (SELECT … WHERE owner = ?)` would list every conversation
//! of the owner, per statement).
//!
//! Writes are built for many turns at once: every transaction that writes takes SQLite's write
//! lock up front (`BEGIN IMMEDIATE`, so it waits its turn instead of failing to upgrade a read),
//! transactions are a few statements long, the turn engine's writes (a turn begun, a run's
//! reservation, a reply's end) are committed many at a time by one task (`batch`: group
//! commit), and the text of running replies is written by one task in batches
//! ([`save_checkpoints`]) rather than by each turn.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};

use crate::error::ApiError;

/// Runs `$body` with `$pool` the engine's pool for reading (the body is compiled once per
/// engine, so one query's text serves both).
macro_rules! on_reader {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db.pools() {
            $crate::server::db::Pools::Sqlite { reader, .. } => {
                let $pool = reader;
                $body
            }
            $crate::server::db::Pools::Postgres(pool) => {
                let $pool = pool;
                $body
            }
        }
    };
}

/// Runs `$body` with `$pool` the engine's pool for a single-statement write (on SQLite the one
/// writer connection).
macro_rules! on_writer {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db.pools() {
            $crate::server::db::Pools::Sqlite { writer, .. } => {
                let $pool = writer;
                $body
            }
            $crate::server::db::Pools::Postgres(pool) => {
                let $pool = pool;
                $body
            }
        }
    };
}

/// Runs `$body` with `$tx` a write transaction begun on the engine (SQLite: `BEGIN IMMEDIATE`,
/// taking the write lock up front); the body commits it.
macro_rules! in_transaction {
    ($db:expr, |$tx:ident| $body:expr) => {
        match $db.pools() {
            $crate::server::db::Pools::Sqlite { writer, .. } => {
                #[allow(unused_mut)]
                let mut $tx = writer.begin_with("BEGIN IMMEDIATE").await?;
                $body
            }
            $crate::server::db::Pools::Postgres(pool) => {
                #[allow(unused_mut)]
                let mut $tx = pool.begin().await?;
                $body
            }
        }
    };
}

/// Runs `$body` with `$c` the plain connection (`&mut SqliteConnection` or `&mut PgConnection`)
/// inside the [`Conn`] `$conn`: the statements of a step that several calls share, inside their
/// transaction, the batch's savepoint or a connection a read took from its pool.
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match &mut *$conn {
            $crate::server::db::Conn::Sqlite(connection) => {
                let $c = &mut **connection;
                $body
            }
            $crate::server::db::Conn::Postgres(connection) => {
                let $c = &mut **connection;
                $body
            }
        }
    };
}

pub mod accounts;
pub mod api_keys;
pub mod attachments;
mod batch;
pub mod branches;
mod conversations;
pub mod groups;
mod ids;
pub mod limits;
mod lookups;
mod messages;
mod pool;
mod prompts;
pub mod replicas;
mod replies;
pub mod search;
pub mod shares;
pub mod throttles;
pub mod titles;
pub mod to_postgres;
mod totals;
pub mod transfer;
mod turns;
pub mod usage;

pub use self::conversations::{
    conversation_exists, conversations_between, delete_conversation, get_conversation,
    get_conversation_through, list_conversations, pinned_conversations, purge_deleted,
    rename_conversation, restore_conversation, set_conversation_model, set_pinned, PINNED_MAX,
    THROUGH_TURNS, WINDOW_BYTES, WINDOW_MESSAGES,
};
pub use self::pool::{backup, check_file_modes, connect, migrate, ping};
pub use self::prompts::{set_system_prompt, UNUSED_PROMPT_REVISIONS_KEPT};
pub use self::replies::{
    error_details, finish_reply, interrupt_abandoned, interrupt_reply, save_checkpoints,
    store_html, streaming_reply_of, Checkpoint, ReplyRef, ReplyText, INTERRUPTED_BY_RESTART,
};
pub use self::turns::{
    begin_continuation, begin_turn, history_page, stored_bytes, turn, turns_from,
    BeginContinuation, BeginTurn, CannotContinue, HistoryPage, NewTurn, TurnRecord,
};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Backup(String),
    /// An upload's spooled file could not be read back while it was stored.
    #[error("reading an upload's spooled file: {0}")]
    Spool(std::io::Error),
    /// An import linked a file it had not prepared (its caller checks every name first).
    #[error("an imported question names a file that was not prepared: {0}")]
    UnpreparedFile(String),
    #[error("{0}")]
    FileModes(String),
    /// A batched write whose transaction could not be committed (see `batch`).
    #[error("{0}")]
    NotWritten(&'static str),
    /// `rill migrate-to-postgres` refused or found the copy short.
    #[error("{0}")]
    Copy(String),
    /// A step of SQLite's own machinery (its search index) asked of Postgres: a bug, since
    /// every such step is behind its engine's branch.
    #[error("a step of SQLite's own (its search index) was asked of a Postgres database")]
    NotOnPostgres,
}

/// A storage fault is the server's problem: logged here in full, opaque to the person.
impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        tracing::error!("{error}");
        ApiError::Internal
    }
}

/// Whose data a query may touch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner(pub String);

/// The database: on SQLite a pool of readers and one writer (SQLite lets one connection write
/// at a time; here writers wait their turn in the pool, in order, instead of racing for the
/// lock and sleeping in SQLite's busy handler, and no write of ours ever sees SQLITE_BUSY from
/// another); on Postgres one pool, its concurrency the server's own.
#[derive(Clone, Debug)]
pub struct Db {
    pools: Pools,
    /// The turn engine's small writes, many in one transaction (on either engine).
    batcher: batch::Batcher,
    /// The replica this process is (see `replicas`): random, so a restart is a new one.
    replica: std::sync::Arc<str>,
}

/// Which engine holds the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Each engine's connections (what the dispatch macros match on).
#[derive(Clone, Debug)]
pub enum Pools {
    Sqlite {
        reader: SqlitePool,
        writer: SqlitePool,
    },
    Postgres(PgPool),
}

impl Db {
    pub fn engine(&self) -> Engine {
        match self.pools {
            Pools::Sqlite { .. } => Engine::Sqlite,
            Pools::Postgres(_) => Engine::Postgres,
        }
    }

    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// SQLite's connections for reading (WAL: they never wait for the writer), for the steps
    /// of SQLite's own machinery (FTS5); `NotOnPostgres` on Postgres.
    pub fn reader(&self) -> Result<&SqlitePool, DbError> {
        match &self.pools {
            Pools::Sqlite { reader, .. } => Ok(reader),
            Pools::Postgres(_) => Err(DbError::NotOnPostgres),
        }
    }

    /// SQLite's one connection that writes, for the steps of SQLite's own machinery;
    /// `NotOnPostgres` on Postgres.
    pub fn writer(&self) -> Result<&SqlitePool, DbError> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => Ok(writer),
            Pools::Postgres(_) => Err(DbError::NotOnPostgres),
        }
    }

    fn batcher(&self) -> &batch::Batcher {
        &self.batcher
    }

    /// Write transactions the batch writer has committed or tried (see `batch`).
    pub fn batches(&self) -> u64 {
        self.batcher.batches()
    }

    /// Writes asked of the batch writer and not yet answered.
    pub fn pending_writes(&self) -> usize {
        self.batcher.pending()
    }

    /// A connection for reading (on SQLite a reader's), for steps that several calls share.
    async fn read(&self) -> Result<Held, DbError> {
        Ok(match &self.pools {
            Pools::Sqlite { reader, .. } => Held::Sqlite(reader.acquire().await?),
            Pools::Postgres(pool) => Held::Postgres(pool.acquire().await?),
        })
    }
}

/// A connection of either engine, borrowed: what the steps several calls share run on (see
/// [`on_conn!`]).
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl<'c> From<&'c mut SqliteConnection> for Conn<'c> {
    fn from(connection: &'c mut SqliteConnection) -> Self {
        Self::Sqlite(connection)
    }
}

impl<'c> From<&'c mut PgConnection> for Conn<'c> {
    fn from(connection: &'c mut PgConnection) -> Self {
        Self::Postgres(connection)
    }
}

/// A connection taken from a pool for a read of several steps.
enum Held {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Held {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::Sqlite(c) => Conn::Sqlite(c),
            Self::Postgres(c) => Conn::Postgres(c),
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
