//! Replicas (issue 28): which server process writes each streaming reply, each process's lease,
//! and the signals replicas send one another through Postgres.
//!
//! Every process that serves is a replica with a random id ([`Db::replica`]); the replies it
//! begins or continues name it (`messages.replica`), in the same transaction that makes them
//! `streaming`. On Postgres each replica renews its row in `replicas` every second; a streaming
//! reply whose replica has not renewed within the lease is *abandoned* (the process died), and
//! any replica marks it interrupted with its last checkpoint (`replies::interrupt_abandoned`), so
//! Continue works from any replica. The lease is judged by the database's clock, so the
//! replicas' own clocks need not agree. A SQLite file is served by one process: registering
//! there forgets every earlier process, whose replies are then all abandoned.
//!
//! Signals ride on Postgres `LISTEN/NOTIFY` (delivered when the sender's transaction commits,
//! to every replica listening): Stop for a turn another replica runs, and "a turn began" for
//! the pages other replicas show that conversation on. They are wake-ups only: the rows stay
//! the truth, so a signal lost while a listener reconnects costs time, never data.

use std::time::Duration;

use sqlx::postgres::PgListener;
use uuid::Uuid;

use super::{now_ms, Conn, Db, DbError, Engine, Owner, Pools};

/// The database's clock in ms, per engine.
pub(super) fn clock_ms(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        Engine::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

/// `messages.replica` is alive: its lease (`$lease` ms) has not run out.
pub(super) fn alive(engine: Engine, lease: u32) -> String {
    format!(
        "EXISTS (SELECT 1 FROM replicas r WHERE r.id = messages.replica
                   AND r.heartbeat_at > {} - ${lease})",
        clock_ms(engine)
    )
}

/// A reply may be marked interrupted by this replica: nothing else that lives writes it (it
/// names no replica, or this one, or one whose lease ran out). `$me` and `$lease` are the
/// placeholders' numbers.
pub(super) fn not_written_elsewhere(engine: Engine, me: u32, lease: u32) -> String {
    format!(
        "(messages.replica IS NULL OR messages.replica = ${me} OR NOT {})",
        alive(engine, lease)
    )
}

/// A lease as the SQL compares it (ms).
pub(super) fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

/// How long a replica stays alive without renewing its lease (the time to interrupt a dead
/// replica's replies is at most this plus one sweep).
pub const LEASE: Duration = Duration::from_secs(5);
/// How often a replica renews its lease and looks for abandoned replies.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// A dead replica's row is forgotten after this (its replies were interrupted long before).
pub(super) const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

impl Db {
    /// The replica this handle writes as (random per process).
    pub fn replica(&self) -> &str {
        &self.replica
    }
}

/// Makes this process a replica with a fresh lease, before it begins any turn. On SQLite, where
/// one process serves the file, every earlier process is forgotten.
pub async fn register(db: &Db) -> Result<(), DbError> {
    let sql = format!(
        "INSERT INTO replicas (id, started_at, heartbeat_at) VALUES ($1, $2, {})
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        clock_ms(db.engine())
    );
    in_transaction!(db, |tx| {
        if db.engine() == Engine::Sqlite {
            sqlx::query("DELETE FROM replicas WHERE id <> $1")
                .bind(db.replica())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(&sql)
            .bind(db.replica())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    })
}

/// Renews this replica's lease.
pub async fn renew(db: &Db) -> Result<(), DbError> {
    let sql = format!(
        "UPDATE replicas SET heartbeat_at = {} WHERE id = $1",
        clock_ms(db.engine())
    );
    let renewed = on_writer!(db, |pool| sqlx::query(&sql)
        .bind(db.replica())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
    if renewed == 0 {
        // Forgotten (a long pause): come back, so the replies begun from now on are kept.
        register(db).await?;
    }
    Ok(())
}

/// Gives up the lease at a clean exit, once every reply of this replica is stored.
pub async fn retire(db: &Db) -> Result<(), DbError> {
    on_writer!(db, |pool| sqlx::query("DELETE FROM replicas WHERE id = $1")
        .bind(db.replica())
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// What one replica tells the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Stop this turn, if you run it and it is this owner's.
    Stop { turn: Uuid, owner: Owner },
    /// A turn began in this conversation: pages following it should look.
    Began(Uuid),
    /// Running replies' text was saved: pages following them should read it.
    Saved,
}

const STOP: &str = "rill_stop";
const BEGAN: &str = "rill_began";
const SAVED: &str = "rill_saved";

impl Signal {
    fn channel_and_payload(&self) -> (&'static str, String) {
        match self {
            // The turn id first: an owner's id may hold any character.
            Signal::Stop { turn, owner } => (STOP, format!("{turn} {}", owner.0)),
            Signal::Began(conversation) => (BEGAN, conversation.to_string()),
            Signal::Saved => (SAVED, String::new()),
        }
    }
}

/// Tells every replica (this one included) `signal`. Nothing to tell on SQLite, where this
/// process is the only one.
pub async fn tell(db: &Db, signal: Signal) -> Result<(), DbError> {
    let Pools::Postgres(pool) = db.pools() else {
        return Ok(());
    };
    let (channel, payload) = signal.channel_and_payload();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(pool)
        .await?;
    Ok(())
}

/// [`tell`], sent when the transaction `conn` is in commits.
pub(super) async fn tell_in(conn: &mut Conn<'_>, signal: Signal) -> Result<(), DbError> {
    let Conn::Postgres(c) = conn else {
        return Ok(());
    };
    let (channel, payload) = signal.channel_and_payload();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(&mut **c)
        .await?;
    Ok(())
}

/// The signals replicas send, as this replica hears them (Postgres only).
pub struct Signals(PgListener);

impl Signals {
    /// Starts listening; `None` on SQLite.
    pub async fn listen(db: &Db) -> Result<Option<Self>, DbError> {
        let Pools::Postgres(pool) = db.pools() else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen_all([STOP, BEGAN, SAVED]).await?;
        Ok(Some(Self(listener)))
    }

    /// The next signal. A lost connection is opened again (signals sent meanwhile are lost:
    /// the rows still tell the truth); an error is returned only if that fails.
    pub async fn next(&mut self) -> Result<Signal, DbError> {
        loop {
            let notification = self.0.recv().await?;
            let payload = notification.payload();
            match notification.channel() {
                SAVED => return Ok(Signal::Saved),
                STOP => {
                    let Some((turn, owner)) = payload.split_once(' ') else {
                        continue;
                    };
                    let Ok(turn) = Uuid::parse_str(turn) else {
                        continue;
                    };
                    let owner = Owner(owner.to_owned());
                    return Ok(Signal::Stop { turn, owner });
                }
                BEGAN => {
                    if let Ok(conversation) = Uuid::parse_str(payload) {
                        return Ok(Signal::Began(conversation));
                    }
                }
                _ => {}
            }
        }
    }
}
