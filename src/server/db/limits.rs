//! Limits counted in the database, so that they hold across replicas on Postgres (issue 28):
//! the replies a person has running (each replica's count, summed over the replicas whose lease
//! is alive) and the turns they started in the last minute (a sliding window over two fixed
//! minutes). Each admission is one short transaction under an advisory lock per person, so two
//! replicas cannot both admit the last one. On SQLite one process serves the file and counts
//! in memory (`server::limits`): these calls admit at once.

use std::time::Duration;

use super::{replicas, Db, DbError, Owner, Pools};

/// What the shared count says of one more turn.
#[derive(Debug, PartialEq, Eq)]
pub enum SharedAdmission {
    Admitted,
    /// The person has this many replies running across the replicas.
    TooManyRunning(usize),
    /// Too many started in the last minute; try again after this.
    TooFast(Duration),
}

const MINUTE_MS: i64 = 60_000;

/// Admits one more run of `owner` against the shared counts (`max_running` at once,
/// `per_minute` started a minute), counting it for this replica if admitted.
pub async fn admit(
    db: &Db,
    owner: &Owner,
    max_running: usize,
    per_minute: u32,
) -> Result<SharedAdmission, DbError> {
    let Pools::Postgres(pool) = db.pools() else {
        return Ok(SharedAdmission::Admitted);
    };
    let clock = replicas::clock_ms(db.engine());
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('rill-limits:' || $1))")
        .bind(&owner.0)
        .execute(&mut *tx)
        .await?;
    let (now,): (i64,) = sqlx::query_as(&format!("SELECT {clock}"))
        .fetch_one(&mut *tx)
        .await?;
    let (running,): (i64,) = sqlx::query_as(&format!(
        "SELECT CAST(COALESCE(SUM(l.running), 0) AS BIGINT)
           FROM replica_running l JOIN replicas r ON r.id = l.replica
          WHERE l.owner = $1 AND r.heartbeat_at > {clock} - $2"
    ))
    .bind(&owner.0)
    .bind(replicas::lease_ms(replicas::LEASE))
    .fetch_one(&mut *tx)
    .await?;
    let running = usize::try_from(running).unwrap_or(usize::MAX);
    if running >= max_running {
        return Ok(SharedAdmission::TooManyRunning(running));
    }
    let minute = now.div_euclid(MINUTE_MS);
    let into_minute = now.rem_euclid(MINUTE_MS);
    let (this_minute,): (i64,) = sqlx::query_as(
        "INSERT INTO turn_starts (owner, minute, count) VALUES ($1, $2, 1)
         ON CONFLICT (owner, minute) DO UPDATE SET count = turn_starts.count + 1
         RETURNING count",
    )
    .bind(&owner.0)
    .bind(minute)
    .fetch_one(&mut *tx)
    .await?;
    let last_minute: Option<(i64,)> =
        sqlx::query_as("SELECT count FROM turn_starts WHERE owner = $1 AND minute = $2")
            .bind(&owner.0)
            .bind(minute - 1)
            .fetch_optional(&mut *tx)
            .await?;
    // The last minute's starts, weighted by how much of it the sliding minute still covers.
    let carried = last_minute.map_or(0, |(n,)| n) * (MINUTE_MS - into_minute) / MINUTE_MS;
    if this_minute + carried > i64::from(per_minute) {
        let wait = u64::try_from(MINUTE_MS - into_minute).unwrap_or(0);
        return Ok(SharedAdmission::TooFast(Duration::from_millis(wait)));
    }
    sqlx::query(
        "INSERT INTO replica_running (replica, owner, running) VALUES ($1, $2, 1)
         ON CONFLICT (replica, owner) DO UPDATE SET running = replica_running.running + 1",
    )
    .bind(db.replica())
    .bind(&owner.0)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(SharedAdmission::Admitted)
}

/// One run of `owner` on this replica ended.
pub async fn release(db: &Db, owner: &Owner) -> Result<(), DbError> {
    let Pools::Postgres(pool) = db.pools() else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE replica_running SET running = running - 1
          WHERE replica = $1 AND owner = $2 AND running > 0",
    )
    .bind(db.replica())
    .bind(&owner.0)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets counts no admission reads any more: of replicas gone, of minutes past.
pub async fn forget_old(db: &Db) -> Result<(), DbError> {
    let Pools::Postgres(pool) = db.pools() else {
        return Ok(());
    };
    let clock = replicas::clock_ms(db.engine());
    sqlx::query(
        "DELETE FROM replica_running l
          WHERE running = 0 OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = l.replica)",
    )
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "DELETE FROM turn_starts WHERE minute < {clock} / {MINUTE_MS} - 1"
    ))
    .execute(pool)
    .await?;
    Ok(())
}
