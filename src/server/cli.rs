//! The command line: `rill` serves; `rill user add [--admin] NAME` creates an account (the first
//! admin, before anyone can sign in), its password from `RILL_NEW_PASSWORD` or one line of stdin;
//! `rill healthcheck` asks a running server whether it is alive (a container's health check,
//! with no shell tools); `rill backup PATH` copies the database while the server runs; `rill
//! migrate` brings the database's schema up to date and exits.

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve,
    AddUser {
        username: String,
        admin: bool,
    },
    Healthcheck,
    Backup {
        destination: std::path::PathBuf,
    },
    /// The server's PDF reader (`attachments/pdf.rs`), run by the server itself; not in the
    /// usage text.
    ReadPdf {
        max_bytes: String,
        memory_bytes: String,
        cpu_seconds: String,
    },
    Migrate,
    MigrateToPostgres {
        sqlite: std::path::PathBuf,
        url: String,
    },
    Help,
}

pub const USAGE: &str = "usage:
  rill                          serve (settings: see .env.example)
  rill user add [--admin] NAME  create an account; the password is read from RILL_NEW_PASSWORD,
                                or else from the first line of standard input
  rill healthcheck              exit 0 if the server at LEPTOS_SITE_ADDR answers /healthz, else 1
  rill backup PATH              copy the database (RILL_DATABASE) to the new file PATH, consistently,
                                while the server runs; restore: stop Rill, put the copy in its place
                                (on Postgres it says to use pg_dump)
  rill migrate                  apply the database's pending migrations (RILL_DATABASE: a SQLite file
                                or a postgres:// URL) and exit; replicas also migrate as they start
  rill migrate-to-postgres SQLITE_FILE URL
                                copy a stopped single-node database into an empty Postgres database
                                (URL: postgres://…), checked table by table by counting rows";

/// The new account's password: `RILL_NEW_PASSWORD`, or else the first line of standard input
/// (so that it never appears in the process list or the shell history).
pub fn new_password(username: &str) -> std::io::Result<String> {
    if let Ok(password) = std::env::var("RILL_NEW_PASSWORD") {
        return Ok(password);
    }
    eprintln!("password for {username} (one line):");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Parses the arguments after the program name; `Err` is a message for the terminal.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => Ok(Command::Serve),
        ["-h" | "--help" | "help"] => Ok(Command::Help),
        ["healthcheck"] => Ok(Command::Healthcheck),
        [crate::server::attachments::pdf::COMMAND, max_bytes, memory_bytes, cpu_seconds] => {
            Ok(Command::ReadPdf {
                max_bytes: (*max_bytes).to_owned(),
                memory_bytes: (*memory_bytes).to_owned(),
                cpu_seconds: (*cpu_seconds).to_owned(),
            })
        }
        ["migrate"] => Ok(Command::Migrate),
        ["migrate-to-postgres", file, url]
            if !file.starts_with('-')
                && matches!(
                    crate::server::config::Database::parse(url),
                    crate::server::config::Database::Postgres(_)
                ) =>
        {
            Ok(Command::MigrateToPostgres {
                sqlite: file.into(),
                url: (*url).to_owned(),
            })
        }
        ["migrate-to-postgres", ..] => Err(format!(
            "rill migrate-to-postgres takes a SQLite file and a postgres:// URL\n{USAGE}"
        )),
        ["backup", path] if !path.starts_with('-') => Ok(Command::Backup {
            destination: path.into(),
        }),
        ["backup", ..] => Err(format!("rill backup takes one PATH\n{USAGE}")),
        ["user", "add", rest @ ..] => {
            let admin = rest.contains(&"--admin");
            let names: Vec<&&str> = rest.iter().filter(|a| **a != "--admin").collect();
            match names.as_slice() {
                [name] if !name.starts_with('-') => Ok(Command::AddUser {
                    username: (**name).to_owned(),
                    admin,
                }),
                _ => Err(format!("rill user add takes one NAME\n{USAGE}")),
            }
        }
        _ => Err(format!("unknown command: {}\n{USAGE}", args.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str) -> Result<Command, String> {
        let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
        parse(&args)
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse_str(""), Ok(Command::Serve));
        assert_eq!(
            parse_str("user add --admin ada"),
            Ok(Command::AddUser {
                username: "ada".into(),
                admin: true
            })
        );
        assert_eq!(
            parse_str("user add bob"),
            Ok(Command::AddUser {
                username: "bob".into(),
                admin: false
            })
        );
        assert!(parse_str("user add").is_err());
        assert!(parse_str("user add a b").is_err());
        assert!(parse_str("serve --now").is_err());
        assert_eq!(parse_str("healthcheck"), Ok(Command::Healthcheck));
        assert_eq!(parse_str("migrate"), Ok(Command::Migrate));
        assert!(parse_str("migrate now").is_err());
        assert_eq!(
            parse_str("migrate-to-postgres data/rill.db postgres://rill@db/rill"),
            Ok(Command::MigrateToPostgres {
                sqlite: "data/rill.db".into(),
                url: "postgres://rill@db/rill".into()
            })
        );
        assert!(parse_str("migrate-to-postgres data/rill.db other.db").is_err());
        assert!(parse_str("migrate-to-postgres data/rill.db").is_err());
        assert_eq!(
            parse_str("backup /data/copy.db"),
            Ok(Command::Backup {
                destination: "/data/copy.db".into()
            })
        );
        assert!(parse_str("backup").is_err());
        assert!(parse_str("backup a b").is_err());
    }
}
