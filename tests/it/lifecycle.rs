//! Shutdown and crash, with the real server binary: SIGTERM drains (new turns get 503, running
//! replies get their grace, the rest are stored as interrupted), and after `kill -9` a restart
//! shows the reply as interrupted with all but the last moments of its text.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_provider::{expected_text, FakeConfig, FakeProvider};
use rill::model::{ConversationView, MessageStatus, TurnEvent};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

/// The `rill` binary, serving on a loopback port with the fake as its only provider.
pub(crate) struct Server {
    child: Child,
    pub(crate) base_url: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(database: &Path, fake: &FakeProvider, grace_secs: u64) -> Self {
        Self::start_with(database, fake, grace_secs, &[]).await
    }

    pub(crate) async fn start_with(
        database: &Path,
        fake: &FakeProvider,
        grace_secs: u64,
        settings: &[(&str, &str)],
    ) -> Self {
        Self::start_logging(database, fake, grace_secs, settings, Stdio::null()).await
    }

    /// [`Server::start_with`], its log (standard output) going to `log`.
    pub(crate) async fn start_logging(
        database: &Path,
        fake: &FakeProvider,
        grace_secs: u64,
        settings: &[(&str, &str)],
        log: Stdio,
    ) -> Self {
        Self::start_limited(database, fake, grace_secs, settings, log, None).await
    }

