//! The tests' own SQL, on whichever engine the app stores on: a statement written once in SQL
//! both engines read (`$1` parameters, flags compared as booleans, no function of one engine
//! alone) and run on the app's database, so a test that looks at or arranges rows directly
//! runs on SQLite and on Postgres alike. Where a check is about one engine's own machinery
//! (SQLite's FTS5 tables, a migration of SQLite's), the test asks `db.engine()` and says why.

use rill::server::db::{Db, Pools};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, Postgres, Sqlite, SqlitePool};
use uuid::Uuid;

/// A value bound to a statement: typed, so that Postgres (which checks a parameter's type
/// against its column) and SQLite read it alike; a null keeps its type too.
#[derive(Clone, Debug)]
pub enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
    Bool(bool),
}

impl From<&str> for Arg {
    fn from(text: &str) -> Self {
        Self::Text(Some(text.to_owned()))
    }
}

impl From<String> for Arg {
    fn from(text: String) -> Self {
        Self::Text(Some(text))
    }
}

impl From<&String> for Arg {
    fn from(text: &String) -> Self {
        Self::Text(Some(text.clone()))
    }
}

/// Ids are stored as text on both engines.
impl From<Uuid> for Arg {
    fn from(id: Uuid) -> Self {
        Self::Text(Some(id.to_string()))
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Self::Int(Some(n))
    }
}

impl From<f64> for Arg {
    fn from(x: f64) -> Self {
        Self::Real(Some(x))
    }
}

impl From<Option<f64>> for Arg {
    fn from(x: Option<f64>) -> Self {
        Self::Real(x)
    }
}

impl From<bool> for Arg {
    fn from(flag: bool) -> Self {
        Self::Bool(flag)
    }
}

/// A statement and its arguments; see the module's doc.
#[must_use]
#[derive(Clone, Debug)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
}

pub fn sql(text: impl Into<String>) -> Sql {
    Sql {
        text: text.into(),
        args: Vec::new(),
    }
}

/// Binds every argument of `$sql` to `$query` (any of sqlx's query kinds: they share `bind`).
macro_rules! bound {
    ($query:expr, $sql:expr) => {{
        let mut query = $query;
        for arg in &$sql.args {
            query = match arg.clone() {
                Arg::Text(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
                Arg::Real(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
            };
        }
        query
    }};
}

/// Runs `$body` with `$pool` the app's pool: on SQLite its one writer (the tests' statements
/// queue with the server's), on Postgres its pool.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db.pools() {
            Pools::Sqlite { writer, .. } => {
                let $pool = writer;
                $body
            }
            Pools::Postgres(pool) => {
                let $pool = pool;
                $body
            }
        }
    };
}

impl Sql {
    pub fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs it; the rows it changed.
    pub async fn execute(self, db: &Db) -> u64 {
        on_pool!(db, |pool| bound!(sqlx::query(&self.text), self)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .unwrap_or_else(|e| panic!("{}: {e}", self.text))
    }

    /// Runs it on a SQLite pool of the test's own (a database no app has opened yet).
    pub async fn execute_on_sqlite(self, pool: &SqlitePool) {
        bound!(sqlx::query(&self.text), self)
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.text));
    }

    pub async fn fetch_all<T>(self, db: &Db) -> Vec<T>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        on_pool!(db, |pool| bound!(sqlx::query_as(&self.text), self)
            .fetch_all(pool)
            .await)
        .unwrap_or_else(|e| panic!("{}: {e}", self.text))
    }

    pub async fn fetch_optional<T>(self, db: &Db) -> Option<T>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        on_pool!(db, |pool| bound!(sqlx::query_as(&self.text), self)
            .fetch_optional(pool)
            .await)
        .unwrap_or_else(|e| panic!("{}: {e}", self.text))
    }

    pub async fn fetch_one<T>(self, db: &Db) -> T
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let text = self.text.clone();
        self.fetch_optional(db)
            .await
            .unwrap_or_else(|| panic!("{text}: no row"))
    }

    /// The first column of the one row it returns.
    pub async fn scalar<T>(self, db: &Db) -> T
    where
        T: sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Postgres>
            + for<'r> sqlx::Decode<'r, Postgres>
            + Send
            + Unpin,
    {
        on_pool!(db, |pool| bound!(sqlx::query_scalar(&self.text), self)
            .fetch_one(pool)
            .await)
        .unwrap_or_else(|e| panic!("{}: {e}", self.text))
    }
}

/// Runs every statement in one transaction (many rows arranged at once, as the server would
/// store them in one).
pub async fn execute_all(db: &Db, statements: Vec<Sql>) {
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await.expect("a transaction");
        for statement in &statements {
            bound!(sqlx::query(&statement.text), statement)
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", statement.text));
        }
        tx.commit().await.expect("committed");
    })
}
