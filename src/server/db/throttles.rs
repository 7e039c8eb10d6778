//! Sign-in throttles counted in the database, so that they hold across replicas on Postgres
//! (issue 28): each attempt counted is a row (`throttle_hits`), and a key may have at most so
//! many in the last window — the same sliding log `server::throttle` keeps in memory, shared.
//! A key's check takes an advisory lock on it, so two replicas cannot both let the last attempt
//! through; an attempt refused is not counted. On SQLite one process serves the file and counts
//! in memory: these calls admit at once.

use std::time::Duration;

use super::{replicas, Db, DbError, Pools};

fn ms(window: Duration) -> i64 {
    i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Counts one attempt at `key` if fewer than `limit` were counted in the last `window`; else
/// says how long until the oldest of them leaves the window (and counts nothing).
pub async fn hit(
    db: &Db,
    key: &str,
    window: Duration,
    limit: u32,
) -> Result<Option<Duration>, DbError> {
    let Pools::Postgres(pool) = db.pools() else {
        return Ok(None);
    };
    let window = ms(window);
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('rill-throttle:' || $1))")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    let (now,): (i64,) = sqlx::query_as(&format!("SELECT {}", replicas::clock_ms(db.engine())))
        .fetch_one(&mut *tx)
        .await?;
    let (count, oldest): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(at) FROM throttle_hits WHERE key = $1 AND at > $2")
            .bind(key)
            .bind(now - window)
            .fetch_one(&mut *tx)
            .await?;
    if count >= i64::from(limit) {
        let wait = oldest.map_or(window, |at| at + window - now).max(1);
        return Ok(Some(Duration::from_millis(
            u64::try_from(wait).unwrap_or(1),
        )));
    }
    sqlx::query("INSERT INTO throttle_hits (key, at) VALUES ($1, $2)")
        .bind(key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(None)
}

/// Takes `key`'s latest attempt back (a sign-in counted as a failure until it succeeded).
pub async fn forgive(db: &Db, key: &str) -> Result<(), DbError> {
    let Pools::Postgres(pool) = db.pools() else {
        return Ok(());
    };
    sqlx::query(
        "DELETE FROM throttle_hits WHERE id = (
             SELECT id FROM throttle_hits WHERE key = $1 ORDER BY at DESC, id DESC LIMIT 1)",
    )
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets every attempt at `key`; whether there were any.
pub async fn clear(db: &Db, key: &str) -> Result<bool, DbError> {
    let Pools::Postgres(pool) = db.pools() else {
        return Ok(false);
    };
    let done = sqlx::query("DELETE FROM throttle_hits WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The keys starting with `prefix` with attempts in the last `window`: each one's name (after
/// the prefix), how many, and when the oldest leaves the window (ms from now), most first.
pub async fn counted(
    db: &Db,
    prefix: &str,
    window: Duration,
) -> Result<Vec<(String, u32, u64)>, DbError> {
    let Pools::Postgres(pool) = db.pools() else {
        return Ok(Vec::new());
    };
    let window = ms(window);
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT key, COUNT(*), MIN(at) + $2 - ({clock}) FROM throttle_hits
          WHERE starts_with(key, $1) AND at > ({clock}) - $2
          GROUP BY key
          ORDER BY COUNT(*) DESC, key",
        clock = replicas::clock_ms(db.engine())
    ))
    .bind(prefix)
    .bind(window)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(key, count, left)| {
            let name = key.strip_prefix(prefix).unwrap_or(&key).to_owned();
            (
                name,
                u32::try_from(count).unwrap_or(u32::MAX),
                u64::try_from(left).unwrap_or(0),
            )
        })
        .collect())
}

/// Forgets attempts no window counts any more (the longest is a day).
pub async fn forget_old(db: &Db) -> Result<(), DbError> {
    let Pools::Postgres(pool) = db.pools() else {
        return Ok(());
    };
    sqlx::query(&format!(
        "DELETE FROM throttle_hits WHERE at < {} - 86400000",
        replicas::clock_ms(db.engine())
    ))
    .execute(pool)
    .await?;
    Ok(())
}
