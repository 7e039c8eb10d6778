//! A throwaway Postgres for the tests: one cluster per test binary, started on first use in a
//! temporary directory on a free loopback port (as the `postgres` user when the tests run as
//! root: Postgres refuses to run as root), with fsync off; a template database migrated once;
//! and a fresh database per test, copied from the template, so tests never see each other's
//! rows. A watchdog stops the cluster and removes its directory when the test binary exits.
//!
//! Postgres comes from Debian's `postgresql` package, which
//! `.ci/run` installs; the binaries are looked for in `/usr/lib/postgresql/<version>/bin`, or
//! in `RILL_TEST_PG_BIN`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rill::server::config::Database;
use sqlx::Connection;

struct Cluster {
    port: u16,
}

impl Cluster {
    fn url(&self, database: &str) -> String {
        format!("postgres://rill@127.0.0.1:{}/{database}", self.port)
    }
}

const TEMPLATE: &str = "rill_template";

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RILL_TEST_PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "Postgres is installed (apt-get install -y postgresql; .ci/run does it), or \
             RILL_TEST_PG_BIN names its binaries",
        )
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a Postgres version with initdb")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` from Postgres's binaries, as the `postgres` user when we are root.
fn pg(bin: &Path, program: &str) -> Command {
    let program = bin.join(program);
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rill-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres").arg(&dir);
                    c
                },
                "chown the cluster's directory",
            );
        }
        let data = dir.join("data");
        let mut initdb = pg(&bin, "initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "rill", "-E", "UTF8", "--no-sync"]);
        run(initdb, "initdb");
        let port = free_port();
        let mut start = pg(&bin, "pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                dir.display()
            ))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "start"]);
        run(start, "pg_ctl start");
        // Stops the cluster once this process is gone, however it ended (its own session, so
        // a Ctrl-C to the tests' process group does not end it first).
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if is_root() { "runuser -u postgres -- " } else { "" },
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        // `setsid --fork` leaves the watchdog running in its own session and returns at once.
        let watchdog = Command::new("setsid")
            .args(["--fork", "sh", "-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the cluster's watchdog starts");
        assert!(watchdog.success(), "the cluster's watchdog starts");
        Cluster { port }
    })
}

/// A database of the test cluster with nothing in it (not even a schema).
pub async fn empty_database() -> Database {
    create_database(None).await
}

/// A database of the test cluster with Rill's schema and no rows, for one test alone.
pub async fn fresh_database() -> Database {
    static TEMPLATE_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    TEMPLATE_READY
        .get_or_init(|| async {
            let cluster = cluster();
            admin(&format!("CREATE DATABASE {TEMPLATE}")).await;
            let template = Database::Postgres(cluster.url(TEMPLATE));
            rill::server::db::migrate(&template)
                .await
                .expect("the template migrates");
        })
        .await;
    create_database(Some(TEMPLATE)).await
}

/// An empty database of the test cluster owned by a role of its own that is no superuser (as a
/// hosted Postgres gives an application), and connected to as that role.
pub async fn database_of_a_plain_role() -> Database {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (role, name) = (format!("r_{suffix}"), format!("t_{suffix}"));
    admin(&format!(
        "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
    ))
    .await;
    admin(&format!("CREATE DATABASE {name} OWNER {role}")).await;
    Database::Postgres(
        cluster()
            .url(&name)
            .replacen("rill@", &format!("{role}@"), 1),
    )
}

async fn create_database(template: Option<&str>) -> Database {
    // Copies from one template one at a time (Postgres refuses a template in use).
    static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = CREATING.lock().await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    admin(&match template {
        Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
        None => format!("CREATE DATABASE {name}"),
    })
    .await;
    Database::Postgres(cluster().url(&name))
}

async fn admin(statement: &str) {
    let mut connection = sqlx::PgConnection::connect(&cluster().url("postgres"))
        .await
        .expect("the test cluster answers");
    sqlx::query(statement)
        .execute(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    connection.close().await.expect("closed");
}
