//! Group commit: the turn engine's small writes (a turn begun, a run's reservation, a reply's
//! or a title's end, an API completion's settlement) go to one task that takes every write
//! waiting, runs them in one write transaction, each inside a savepoint of its own, commits
//! once, and only then answers each. So a thousand sends at once cost a handful of commits
//! rather than a thousand turns at the writer's lock, and nothing is answered before it is
//! durable.
//!
//! A write that fails (or refuses, having written something first) is rolled back to its own
//! savepoint: the others in its batch are kept. A batch whose commit fails answers every write
//! it kept with [`DbError::NotWritten`]; a write that never ran (the batch failed before it) is
//! answered the same way.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::{Database, Executor, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{Conn, DbError, Pools};

/// Most writes one transaction holds: every asker in a batch waits for its commit.
const MOST: usize = 256;
/// Writes that may wait for the batcher before askers wait to hand theirs over.
const QUEUE: usize = 8_192;

/// What a write did: keep it, or undo it (a refusal that may have written something first).
pub(super) enum Written<T> {
    Keep(T),
    Undo(T),
}

/// A write, ready to run on the batch's connection.
struct Work {
    /// It reserves against a budget (see [`RESERVATIONS_LOCK`]).
    reserves: bool,
    run: Run,
}

type Run = Box<dyn for<'c> FnOnce(Conn<'c>) -> BoxFuture<'c, Done> + Send>;

/// On Postgres, a batch holding a reservation first takes this advisory lock ("RILLBUDG"),
/// held until it commits: another replica's batch could otherwise read the same month's
/// spending, see room for one more run and reserve it too. Taken before any row is touched, so
/// it never waits while holding a row another batch needs. SQLite's one writer already
/// serializes every batch.
const RESERVATIONS_LOCK: i64 = 0x5249_4c4c_4255_4447;

