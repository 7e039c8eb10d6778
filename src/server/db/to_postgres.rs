//! `rill migrate-to-postgres SQLITE_FILE URL`: a single-node database copied into an empty
//! Postgres database, table by table, in one Postgres transaction that commits only if every
//! table's row count matches its source's. The SQLite file is read in one read transaction (a
//! consistent snapshot; a server still using it may keep writing, but what it writes after the
//! snapshot is not copied: stop Rill first).
//!
//! Columns are copied by name, each read as the type its Postgres column has (BIGINT, DOUBLE
//! PRECISION, TEXT, BOOLEAN, BYTEA); generated columns (the search vectors) are left to Postgres.
//! Not copied: sessions (people sign in again), SQLite's search index tables (Postgres keeps
//! its own) and the serving processes' leases. `storage_used` is copied last, over what the
//! triggers counted as rows arrived (a deleted conversation's title counted at its insert, for
//! one).

use std::path::Path;

use futures::TryStreamExt;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Connection, Row};

use super::{connect, DbError, Pools};
use crate::server::config::Database;

/// The tables copied, parents before children (foreign keys), `storage_used` last.
const TABLES: &[&str] = &[
    "users",
    "site_settings",
    "audit_log",
    "known_devices",
    "user_idp_groups",
    "user_groups",
    "group_members",
    "group_models",
    "budget_alerts",
    "conversations",
    "system_prompts",
    "messages",
    "reply_pieces",
    "spending",
    "group_spending",
    "shares",
    "api_keys",
    "blobs",
    "blob_chunks",
    "pdf_texts",
    "attachments",
    "turn_attachments",
    "storage_used",
];

/// SQLite's tables that are not copied, by name or by prefix (`*`): its own and sqlx's
/// bookkeeping, sessions (people sign in again), the search index (Postgres keeps its own), and
/// what the processes serving the file counted (leases, running replies, recent turns and
/// sign-ins: they serve it no more, and the counts are minutes to a day old).
/// Any other table must be in [`TABLES`]: a table added later and not listed makes the copy
/// refuse, rather than leave its rows behind.
const NOT_COPIED: &[&str] = &[
    "sqlite_*",
    "_sqlx_migrations",
    "tower_sessions",
    "replicas",
    "replica_running",
    "turn_starts",
    "throttle_hits",
    "search_owners",
    "message_search*",
    "title_search*",
];

/// Tables whose ids Postgres numbers (identity columns): their sequences continue after the
/// copied ids.
const NUMBERED: &[&str] = &["audit_log", "reply_pieces", "spending"];

