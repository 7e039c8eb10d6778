//! Where Rill keeps its data: a SQLite file (the default: one binary, one file) or a Postgres
//! server, named by a `postgres://` URL in the same setting ([`super::settings::DATABASE`]).

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file; its directory is created if missing.
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL. It may hold a password, so it is never printed
    /// whole ([`Database::describe`]).
    Postgres(String),
}

impl Database {
    /// A URL with a Postgres scheme names Postgres; anything else is a SQLite file's path.
    pub fn parse(text: &str) -> Self {
        let scheme = text.split_once("://").map(|(scheme, _)| scheme);
        if scheme.is_some_and(|s| {
            s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql")
        }) {
            Self::Postgres(text.to_owned())
        } else {
            Self::Sqlite(PathBuf::from(text))
        }
    }

    /// The database as a message names it: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => without_password(url),
        }
    }

    /// Where an upload is spooled: beside the SQLite file (its disk has room for the data), or
    /// in the system's temporary directory when the data lives on a Postgres server.
    pub fn spool_anchor(&self) -> PathBuf {
        match self {
            Self::Sqlite(path) => path.clone(),
            Self::Postgres(_) => std::env::temp_dir().join("rill"),
        }
    }

    /// The SQLite file, if that is where the data lives.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(path) => Some(path),
            Self::Postgres(_) => None,
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(_) => write!(f, "Sqlite({})", self.describe()),
            Self::Postgres(_) => write!(f, "Postgres({})", self.describe()),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:…@host/db`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest
        .find(['/', '?'])
        .map_or((rest, ""), |i| rest.split_at(i));
    let Some((credentials, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:…@{host}{tail}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_names_postgres_and_anything_else_a_file() {
        assert_eq!(
            Database::parse("data/rill.db"),
            Database::Sqlite("data/rill.db".into())
        );
        assert_eq!(
            Database::parse("postgres://rill@db/rill"),
            Database::Postgres("postgres://rill@db/rill".into())
        );
        assert!(matches!(
            Database::parse("POSTGRESQL://rill@db/rill"),
            Database::Postgres(_)
        ));
        // A file whose name merely mentions Postgres is still a file.
        assert!(matches!(
            Database::parse("postgres.db"),
            Database::Sqlite(_)
        ));
    }

    #[test]
    fn a_password_is_never_described() {
        let db = Database::parse("postgres://rill:s3cret@db.internal:5432/rill?sslmode=require");
        assert_eq!(
            db.describe(),
            "postgres://rill:…@db.internal:5432/rill?sslmode=require"
        );
        assert!(!format!("{db:?}").contains("s3cret"));
        assert_eq!(
            Database::parse("postgres://rill@db/rill").describe(),
            "postgres://rill@db/rill"
        );
    }
}