    /// [`Server::start_logging`], the process allowed at most `open_files` open files (its
    /// hard limit too, so it cannot raise it).
    async fn start_limited(
        database: &Path,
        fake: &FakeProvider,
        grace_secs: u64,
        settings: &[(&str, &str)],
        log: Stdio,
        open_files: Option<u64>,
    ) -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("addr").port()
        };
        // Beside the database's directory when Rill is to create that directory itself.
        let dir = database.parent().unwrap_or(Path::new("."));
        let site = if dir.exists() {
            dir.join("site")
        } else {
            dir.with_file_name("site")
        };
        let _ = std::fs::create_dir_all(&site);
        // The fake's model costs $1 per million tokens in and $2 out, as in the in-process tests.
        let prices = site.join("prices.toml");
        std::fs::write(
            &prices,
            "[prices.\"fake/fake-model\"]\ninput = 1.0\noutput = 2.0\n",
        )
        .expect("prices");
        let mut command = match open_files {
            Some(n) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\""))
                    .arg(env!("CARGO_BIN_EXE_rill"));
                shell
            }
            None => Command::new(env!("CARGO_BIN_EXE_rill")),
        };
        let child = command
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("LEPTOS_SITE_ROOT", &site)
            .env("LEPTOS_OUTPUT_NAME", "rill")
            .env("RILL_DATABASE", database)
            .env("RILL_OPENAI_COMPAT_URL", fake.base_url())
            .env("RILL_OPENAI_COMPAT_NAME", "fake")
            .env("RILL_LOCAL_MODEL", "off")
            .env("RILL_SHUTDOWN_GRACE_SECS", grace_secs.to_string())
            .env("RILL_CONFIG", &prices)
            .env("RUST_LOG", "warn")
            .envs(settings.iter().copied())
            .stdout(log)
            .spawn()
            .expect("the rill binary starts");
        let server = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let ready = Instant::now();
        while server
            .http
            .post(format!("{}/api/list_models", server.base_url))
            .json(&json!({}))
            .send()
            .await
            .is_err()
        {
            assert!(
                ready.elapsed() < Duration::from_secs(30),
                "the server did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub(crate) async fn send(&self, conversation: Option<Uuid>, text: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/send_message", self.base_url))
            .json(
                &json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation, "text": text}),
            )
            .send()
            .await
            .expect("the request reaches the server")
    }

    async fn conversation(&self, id: Uuid) -> ConversationView {
        self.http
            .post(format!("{}/api/get_conversation", self.base_url))
            .json(&json!({"id": id}))
            .send()
            .await
            .expect("reachable")
            .json()
            .await
            .expect("a conversation")
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, bounded; returns how long that took.
    async fn exited(&mut self, bound: Duration) -> Duration {
        let waiting = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(
                    status.success() || status.code().is_none(),
                    "exit status {status}"
                );
                return waiting.elapsed();
            }
            assert!(
                waiting.elapsed() < bound,
                "the server did not exit within {bound:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake answering `tokens` tokens `delay_ms` apart, and the server binary in front of it with a
/// fresh database and the given grace; keep the directory alive as long as the database.
async fn serving(
    tokens: usize,
    delay_ms: u64,
    grace_secs: u64,
) -> (FakeProvider, tempfile::TempDir, PathBuf, Server) {
    let fake = FakeProvider::start(FakeConfig {
        tokens,
        token_delay_ms: delay_ms,
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    let dir = private_dir();
    let db = dir.path().join("rill.db");
    let server = Server::start(&db, &fake, grace_secs).await;
    (fake, dir, db, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_running_reply_finish_and_refuses_new_turns_with_503() {
    let (fake, _dir, db, mut server) = serving(60, 25, 5).await;
    let mut reader = EventReader::new(server.send(None, "Finish this").await);
    let conversation_id = reader.started().await;
    let signalled = Instant::now();
    server.signal("TERM");
    // A new turn during the drain is refused at once, with a message that says why.
    let refused = loop {
        let response = server.send(Some(conversation_id), "Another").await;
        if response.status() == 503 {
            break response;
        }
        // Until the signal lands the conversation is busy (409): try again.
        assert_eq!(response.status(), 409);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(refused
        .text()
        .await
        .unwrap_or_default()
        .contains("restarting"));
    let rest = reader.read_to_end().await;
    assert_eq!(finished(&rest).status, MessageStatus::Complete);
    assert_eq!(text_of(&rest), expected_text(60));
    server.exited(Duration::from_secs(9)).await;
    eprintln!(
        "SIGTERM with a reply running: the reply finished and the server exited {:?} after the signal",
        signalled.elapsed()
    );
    let server = Server::start(&db, &fake, 5).await;
    let stored = server.conversation(conversation_id).await;
    assert_eq!(stored.messages.len(), 2, "the refused turn stored nothing");
    assert_eq!(stored.messages[1].outcome.status, MessageStatus::Complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stores_a_reply_longer_than_the_grace_as_interrupted() {
    let (fake, _dir, db, mut server) = serving(2_000, 10, 1).await;
    let mut reader = EventReader::new(server.send(None, "Never ending").await);
    let conversation_id = reader.started().await;
    let signalled = Instant::now();
    server.signal("TERM");
    let rest = reader.read_to_end().await;
    let outcome = finished(&rest);
    assert_eq!(outcome.status, MessageStatus::Interrupted);
    assert!(outcome
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("shut down"));
    server.exited(Duration::from_secs(8)).await;
    eprintln!(
        "SIGTERM, grace 1 s: exited {:?} after the signal",
        signalled.elapsed()
    );
    assert!(fake
        .wait_for_disconnect(Duration::from_secs(1))
        .await
        .is_some());
    let server = Server::start(&db, &fake, 1).await;
    let reply = &server.conversation(conversation_id).await.messages[1];
    assert_eq!(reply.outcome.status, MessageStatus::Interrupted);
    assert_eq!(
        reply.content,
        text_of(&rest),
        "the text shown is the text stored"
    );
}

/// The promise after `kill -9`: the text stored is all the text shown up to 250 ms before.
const SAVED_WITHIN: Duration = Duration::from_millis(250);
/// What a loaded 2-core machine adds to it: the checkpoint's write, a token's gap, the 10 ms
/// poll below, and a server process waiting for a core. A checkpoint every 500 ms still fails.
const SCHEDULING_SLACK: Duration = Duration::from_millis(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_reply_is_interrupted_and_keeps_all_but_its_last_moments() {
    let (fake, _dir, db, mut server) = serving(5_000, 5, 5).await;
    let mut reader = EventReader::new(server.send(None, "Keep going").await);
    let conversation_id = reader.started().await;
    // When each stored length of the reply was first seen in the database.
    let (stop_watching, stopped) = tokio::sync::oneshot::channel();
    let saves = tokio::spawn(watch_saves(db.clone(), stopped));
    // When each length of text was first seen by the reader.
    let mut arrivals: Vec<(Instant, usize)> = Vec::new();
    let mut text = String::new();
    // Killed at a moment that falls anywhere between two checkpoints.
    let kill_after = Duration::from_millis(1_200 + (Uuid::new_v4().as_u128() % 300) as u64);
    let streaming = Instant::now();
    while streaming.elapsed() < kill_after {
        if let Some(TurnEvent::Delta { text: delta }) = reader.next().await.map(|e| e.event) {
            text.push_str(&delta);
            arrivals.push((Instant::now(), text.len()));
        }
    }
    server.signal("KILL");
    let killed = Instant::now();
    server.exited(Duration::from_secs(5)).await;
    let _ = stop_watching.send(());
    let saves = saves.await.expect("the watch ends");
    // What reached the socket after the reader paused: the kill may come just after a
    // checkpoint stored text the stream had not yet carried, so the two are compared as
    // prefixes of one reply.
    let shown = text.clone() + &text_of(&reader.read_to_end().await);

    let server = Server::start(&db, &fake, 5).await;
    let reply = &server.conversation(conversation_id).await.messages[1];
    assert_eq!(reply.outcome.status, MessageStatus::Interrupted);
    // Billed at an estimate of what it wrote, not free: the run's reservation was settled at
    // start-up.
    let cost = reply.outcome.cost_usd.unwrap_or(0.0);
    assert!(
        cost > 0.0 && reply.outcome.usage_estimated,
        "{:?}",
        reply.outcome
    );
    let (state, ledger): (String, f64) = {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
            .await
            .expect("database");
        sqlx::query_as("SELECT state, cost_usd FROM spending")
            .fetch_one(&pool)
            .await
            .expect("the run's ledger row")
    };
    assert_eq!(state, "settled");
    assert!((ledger - cost).abs() < 1e-12, "{ledger} vs {cost}");
    assert!(
        shown.starts_with(&reply.content) || reply.content.starts_with(&shown),
        "the stored text and the text shown are the same reply, each cut"
    );
    assert!(!reply.content.is_empty());
    // The checkpoints' cadence, which bounds the loss wherever the kill falls.
    let gaps: Vec<Duration> = saves
        .windows(2)
        .map(|pair| pair[1].0.duration_since(pair[0].0))
        .collect();
    assert!(gaps.len() >= 3, "too few saves while streaming: {saves:?}");
    let widest = gaps.iter().max().copied().unwrap_or_default();
    assert!(
        widest < SAVED_WITHIN + SCHEDULING_SLACK,
        "text waited {widest:?} to be saved (gaps {gaps:?})"
    );
    let last_saved = saves.last().map_or(0, |(_, len)| *len);
    assert!(reply.content.len() >= last_saved, "a save was lost");
    // The loss window: from when the reader first saw the stored text's end to the kill.
    let saved_at = arrivals
        .iter()
        .find(|(_, len)| *len >= reply.content.len())
        .map_or(killed, |(at, _)| *at);
    let lost = killed.duration_since(saved_at);
    eprintln!(
        "kill -9: {} of {} bytes kept; the text lost was shown in the last {} ms before the kill; \
         checkpoints {} ms apart at most",
        reply.content.len(),
        text.len(),
        lost.as_millis(),
        widest.as_millis()
    );
    assert!(
        lost < SAVED_WITHIN + SCHEDULING_SLACK,
        "lost {lost:?} of text"
    );
}

/// Reads the stored length of the (one) reply every 10 ms, as a second process would, and
/// records when each new length was first seen, until `stop`.
async fn watch_saves(
    database: PathBuf,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<(Instant, usize)> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&database)
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("the database opens read-only");
    let mut saves: Vec<(Instant, usize)> = Vec::new();
    let mut poll = tokio::time::interval(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = &mut stop => return saves,
            _ = poll.tick() => {}
        }
        // The reply's row, and the pieces checkpoints appended beside it since it was last
        // written whole.
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT length(CAST(content AS BLOB))
                    + (SELECT COALESCE(SUM(length(CAST(p.content AS BLOB))), 0)
                         FROM reply_pieces p WHERE p.message_id = messages.id)
             FROM messages WHERE role = 'assistant'",
        )
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten();
        let stored = stored
            .and_then(|len| usize::try_from(len).ok())
            .unwrap_or(0);
        if stored > saves.last().map_or(0, |(_, len)| *len) {
            saves.push((Instant::now(), stored));
        }
    }
}

#[tokio::test]
async fn at_shutdown_conversation_streams_end_and_the_server_exits() {
    let mut app = TestApp::start(FakeConfig {
        tokens: 3,
        ..FakeConfig::default()
    })
    .await;
    let events = app.turn(None, "Hi").await;
    let mut watching = app.watch(conversation_of(&events), None).await;
    assert!(matches!(
        watching.next_line().await,
        Some(rill::model::StreamLine::Turn { .. })
    ));
    let server = app.begin_shutdown();
    // The page's idle stream is closed by the drain rather than holding the shutdown open.
    while watching.next_line().await.is_some() {}
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server exits promptly")
        .expect("the server task")
        .expect("served without error");
}

#[tokio::test]
async fn a_network_address_without_accounts_refuses_to_start() {
    let dir = private_dir();
    let database = dir.path().join("rill.db");
    let output = Command::new(env!("CARGO_BIN_EXE_rill"))
        .env("LEPTOS_SITE_ADDR", "0.0.0.0:0")
        .env("RILL_DATABASE", &database)
        .env("RILL_LOCAL_MODEL", "off")
        .env_remove("RILL_AUTH")
        .env_remove("RILL_UNSAFE_NO_AUTH_ON_NETWORK")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("refusing to listen on 0.0.0.0:0"), "{said}");
    assert!(said.contains("RILL_AUTH=accounts"), "{said}");
    assert!(!database.exists(), "it stopped before touching anything");
}

#[tokio::test]
async fn the_first_admin_comes_from_the_command_line_and_signs_in() {
    let fake = FakeProvider::start(FakeConfig::default())
        .await
        .expect("fake starts");
    let dir = private_dir();
    let database = dir.path().join("rill.db");
    let add = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rill"));
        command
            .args(args)
            .env("RILL_DATABASE", &database)
            .env("RILL_LOCAL_MODEL", "off")
            .env_remove("RILL_NEW_PASSWORD");
        command
    };
    let output = add(&["user", "add", "--admin", "root"])
        .env("RILL_NEW_PASSWORD", "root-password")
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "created admin root"
    );
    // The password from standard input, as `docker exec -i` would pass it.
    let mut child = add(&["user", "add", "bob"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"bob-password\n").expect("write");
    }
    let output = child.wait_with_output().expect("ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A taken name is refused in words.
    let taken = add(&["user", "add", "ROOT"])
        .env("RILL_NEW_PASSWORD", "whatever-password")
        .output()
        .expect("runs");
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("taken"));

    let mut server = Server::start_with(&database, &fake, 1, &[("RILL_AUTH", "accounts")]).await;
    let anonymous = server
        .http
        .post(format!("{}/api/list_conversations", server.base_url))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401);
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    for (name, password) in [("root", "root-password"), ("bob", "bob-password")] {
        let signed_in = browser
            .post(format!("{}/api/sign_in", server.base_url))
            .json(&json!({"username": name, "password": password}))
            .send()
            .await
            .expect("request");
        assert_eq!(signed_in.status(), 200, "{name}");
    }
    let listed = browser
        .post(format!("{}/api/list_conversations", server.base_url))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(listed.status(), 200);
    server.signal("TERM");
    server.exited(Duration::from_secs(8)).await;
}

/// What an operator does from the command line next to a running server: `rill healthcheck`
/// (the container's health check) says healthy, then not once the server is gone; `rill backup`
/// copies the live database; with `RILL_LOG_FORMAT=json` every log line is a JSON object and a
/// turn's lines carry its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_backup_and_json_logs_work_beside_a_running_server() {
    let fake = FakeProvider::start(FakeConfig::default())
        .await
        .expect("fake starts");
    let dir = private_dir();
    let database = dir.path().join("rill.db");
    let log_path = dir.path().join("rill.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut server = Server::start_logging(
        &database,
        &fake,
        1,
        &[("RILL_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        Stdio::from(log),
    )
    .await;
    let addr = server.base_url.trim_start_matches("http://").to_owned();
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rill"))
            .args(args)
            .env("LEPTOS_SITE_ADDR", &addr)
            .env("RILL_DATABASE", &database)
            .env("RILL_LOCAL_MODEL", "off")
            .output()
            .expect("runs")
    };
    assert!(cli(&["healthcheck"]).status.success());

    let turn_id = Uuid::new_v4();
    let response = server
        .http
        .post(format!("{}/api/send_message", server.base_url))
        .json(&json!({"turn_id": turn_id, "conversation_id": null, "text": "back me up"}))
        .send()
        .await
        .expect("request");
    let events = EventReader::new(response).read_to_end().await;
    assert_eq!(finished(&events).status, MessageStatus::Complete);

    let copy = dir.path().join("backup.db");
    let backup = cli(&["backup", copy.to_str().expect("utf-8 path")]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let restored = rill::server::db::connect(&rill::server::config::Database::Sqlite(copy.clone()))
        .await
        .expect("the copy opens");
    let owner = rill::server::db::Owner("local".into());
    let listed = rill::server::db::list_conversations(&restored, &owner, None)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1, "the conversation is in the copy");
    let again = cli(&["backup", copy.to_str().expect("utf-8 path")]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    server.signal("TERM");
    server.exited(Duration::from_secs(10)).await;
    let unhealthy = cli(&["healthcheck"]);
    assert_eq!(unhealthy.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unhealthy.stderr).contains("unhealthy: "));

    let text = std::fs::read_to_string(&log_path).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let finished_line = lines
        .iter()
        .find(|line| line["fields"]["message"] == "turn finished")
        .unwrap_or_else(|| panic!("a turn finished line in {text}"));
    assert_eq!(finished_line["span"]["turn_id"], turn_id.to_string());
    assert_eq!(finished_line["level"], "INFO");
}

/// A connection from a loopback address of the test's choosing (all of 127/8 is this machine).
async fn connect_from(from: &str, to: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind");
    socket
        .connect(to.parse().expect("address"))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_256_open_files_a_flood_of_idle_sockets_meets_the_caps_not_the_file_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fake = FakeProvider::start(FakeConfig::default())
        .await
        .expect("fake");
    let dir = private_dir();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let server = Server::start_limited(
        &dir.path().join("rill.db"),
        &fake,
        1,
        &[
            ("RILL_HEADER_TIMEOUT_SECS", "3"),
            ("RUST_LOG", "info"),
            ("RILL_LOG_FORMAT", "json"),
        ],
        Stdio::from(log),
        Some(256),
    )
    .await;
    let addr = server.base_url.trim_start_matches("http://").to_owned();
    // 260 idle sockets from one address: more than the process has files.
    let started = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..260 {
        idle.push(connect_from("127.0.0.1", &addr).await);
    }
    // Past its share, each is turned away: answered 503 in words and closed (or, while
    // refusals are being written at their own cap, closed at once). Its share stays open.
    let outcomes = futures::future::join_all(idle.iter_mut().map(|stream| async move {
        let mut buffer = [0u8; 512];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
            Ok(Ok(n)) if buffer[..n].starts_with(b"HTTP/1.1 503") => "refused",
            Ok(_) => "closed",
            Err(_) => "open",
        }
    }))
    .await;
    let count = |what: &str| outcomes.iter().filter(|o| **o == what).count();
    let (refused, closed, open) = (count("refused"), count("closed"), count("open"));
    assert!(open <= 24, "{open} of one address's connections were kept");
    assert!(refused > 0, "a refusal says why");
    assert_eq!(refused + closed + open, 260);
    // Anyone else is still served, at once.
    let asked = Instant::now();
    let mut health = connect_from("127.0.0.2", &addr).await;
    health
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request");
    let mut buffer = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(2), health.read(&mut buffer))
        .await
        .expect("healthz answers while the flood is held")
        .expect("read");
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
    println!(
        "260 idle sockets from one address: {open} kept, {refused} refused with a 503 in words, \
         {closed} closed at once; /healthz from another address answered in {:?}",
        asked.elapsed()
    );
    // The idle ones that were admitted are let go at the header timeout (3 s).
    let mut closed = 0;
    for stream in &mut idle {
        let mut buffer = [0u8; 512];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_secs(6), stream.read(&mut buffer)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 260, "every idle socket is closed in the end");
    println!(
        "all 260 closed {:?} after the flood began",
        started.elapsed()
    );
    drop(server);
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(!log.contains("accept failed"), "{log}");
    assert!(log.contains(r#""max_connections":96"#), "{log}");
    assert!(log.contains(r#""max_per_address":24"#), "{log}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_is_its_owners_alone_and_its_wal_is_folded_in_at_exit() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let fake = FakeProvider::start(FakeConfig::default())
        .await
        .expect("fake");
    let dir = private_dir();
    // The database's directory does not exist yet: Rill creates it, its owner's alone.
    let data = dir.path().join("data");
    let database = data.join("rill.db");
    let mut server = Server::start(&database, &fake, 1).await;
    let events = EventReader::new(server.send(None, "Hello").await)
        .read_to_end()
        .await;
    assert!(matches!(
        events.last().map(|e| &e.event),
        Some(TurnEvent::Finished(_))
    ));
    let wal = data.join("rill.db-wal");
    assert_eq!(mode(&data), 0o700);
    for file in [&database, &wal, &data.join("rill.db-shm")] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    server.signal("TERM");
    server.exited(Duration::from_secs(15)).await;
    assert!(
        !wal.exists() || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0,
        "the WAL is folded into the database when the server stops"
    );
    // Loosened by hand: refused, saying how to fix it, unless told.
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = Command::new(env!("CARGO_BIN_EXE_rill"))
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("RILL_DATABASE", &database)
        .env("RILL_LOCAL_MODEL", "off")
        .output()
        .expect("the binary runs");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("chmod 600"), "{said}");
    assert!(said.contains("RILL_UNSAFE_FILE_MODES"), "{said}");
    let server =
        Server::start_with(&database, &fake, 1, &[("RILL_UNSAFE_FILE_MODES", "yes")]).await;
    drop(server);
}

/// Resident memory of a process now and at its peak (Linux `/proc/PID/status`), in MiB.
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_failed_sign_ins_is_queued_or_refused_and_memory_stays_bounded() {
    let fake = FakeProvider::start(FakeConfig::default())
        .await
        .expect("fake");
    let dir = private_dir();
    let database = dir.path().join("rill.db");
    let server = Server::start_with(&database, &fake, 1, &[("RILL_AUTH", "accounts")]).await;
    let pid = server.child.id();
    let (before, _) = memory_mib(pid);
    // 100 at once, each from an address of its own (so that the per-address limits do not
    // thin the burst out before it reaches the hashing).
    let attempts = (0..100).map(|i| {
        let client = reqwest::Client::builder()
            .local_address(
                format!("127.0.3.{}", i + 1)
                    .parse::<std::net::IpAddr>()
                    .expect("address"),
            )
            .build()
            .expect("client");
        let url = format!("{}/api/sign_in", server.base_url);
        async move {
            let response = client
                .post(url)
                .json(&json!({"username": format!("someone{i}"), "password": "a guess"}))
                .send()
                .await
                .expect("reaches the server");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let wrong = answers.iter().filter(|(s, _)| *s == 401).count();
    let busy: Vec<&String> = answers
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(wrong + busy.len(), 100, "{answers:?}");
    assert!(wrong > 0);
    assert!(
        busy.iter().all(|b| b.contains("busy checking passwords")),
        "{busy:?}"
    );
    let (after, peak) = memory_mib(pid);
    println!(
        "100 failed sign-ins at once: {wrong} answered, {} told the server is busy; resident \
         memory {before} MiB before, peak {peak} MiB, {after} MiB after",
        busy.len()
    );
    // At most one argon2 block (19 MiB) per hashing thread, at most four threads.
    assert!(
        peak <= before + 4 * 19 + 40,
        "peak {peak} MiB from {before} MiB"
    );
    drop(server);
}

/// The binary serving from Postgres (issue 28): a turn through HTTP, then a reply cut by
/// `kill -9`; a restarted binary reads both back from the database (the cut one interrupted,
/// with its checkpointed text) and continues it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_from_postgres_and_another_replica_takes_over_a_killed_ones_reply() {
    let rill::server::config::Database::Postgres(url) = crate::postgres::fresh_database().await
    else {
        unreachable!("a Postgres database")
    };
    let fake = FakeProvider::start(FakeConfig {
        tokens: 5,
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    let dir = private_dir();
    // The site's files go beside this path; RILL_DATABASE is the URL.
    let beside = dir.path().join("not-used.db");
    let on_postgres = [("RILL_DATABASE", url.as_str())];
    let mut server = Server::start_with(&beside, &fake, 5, &on_postgres).await;
    let other = Server::start_with(&beside, &fake, 5, &on_postgres).await;
    let first = EventReader::new(server.send(None, "Hello there").await)
        .read_to_end()
        .await;
    assert_eq!(finished(&first).status, MessageStatus::Complete);
    let conversation_id = conversation_of(&first);

    // A long reply, killed once some of it is checkpointed.
    fake.set_config(FakeConfig {
        tokens: 5_000,
        token_delay_ms: 5,
        ..FakeConfig::default()
    });
    let mut reader = EventReader::new(server.send(Some(conversation_id), "Keep going").await);
    let mut shown = String::new();
    while shown.len() < 200 {
        match reader.next().await.map(|e| e.event) {
            Some(TurnEvent::Delta { text }) => shown.push_str(&text),
            Some(_) => {}
            None => panic!("the reply ended early"),
        }
    }
    // Past a checkpoint (every 250 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;
    // While it runs, the other replica shows it streaming: its own turns do not end it.
    let running = other.conversation(conversation_id).await;
    assert_eq!(
        running.messages[3].outcome.status,
        MessageStatus::Streaming,
        "a living replica's reply is left to it"
    );
    server.signal("KILL");
    let killed = std::time::Instant::now();
    server.exited(Duration::from_secs(5)).await;
    assert!(
        !beside.exists(),
        "nothing was stored in a SQLite file beside"
    );

    // Within the lease, the other replica marks the reply interrupted.
    let bound = Duration::from_secs(20);
    let stored = loop {
        let stored = other.conversation(conversation_id).await;
        if stored.messages[3].outcome.status != MessageStatus::Streaming {
            break stored;
        }
        assert!(
            killed.elapsed() < bound,
            "still streaming {bound:?} after its replica was killed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "interrupted by another replica {} ms after a kill -9 (lease {:?})",
        killed.elapsed().as_millis(),
        rill::server::db::replicas::LEASE
    );
    let server = other;
    assert_eq!(stored.messages.len(), 4);
    assert_eq!(stored.messages[0].content, "Hello there");
    assert_eq!(stored.messages[1].content, expected_text(5));
    assert_eq!(stored.messages[1].outcome.status, MessageStatus::Complete);
    let cut = &stored.messages[3];
    assert_eq!(cut.outcome.status, MessageStatus::Interrupted);
    assert!(
        cut.content.len() >= shown.len() && expected_text(5_000).starts_with(&cut.content),
        "{} bytes kept of {} shown",
        cut.content.len(),
        shown.len()
    );
    // Continue, through the other replica.
    fake.set_config(FakeConfig {
        tokens: 3,
        ..FakeConfig::default()
    });
    let continued = server
        .http
        .post(format!("{}/api/continue_reply", server.base_url))
        .json(&json!({"turn_id": cut.turn_id.to_string(), "from_run": cut.run}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(continued.status(), 200);
    let rest = EventReader::new(continued).read_to_end().await;
    assert_eq!(finished(&rest).status, MessageStatus::Complete);
    let stored = server.conversation(conversation_id).await;
    assert_eq!(
        stored.messages[3].content,
        format!("{}{}", cut.content, expected_text(3))
    );
}