/// Rows copied, per table, in [`TABLES`]' order.
#[derive(Debug, PartialEq, Eq)]
pub struct Copied(pub Vec<(&'static str, u64)>);

/// A column as Postgres stores it.
#[derive(Clone, Copy)]
enum Kind {
    Integer,
    Real,
    Text,
    Flag,
    Bytes,
}

/// Copies the SQLite database at `sqlite` into the Postgres database at `url` (migrated
/// first), which must hold no users and no conversations.
pub async fn copy(sqlite: &Path, url: &str) -> Result<Copied, DbError> {
    if !sqlite.exists() {
        return Err(DbError::Copy(format!(
            "there is no database at {}",
            sqlite.display()
        )));
    }
    // Brought up to date first (a file from an older Rill), as serving it would.
    connect(&Database::Sqlite(sqlite.to_path_buf()))
        .await?
        .close()
        .await;
    let target = connect(&Database::Postgres(url.to_owned())).await?;
    let Pools::Postgres(pool) = target.pools() else {
        return Err(DbError::Copy("the target is not Postgres".to_owned()));
    };
    let options = SqliteConnectOptions::new()
        .filename(sqlite)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(10));
    let mut source = sqlx::SqliteConnection::connect_with(&options).await?;
    let mut snapshot = source.begin().await?;
    let in_source: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut *snapshot)
            .await?;
    if let Some((unknown,)) = in_source.iter().find(|(name,)| !is_copied_or_left(name)) {
        return Err(DbError::Copy(format!(
            "the SQLite database has a table this Rill does not know how to copy ({unknown}); \
             nothing was copied"
        )));
    }
    let mut tx = pool.begin().await?;
    let (present,): (i64,) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM conversations)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if present > 0 {
        return Err(DbError::Copy(
            "the Postgres database already holds accounts or conversations; name an empty one"
                .to_owned(),
        ));
    }
    let mut copied = Vec::with_capacity(TABLES.len());
    for &table in TABLES {
        let columns = columns_of(&mut tx, table).await?;
        if table == "storage_used" {
            sqlx::query("DELETE FROM storage_used")
                .execute(&mut *tx)
                .await?;
        }
        let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        // A conversation's `seq` (the order an export pages by) is SQLite's rowid.
        let selected: Vec<&str> = names
            .iter()
            .map(|&name| match (table, name) {
                ("conversations", "seq") => "rowid AS seq",
                _ => name,
            })
            .collect();
        let select = format!("SELECT {} FROM {table}", selected.join(", "));
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            (1..=names.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // A row at a time from the snapshot, so memory holds one row whatever the table's size.
        let mut rows = sqlx::query(&select).fetch(&mut *snapshot);
        while let Some(row) = rows.try_next().await? {
            let mut arguments = PgArguments::default();
            for (i, (_, kind)) in columns.iter().enumerate() {
                bind(&mut arguments, &row, i, *kind)?;
            }
            sqlx::query_with(&insert, arguments)
                .execute(&mut *tx)
                .await?;
        }
        drop(rows);
        let (source_count,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *snapshot)
            .await?;
        let (target_count,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await?;
        if source_count != target_count {
            return Err(DbError::Copy(format!(
                "{table}: {source_count} rows in SQLite but {target_count} in Postgres; nothing \
                 was copied"
            )));
        }
        copied.push((table, u64::try_from(target_count).unwrap_or(0)));
    }
    for table in NUMBERED {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false)
               FROM {table}"
        ))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('conversations', 'seq'),
                       COALESCE(MAX(seq), 0) + 1, false)
           FROM conversations",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    snapshot.rollback().await?;
    source.close().await?;
    target.close().await;
    Ok(Copied(copied))
}

/// Whether a SQLite table is either copied or deliberately left behind.
fn is_copied_or_left(table: &str) -> bool {
    TABLES.contains(&table)
        || NOT_COPIED
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => table.starts_with(prefix),
                None => table == *pattern,
            })
}

/// The table's columns on Postgres, in order, without the generated ones.
async fn columns_of(
    tx: &mut sqlx::PgConnection,
    table: &str,
) -> Result<Vec<(String, Kind)>, DbError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER'
          ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await?;
    rows.into_iter()
        .map(|(name, data_type)| {
            let kind = match data_type.as_str() {
                "bigint" => Kind::Integer,
                "double precision" => Kind::Real,
                "text" => Kind::Text,
                "boolean" => Kind::Flag,
                "bytea" => Kind::Bytes,
                other => {
                    return Err(DbError::Copy(format!(
                        "{table}.{name} is {other} on Postgres, which the copy does not know"
                    )))
                }
            };
            Ok((name, kind))
        })
        .collect()
}

/// Column `i` of a SQLite row, read as `kind` and added to `arguments`.
fn bind(arguments: &mut PgArguments, row: &SqliteRow, i: usize, kind: Kind) -> Result<(), DbError> {
    use sqlx::Arguments;
    let added = match kind {
        Kind::Integer => arguments.add(row.try_get::<Option<i64>, _>(i)?),
        Kind::Real => arguments.add(row.try_get::<Option<f64>, _>(i)?),
        Kind::Text => arguments.add(row.try_get::<Option<String>, _>(i)?),
        Kind::Flag => arguments.add(row.try_get::<Option<bool>, _>(i)?),
        Kind::Bytes => arguments.add(row.try_get::<Option<Vec<u8>>, _>(i)?),
    };
    added.map_err(|e| DbError::Copy(format!("a value could not be copied: {e}")))
}
