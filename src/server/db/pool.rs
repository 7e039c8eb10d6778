//! Opening the database (either engine), its files (their modes, a backup copy) and the
//! readiness check. Every topic runs on both engines: the HTTP-level tests of storage run on
//! each (`scripts/test.sh`), so Rill serves from either.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Db, DbError, Pools};
use crate::server::config::Database;

/// SQLite readers: enough for a burst's reads to run beside one another.
const SQLITE_READERS: u32 = 8;
/// A reader idle this long is closed (one is kept open): each holds a thread and its own page
/// cache (about half a megabyte here), which a burst opens all of and a quiet server need not keep.
const SQLITE_READER_IDLE: Duration = Duration::from_secs(10);

/// Connections to a Postgres server: enough for every request of a busy replica, fewer than a
/// default server's 100 so that a few replicas fit.
const POSTGRES_CONNECTIONS: u32 = 16;

/// Opens the database and applies pending migrations (each engine its own: `migrations/` for
/// SQLite, `migrations/postgres/` for Postgres, where sqlx holds an advisory lock while it
/// migrates, so replicas starting together apply each migration once, one after another).
pub async fn connect(database: &Database) -> Result<Db, DbError> {
    match database {
        Database::Sqlite(path) => connect_sqlite(path).await,
        Database::Postgres(url) => {
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_CONNECTIONS)
                .connect(url)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            let pools = Pools::Postgres(pool);
            Ok(Db {
                batcher: super::batch::Batcher::start(pools.clone()),
                pools,
                replica: new_replica(),
            })
        }
    }
}

/// `rill migrate`: brings the database's schema up to date and closes it (a deployment's
/// step before replicas start, though each replica migrates at start too).
pub async fn migrate(database: &Database) -> Result<(), DbError> {
    connect(database).await?.close().await;
    Ok(())
}

/// Opens (creating if needed) a SQLite file. A directory it creates is its owner's alone
/// (0700), and so are the files SQLite creates in it, whatever the process's umask.
async fn connect_sqlite(path: &Path) -> Result<Db, DbError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|source| DbError::Directory {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // Writers queue on the lock rather than fail; every write transaction is short.
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        // Deleted and purged text is overwritten with zeros, not left in free pages.
        .pragma("secure_delete", "ON");
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    sqlx::migrate!("./migrations").run(&writer).await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(SQLITE_READERS)
        .min_connections(1)
        .idle_timeout(SQLITE_READER_IDLE)
        .connect_with(options.read_only(true))
        .await?;
    let pools = Pools::Sqlite { reader, writer };
    Ok(Db {
        batcher: super::batch::Batcher::start(pools.clone()),
        pools,
        replica: new_replica(),
    })
}

/// A replica id for this process (see `replicas`).
fn new_replica() -> std::sync::Arc<str> {
    uuid::Uuid::new_v4().to_string().into()
}

impl Db {
    /// Closes every connection and folds the WAL into the database, so nothing written (purged
    /// text included) lingers in `-wal`.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { reader, writer, .. } => {
                reader.close().await;
                writer.close().await;
                // The last connection to close folds the WAL in, but only if it may write: a
                // reader the pool let go on drop can close after the writer. So one writable
                // connection, opened last, truncates the WAL itself.
                if let Err(e) = fold_wal(&writer.connect_options()).await {
                    tracing::warn!(error = %e, "could not fold the WAL into the database at exit");
                }
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

async fn fold_wal(options: &SqliteConnectOptions) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut connection = sqlx::SqliteConnection::connect_with(options).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut connection)
        .await?;
    connection.close().await
}

/// The database file and what SQLite keeps beside it.
fn database_files(path: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    files
}

/// Refuses a database that other accounts on the machine can read or change: its files must be
/// the owner's alone (no group or other permission bits) and so must its directory (unless it
/// lives directly in the working directory). Missing files are fine: they are created private.
pub fn check_file_modes(path: &Path) -> Result<(), DbError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut loose = Vec::new();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let checked = dir
            .map(Path::to_path_buf)
            .into_iter()
            .chain(database_files(path));
        for file in checked {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let wanted = if meta.is_dir() { "700" } else { "600" };
                loose.push(format!(
                    "{} is mode {mode:o} (run: chmod {wanted} {})",
                    file.display(),
                    file.display()
                ));
            }
        }
        if !loose.is_empty() {
            return Err(DbError::FileModes(format!(
                "the database can be read by other accounts on this machine: {}. Set \
                 RILL_UNSAFE_FILE_MODES=yes to start anyway.",
                loose.join("; ")
            )));
        }
    }
    Ok(())
}

/// Whether the database answers (the readiness check).
pub async fn ping(db: &Db) -> Result<(), DbError> {
    on_reader!(db, |pool| sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A consistent copy of the database into the new file `destination`, while a server may be
/// using it. On SQLite, `VACUUM INTO` reads one snapshot (WAL: writers carry on) and writes a
/// compact, self-contained file with no `-wal` beside it; a Postgres server has its own tools.
pub async fn backup(database: &Database, destination: &Path) -> Result<(), DbError> {
    let source =
        match database {
            Database::Sqlite(path) => path,
            Database::Postgres(_) => return Err(DbError::Backup(
                "RILL_DATABASE is a Postgres server: back it up with Postgres's own tools, for \
                 example `pg_dump --format=custom --file=rill.dump \"$RILL_DATABASE\"` (restore \
                 with pg_restore), or the server's continuous archiving"
                    .to_owned(),
            )),
        };
    if !source.exists() {
        return Err(DbError::Backup(format!(
            "there is no database at {} (set RILL_DATABASE)",
            source.display()
        )));
    }
    let Some(target) = destination.to_str() else {
        return Err(DbError::Backup(format!(
            "{} is not a UTF-8 path",
            destination.display()
        )));
    };
    // Created here, empty and readable by its owner alone (it holds password hashes and session
    // ids); `create_new` also refuses to overwrite anything. VACUUM INTO fills an empty file.
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    if let Err(e) = file.open(destination) {
        return Err(DbError::Backup(match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{} already exists; name a new file", destination.display())
            }
            _ => format!("cannot create {}: {e}", destination.display()),
        }));
    }
    let options = SqliteConnectOptions::new()
        .filename(source)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    let copied = async {
        let mut connection = sqlx::ConnectOptions::connect(&options).await?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&mut connection)
            .await?;
        sqlx::Connection::close(connection).await
    }
    .await;
    if let Err(e) = copied {
        // No half-written copy left behind to be mistaken for a backup.
        let _ = std::fs::remove_file(destination);
        return Err(e.into());
    }
    Ok(())
}
