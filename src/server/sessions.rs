//! Sessions: tower-sessions rows in Rill's own database (its SQLite store or its Postgres store,
//! the table `tower_sessions.session` that `migrations/postgres` creates), stored under a hash
//! of their id. The
//! cookie carries the id itself; the table holds only SHA-256 of it, so someone who reads the
//! database (a backup, a local account) holds nothing a browser could present.

use std::fmt;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tower_sessions::cookie::{time, SameSite};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::db::{Db, Pools};

/// A session no request has used for this long is over.
pub const IDLE_LIFETIME_DAYS: i64 = 30;

/// The id a session is stored under.
fn stored_id(id: &Id) -> Id {
    let digest = Sha256::digest(id.0.to_le_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    Id(i128::from_le_bytes(first))
}

/// SHA-256 of a secret a browser holds (a known-device token), hex: what is stored of it.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A session store that keeps records under the hash of their id (see the module note).
#[derive(Clone)]
pub struct HashedIds<S> {
    inner: S,
}

impl<S> fmt::Debug for HashedIds<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedIds")
    }
}

impl<S> HashedIds<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

/// `record` as stored: its id hashed (the record's serialised form carries the id too).
fn to_store(record: &Record) -> Record {
    let mut stored = record.clone();
    stored.id = stored_id(&record.id);
    stored
}

#[async_trait]
impl<S: SessionStore + Clone> SessionStore for HashedIds<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let mut stored = to_store(record);
            let wanted = stored.id;
            self.inner.create(&mut stored).await?;
            if stored.id == wanted {
                return Ok(());
            }
            // The store gave the row another id, which is the hash of nothing the cookie could
            // carry (a collision of 128-bit hashes): drop it and draw a new id.
            self.inner.delete(&stored.id).await?;
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.inner.save(&to_store(record)).await
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self
            .inner
            .load(&stored_id(session_id))
            .await?
            .map(|mut record| {
                record.id = *session_id;
                record
            }))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.inner.delete(&stored_id(session_id)).await
    }
}

#[async_trait]
impl<S: ExpiredDeletion + Clone> ExpiredDeletion for HashedIds<S> {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.inner.delete_expired().await
    }
}

/// tower-sessions' store for the database's engine.
#[derive(Clone, Debug)]
pub enum EngineStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

#[async_trait]
impl SessionStore for EngineStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.create(record).await,
            Self::Postgres(store) => store.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.save(record).await,
            Self::Postgres(store) => store.save(record).await,
        }
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(store) => store.load(session_id).await,
            Self::Postgres(store) => store.load(session_id).await,
        }
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.delete(session_id).await,
            Self::Postgres(store) => store.delete(session_id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for EngineStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.delete_expired().await,
            Self::Postgres(store) => store.delete_expired().await,
        }
    }
}

pub type Store = HashedIds<EngineStore>;

/// The store: on SQLite writing through the one writer connection (so it never races our
/// writes for SQLite's lock), on Postgres through the pool (its table the store's default,
/// `tower_sessions.session`).
pub fn store(db: &Db) -> Store {
    HashedIds::new(match db.pools() {
        Pools::Sqlite { writer, .. } => EngineStore::Sqlite(SqliteStore::new(writer.clone())),
        Pools::Postgres(pool) => EngineStore::Postgres(PostgresStore::new(pool.clone())),
    })
}

/// The session layer: `__Host-` and `Secure` when served over https, HTTP-only, `SameSite=Lax`,
/// ended after [`IDLE_LIFETIME_DAYS`] unused (the absolute lifetime is `identity`'s check).
pub fn layer(store: Store, https: bool) -> SessionManagerLayer<Store> {
    SessionManagerLayer::new(store)
        // `__Host-`: the browser keeps it only if Secure, for this host alone, on every path.
        .with_name(if https {
            "__Host-rill_session"
        } else {
            "rill_session"
        })
        .with_secure(https)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(
            IDLE_LIFETIME_DAYS,
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_id_is_a_fixed_one_way_function_of_the_id() {
        let id = Id(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(stored_id(&id), stored_id(&id));
        assert_ne!(stored_id(&id), id);
        assert_ne!(stored_id(&id), stored_id(&Id(id.0 + 1)));
    }
}