/// A write that ran: whether to keep it, and how to answer its asker once the batch's fate is
/// known (`None`: committed).
struct Done {
    keep: bool,
    answer: Box<dyn FnOnce(Option<&'static str>) + Send>,
}

/// Said of a write whose batch could not be committed.
const BATCH_FAILED: &str = "the database could not store this; try again";

/// The askers' side of the batch writer.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Work>,
    /// Transactions committed (or tried), for the tests and benchmarks.
    batches: Arc<AtomicU64>,
    /// Writes handed over and not yet answered.
    pending: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batch writer on the engine's writer (call inside the runtime). It ends once
    /// every `Batcher` is dropped.
    pub(super) fn start(writer: Pools) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let batches = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(writer, jobs, batches.clone()));
        Self {
            queue,
            batches,
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Runs `work` in the next batch and answers once that batch is committed (a kept write) or
    /// rolled back (an undone one).
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(Conn<'c>) -> BoxFuture<'c, Result<Written<T>, DbError>> + Send + 'static,
    {
        self.queue_write(false, work).await
    }

    /// [`Batcher::write`] for a reservation: if it is held against a budget, its batch takes
    /// the reservations lock (see [`RESERVATIONS_LOCK`]).
    pub(super) async fn write_reservation<T, F>(
        &self,
        against_budget: bool,
        work: F,
    ) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(Conn<'c>) -> BoxFuture<'c, Result<Written<T>, DbError>> + Send + 'static,
    {
        self.queue_write(against_budget, work).await
    }

    async fn queue_write<T, F>(&self, reserves: bool, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(Conn<'c>) -> BoxFuture<'c, Result<Written<T>, DbError>> + Send + 'static,
    {
        let (tell, told) = oneshot::channel::<Result<T, DbError>>();
        let run: Run = Box::new(move |conn| {
            Box::pin(async move {
                let written = work(conn).await;
                let keep = matches!(written, Ok(Written::Keep(_)));
                let answer = move |failed: Option<&'static str>| {
                    let answer = match (written, failed) {
                        (Ok(Written::Keep(_)), Some(words)) => Err(DbError::NotWritten(words)),
                        (Ok(Written::Keep(t) | Written::Undo(t)), _) => Ok(t),
                        (Err(e), _) => Err(e),
                    };
                    // An asker that went away needs no answer.
                    let _ = tell.send(answer);
                };
                Done {
                    keep,
                    answer: Box::new(answer),
                }
            })
        });
        let job = Work { reserves, run };
        let _pending = Pending::count(&self.pending);
        self.queue
            .send(job)
            .await
            .map_err(|_| DbError::NotWritten(BATCH_FAILED))?;
        told.await.unwrap_or(Err(DbError::NotWritten(BATCH_FAILED)))
    }

    /// Transactions the batch writer has committed or tried.
    pub(super) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Writes asked for and not yet answered.
    pub(super) fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

/// One write asked for and not yet answered (or given up by its asker).
struct Pending<'a>(&'a AtomicUsize);

impl<'a> Pending<'a> {
    fn count(pending: &'a AtomicUsize) -> Self {
        pending.fetch_add(1, Ordering::Relaxed);
        Self(pending)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The batch writer: every write waiting (up to [`MOST`]) in one transaction, until the
/// askers are gone.
async fn write_batches(writer: Pools, mut jobs: mpsc::Receiver<Work>, batches: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(MOST);
    while jobs.recv_many(&mut batch, MOST).await > 0 {
        let size = batch.len();
        let mut done = Vec::with_capacity(size);
        let committed = run(&writer, std::mem::take(&mut batch), &mut done).await;
        batches.fetch_add(1, Ordering::Relaxed);
        let failed = match committed {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(
                    writes = size,
                    ran = done.len(),
                    "a batch of writes failed: {e}"
                );
                Some(BATCH_FAILED)
            }
        };
        for write in done {
            (write.answer)(failed);
        }
    }
}

/// Runs `batch` in one transaction, each write in its savepoint; what ran goes to `done`. A
/// write that did not run (the batch failed first) is dropped, which answers its asker. On
/// SQLite the transaction takes the write lock up front; on Postgres each replica batches its
/// own writes, and the rows they touch are locked as on any transaction (a batch that reserves
/// takes [`RESERVATIONS_LOCK`] first).
async fn run(writer: &Pools, batch: Vec<Work>, done: &mut Vec<Done>) -> Result<(), DbError> {
    match writer {
        Pools::Sqlite { writer, .. } => {
            run_in(writer.begin_with("BEGIN IMMEDIATE").await?, batch, done).await
        }
        Pools::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            if batch.iter().any(|work| work.reserves) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(RESERVATIONS_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            run_in(tx, batch, done).await
        }
    }
}

async fn run_in<DB: Database>(
    mut tx: Transaction<'static, DB>,
    batch: Vec<Work>,
    done: &mut Vec<Done>,
) -> Result<(), DbError>
where
    for<'c> Conn<'c>: From<&'c mut DB::Connection>,
{
    let mut last_kept = None;
    for work in batch {
        let open = match last_kept {
            None => OPEN,
            Some(true) => KEEP_AND_OPEN,
            Some(false) => UNDO_AND_OPEN,
        };
        // Fails if the engine rolled the whole transaction back (a full disk, say): then the
        // batch fails, and nothing of it was stored.
        savepoints(&mut Conn::from(&mut *tx), open).await?;
        let write = (work.run)(Conn::from(&mut *tx)).await;
        last_kept = Some(write.keep);
        done.push(write);
    }
    if let Some(kept) = last_kept {
        let close = if kept { KEEP } else { UNDO };
        savepoints(&mut Conn::from(&mut *tx), close).await?;
    }
    tx.commit().await?;
    Ok(())
}

// Each write runs in a savepoint of its own, so that one refused or failed is undone alone.
// Closing one write's savepoint and opening the next's go as one call (several statements in one
// round trip to the database), not two: under load the batch writer's time goes mostly to round
// trips, one per call.
const OPEN: &str = "SAVEPOINT batch_write";
const KEEP_AND_OPEN: &str = "RELEASE batch_write; SAVEPOINT batch_write";
const UNDO_AND_OPEN: &str = "ROLLBACK TO batch_write; RELEASE batch_write; SAVEPOINT batch_write";
const KEEP: &str = "RELEASE batch_write";
const UNDO: &str = "ROLLBACK TO batch_write; RELEASE batch_write";

/// Runs one of the savepoint steps above.
async fn savepoints(conn: &mut Conn<'_>, steps: &'static str) -> Result<(), DbError> {
    on_conn!(conn, |c| c.execute(sqlx::raw_sql(steps)).await.map(|_| ()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use futures::future::join_all;
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    /// A batch writer on a database of its own, with one table of unique numbers.
    async fn batcher() -> (Batcher, sqlx::SqlitePool) {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("an in-memory database");
        sqlx::query("CREATE TABLE numbers (n INTEGER NOT NULL UNIQUE)")
            .execute(&pool)
            .await
            .expect("the table");
        let pools = Pools::Sqlite {
            reader: pool.clone(),
            writer: pool.clone(),
        };
        (Batcher::start(pools), pool)
    }

    /// What one write does: stores each of `numbers` in turn, then keeps or undoes that.
    async fn store(batcher: &Batcher, numbers: Vec<i64>, keep: bool) -> Result<i64, DbError> {
        batcher
            .write(move |mut conn| {
                Box::pin(async move {
                    for n in &numbers {
                        on_conn!(&mut conn, |c| sqlx::query(
                            "INSERT INTO numbers (n) VALUES ($1)"
                        )
                        .bind(n)
                        .execute(c)
                        .await
                        .map(|_| ()))?;
                    }
                    let first = numbers.first().copied().unwrap_or_default();
                    Ok(if keep {
                        Written::Keep(first)
                    } else {
                        Written::Undo(first)
                    })
                })
            })
            .await
    }

    async fn stored(pool: &sqlx::SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT n FROM numbers ORDER BY n")
            .fetch_all(pool)
            .await
            .expect("the numbers")
    }

    #[tokio::test]
    async fn each_write_in_a_batch_is_kept_or_undone_alone() {
        let (batcher, pool) = batcher().await;
        // All five are handed over before the writer first runs: one batch.
        let answers = join_all([
            store(&batcher, vec![1], true),
            store(&batcher, vec![2, 20], false),
            // Its second statement fails (1 is stored): its first is undone with it.
            store(&batcher, vec![3, 1], true),
            store(&batcher, vec![4, 40], true),
            store(&batcher, vec![5], false),
        ])
        .await;
        assert_eq!(batcher.batches(), 1);
        assert!(matches!(answers[0], Ok(1)));
        assert!(matches!(answers[1], Ok(2)), "an undone write is answered");
        assert!(matches!(answers[2], Err(DbError::Sqlx(_))));
        assert!(matches!(answers[3], Ok(4)));
        assert!(matches!(answers[4], Ok(5)));
        assert_eq!(stored(&pool).await, vec![1, 4, 40]);

        // The next batch: its last write kept.
        let answers = join_all([
            store(&batcher, vec![6], false),
            store(&batcher, vec![7], true),
        ])
        .await;
        assert_eq!(batcher.batches(), 2);
        assert!(answers.iter().all(Result::is_ok));
        assert_eq!(stored(&pool).await, vec![1, 4, 7, 40]);
    }
}
