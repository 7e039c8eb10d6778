use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fake_provider::{FakeConfig, FakeProvider};
use futures::StreamExt;
use rill::model::{ndjson, Outcome, Price, StreamLine, TurnEnvelope, TurnEvent};
use rill::server::catalog::{LocalModelStatus, ModelCatalog, ModelEntry, ModelLimits};
use rill::server::clock::{Clock, SharedClock};
use rill::server::config::{
    AccessSettings, AuthMode, Config, ConnectionSettings, ConversationSettings, Database,
    LimitSettings, LocalModelSettings, OidcSettings, OpsSettings, ProviderConfig, ProviderKind,
    TurnSettings, DEFAULT_LOCAL_MODEL, OIDC_CALLBACK_PATH,
};
use rill::server::pricing::{PriceEntry, PriceTable};
use rill::server::{db, http, AppState};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::sql::sql;

/// Every wait in these tests is bounded; a hang fails the test instead of stalling CI.
pub const WAIT: Duration = Duration::from_secs(10);

/// $1 per million input tokens (cached: $0.50), $2 per million output.
pub const FAKE_PRICE: Price = Price {
    input: 1.0,
    cached_input: Some(0.5),
    cache_write: None,
    output: 2.0,
};
/// Anthropic-shaped: $3 in, $0.30 cache reads, $3.75 cache writes, $15 out (per million).
pub const CLAUDE_PRICE: Price = Price {
    input: 3.0,
    cached_input: Some(0.3),
    cache_write: Some(3.75),
    output: 15.0,
};

/// The longest any request of a test may take, its body read included: far past what any test
/// needs (the whole suite runs in about two minutes), so that a request the server never answers
/// fails its test in words instead of holding the run until CI's limit.
const REQUEST_BOUND: Duration = Duration::from_secs(180);

pub struct TestApp {
    pub base_url: String,
    pub fake: FakeProvider,
    pub http: reqwest::Client,
    pub state: AppState,
    /// Sends the server its shutdown signal (SIGTERM in production).
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// How a test app differs from the default one.
#[derive(Default)]
pub struct Setup {
    pub fake: FakeConfig,
    pub turns: Option<TurnSettings>,
    /// The real local model (fetched by scripts/fetch-model.sh) as the only model.
    pub local: bool,
    /// With `local`, the fake's providers stay beside it (else the local model is alone).
    pub fake_beside_local: bool,
    /// The local model's context in tokens (default 8192, the model's own).
    pub local_context: Option<usize>,
    /// Models of the test's own, added to the catalog.
    pub extra_models: Vec<ModelEntry>,
    /// Single-user on loopback unless a test says otherwise.
    pub access: AccessSettings,
    /// Per-person limits; by default high enough that only the tests of limits meet them.
    pub limits: Option<LimitSettings>,
    /// Requests that may wait for the local model (default: the shipped 8).
    pub local_queue: Option<usize>,
    /// Logs and metrics settings (default: text logs, no metrics token).
    pub ops: OpsSettings,
    /// Default system prompt and purge delay (default: none, a day).
    pub conversations: ConversationSettings,
    /// The thinking budget of the Anthropic and Gemini fakes (default: thinking not asked).
    pub thinking_tokens: Option<u32>,
    /// Connection caps and timeouts (default: as shipped).
    pub connections: Option<ConnectionSettings>,
    /// The clock budgets count months by (default: the system's).
    pub clock: Option<Arc<TestClock>>,
    /// Prices laid over the tests' own (`provider/model`, entry).
    pub prices: Vec<(String, PriceEntry)>,
    /// Titles asked of the model after the first reply (default: first words only, so that the
    /// tests of everything else see only their own requests and spending).
    pub model_titles: bool,
    /// Stored on Postgres whatever `RILL_TEST_ENGINE` says (see [`on_postgres`]).
    pub postgres: bool,
    /// Stored in a SQLite file whatever `RILL_TEST_ENGINE` says (a test of SQLite's own file).
    pub sqlite: bool,
    /// Sign-in through an OpenID Connect provider; its redirect URL is set to the app's own.
    pub oidc: Option<OidcSettings>,
    /// Another app's database: this app is a second replica of it (see `replicas.rs`).
    pub database: Option<Database>,
}

/// Whether the tests' apps store on Postgres: `RILL_TEST_ENGINE=postgres` runs them on a
/// database of their own in the throwaway cluster (`postgres.rs`), else each has a SQLite file.
pub fn on_postgres() -> bool {
    std::env::var("RILL_TEST_ENGINE").is_ok_and(|engine| engine == "postgres")
}

/// A clock a test sets and moves (to cross a month boundary).
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A temporary directory only its owner may read, as Rill requires of its database's directory.
pub fn private_dir() -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    builder.tempdir().expect("temp dir")
}

/// Limits no test meets unless it is about limits.
pub fn generous_limits() -> LimitSettings {
    LimitSettings {
        running_per_user: 10_000,
        turns_per_minute: 1_000_000,
        streams_per_user: 10_000,
        writes_per_minute: 1_000_000,
        ..LimitSettings::default()
    }
}

/// Turn settings for tests: quick heartbeats; everything else as shipped.
pub fn test_turns() -> TurnSettings {
    TurnSettings {
        heartbeat: Duration::from_millis(500),
        ..TurnSettings::default()
    }
}

/// A model served by a provider of the test's own (`group/model`), with ordinary limits.
pub fn test_model(id: &str, provider: Arc<dyn llm::Provider>) -> ModelEntry {
    let (group, model) = id.split_once('/').expect("group/model");
    ModelEntry {
        id: id.into(),
        model: model.into(),
        note: None,
        group: group.into(),
        provider,
        limits: ModelLimits {
            context_tokens: 8_192,
            max_output_tokens: 512,
            thinking_tokens: None,
            sees_images: true,
        },
    }
}

/// Access with accounts, as a team's server has it.
pub fn accounts_mode() -> AccessSettings {
    AccessSettings {
        mode: AuthMode::Accounts,
        ..AccessSettings::default()
    }
}

impl TestApp {
    pub async fn start(fake: FakeConfig) -> Self {
        Self::with(Setup {
            fake,
            ..Setup::default()
        })
        .await
    }

    /// With the real local model (fetched by scripts/fetch-model.sh) as the only model.
    pub async fn start_local() -> Self {
        Self::with(Setup {
            local: true,
            ..Setup::default()
        })
        .await
    }

    /// With accounts: people sign up and sign in (`add_user`, `signed_in`).
    pub async fn with_accounts() -> Self {
        Self::with(Setup {
            access: accounts_mode(),
            ..Setup::default()
        })
        .await
    }

    pub async fn with(setup: Setup) -> Self {
        // PDFs are read by the `rill` binary as a child process; the tests run in their own.
        rill::server::attachments::pdf::use_reader(env!("CARGO_BIN_EXE_rill").into());
        let Setup {
            fake,
            turns,
            local,
            fake_beside_local,
            local_context,
            extra_models,
            access,
            limits,
            local_queue,
            ops,
            conversations,
            thinking_tokens,
            connections,
            clock,
            prices,
            model_titles,
            postgres,
            sqlite,
            oidc,
            database,
        } = setup;
        // Bound first: the provider's redirect URL names the app's address.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let oidc = oidc.map(|settings| OidcSettings {
            redirect_url: format!("{base_url}{OIDC_CALLBACK_PATH}"),
            ..settings
        });
        let conversations = ConversationSettings {
            plain_titles: !model_titles,
            ..conversations
        };
        let fake = FakeProvider::start(fake)
            .await
            .expect("fake provider starts");
        let dir = private_dir();
        let mut config = Config {
            database: if let Some(database) = database {
                database
            } else if postgres || (on_postgres() && !sqlite) {
                crate::postgres::fresh_database().await
            } else {
                Database::Sqlite(dir.path().join("rill.db"))
            },
            unsafe_file_modes: false,
            owner: "local".into(),
            access,
            limits: limits.unwrap_or_else(generous_limits),
            connections: connections.unwrap_or_default(),
            // The same fake in three protocols; `fake` lists its models itself (GET /models).
            providers: vec![
                ProviderConfig {
                    id: "fake".into(),
                    kind: ProviderKind::OpenaiCompatible,
                    base_url: fake.base_url(),
                    api_key_env: None,
                    api_key: Some("test-key".into()),
                    models: Vec::new(),
                },
                ProviderConfig {
                    id: "claude".into(),
                    kind: ProviderKind::Anthropic,
                    base_url: fake.base_url(),
                    api_key_env: None,
                    api_key: Some("ant-key".into()),
                    models: vec!["claude-fake".into()],
                },
                ProviderConfig {
                    id: "gemini".into(),
                    kind: ProviderKind::Gemini,
                    base_url: fake.gemini_base_url(),
                    api_key_env: None,
                    api_key: Some("goog-key".into()),
                    models: vec!["gemini-fake".into()],
                },
            ],
            default_model: None,
            dev_word_delay: Duration::ZERO,
            local_model: None,
            price_overrides: [
                ("fake/fake-model".to_owned(), FAKE_PRICE.into()),
                (
                    "claude/claude-fake".to_owned(),
                    PriceEntry {
                        thinking_tokens,
                        ..CLAUDE_PRICE.into()
                    },
                ),
                (
                    "gemini/gemini-fake".to_owned(),
                    PriceEntry {
                        thinking_tokens,
                        ..FAKE_PRICE.into()
                    },
                ),
            ]
            .into_iter()
            .chain(prices)
            .collect(),
            turns: turns.unwrap_or_else(test_turns),
            conversations,
            ops,
            oidc,
        };
        let local_model = if local {
            if !fake_beside_local {
                config.providers.clear();
            }
            let settings = LocalModelSettings {
                path: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_LOCAL_MODEL),
                threads: 1,
                // Short replies keep the tests quick on a busy 2-core machine.
                max_output_tokens: 64,
                context_tokens: local_context.unwrap_or(8192),
                queue: local_queue.unwrap_or(8),
                queue_wait: Duration::from_secs(120),
            };
            let model =
                tokio::task::spawn_blocking(move || LocalModelStatus::load(Some(&settings)))
                    .await
                    .expect("load task");
            assert!(
                matches!(model, LocalModelStatus::Ready(_)),
                "the local model must load (run scripts/fetch-model.sh)"
            );
            model
        } else {
            LocalModelStatus::Disabled
        };
        let database = db::connect(&config.database).await.expect("database opens");
        let prices = PriceTable::shipped_with(&config.price_overrides).expect("prices");
        let mut models = ModelCatalog::build(&config, local_model, &prices).await;
        for model in extra_models {
            models.insert(model);
        }
        let clock: SharedClock = match clock {
            Some(clock) => clock,
            None => rill::server::clock::system(),
        };
        let state =
            AppState::with_clock(database, config, models, prices, clock).expect("the state");
        rill::server::turns::join(&state.db, &state.prices)
            .await
            .expect("a lease");
        let options = leptos::config::LeptosOptions::builder()
            .output_name("rill")
            .build();
        let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(http::serve_until(
            listener,
            state.clone(),
            options,
            async move {
                let _ = signal.await;
            },
        ));
        Self {
            base_url,
            fake,
            http: reqwest::Client::builder()
                .timeout(REQUEST_BOUND)
                .build()
                .expect("client"),
            state,
            shutdown: Some(shutdown),
            server: Some(server),
            _dir: dir,
        }
    }

    /// Leaves every reply as a kill mid-reply would (`streaming`, with `content` as the last
    /// checkpoint, written by a process that is gone), then runs the start-up recovery; returns
    /// how many replies it marked.
    pub async fn crash_mid_reply(&self, content: &str) -> u64 {
        sql(
            "UPDATE messages SET status = 'streaming', content = $1, replica = NULL
             WHERE role = 'assistant'",
        )
        .bind(content)
        .execute(&self.state.db)
        .await;
        let interrupted = rill::server::turns::join(&self.state.db, &self.state.prices)
            .await
            .expect("recover");
        u64::try_from(interrupted).expect("a count")
    }

    /// Signals shutdown, as SIGTERM does; returns the server task to await.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server.take().expect("the server runs")
    }

    /// Opens a conversation's stream, as a page showing it does (having seen up to `from_turn`).
    pub async fn watch(&self, conversation: Uuid, from_turn: Option<Uuid>) -> EventReader {
        let response = self
            .post_json(
                "conversation_events",
                json!({"conversation_id": conversation, "from_turn": from_turn}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let mut reader = EventReader::new(response);
        // Every conversation stream opens with the title as it is.
        match reader.next_line().await {
            Some(StreamLine::Title { .. }) => {}
            other => panic!("expected the title first, got {other:?}"),
        }
        reader
    }

    pub async fn post_json(&self, endpoint: &str, body: Value) -> reqwest::Response {
        post_api(&self.http, &self.base_url, endpoint, body).await
    }

    pub async fn send(
        &self,
        turn_id: Uuid,
        conversation_id: Option<Uuid>,
        text: &str,
    ) -> reqwest::Response {
        self.send_to(turn_id, conversation_id, text, None).await
    }

    /// Sends with a model picked (`provider/model`), as the picker does.
    pub async fn send_to(
        &self,
        turn_id: Uuid,
        conversation_id: Option<Uuid>,
        text: &str,
        model: Option<&str>,
    ) -> reqwest::Response {
        let response = self
            .post_json(
                "send_message",
                json!({"turn_id": turn_id, "conversation_id": conversation_id, "text": text, "model": model}),
            )
            .await;
        assert_eq!(response.status(), 200, "send_message failed");
        response
    }

    /// Sends a message and reads the whole turn.
    pub async fn turn(&self, conversation_id: Option<Uuid>, text: &str) -> Vec<TurnEnvelope> {
        EventReader::new(self.send(Uuid::new_v4(), conversation_id, text).await)
            .read_to_end()
            .await
    }

    /// A whole turn on the given model.
    pub async fn turn_on(
        &self,
        model: &str,
        conversation_id: Option<Uuid>,
        text: &str,
    ) -> Vec<TurnEnvelope> {
        EventReader::new(
            self.send_to(Uuid::new_v4(), conversation_id, text, Some(model))
                .await,
        )
        .read_to_end()
        .await
    }

    /// Asks to continue a reply, as the page does having seen its run `from_run`.
    pub async fn continue_reply(&self, turn_id: impl ToString, from_run: u32) -> reqwest::Response {
        self.post_json(
            "continue_reply",
            json!({"turn_id": turn_id.to_string(), "from_run": from_run}),
        )
        .await
    }

    /// An app whose ended turns leave memory after 50 ms (readers then get the database's copy).
    pub async fn forgetting(fake: FakeConfig) -> Self {
        Self::with(Setup {
            fake,
            turns: Some(TurnSettings {
                keep_finished: Duration::from_millis(50),
                ..test_turns()
            }),
            ..Setup::default()
        })
        .await
    }

    pub async fn stop(&self, turn_id: Uuid) -> reqwest::Response {
        self.post_json("stop_turn", json!({"turn_id": turn_id}))
            .await
    }

    /// Creates an account as `rill user add` does; its password is `{name}-password`. Returns
    /// the user's id.
    pub async fn add_user(&self, name: &str, admin: bool) -> String {
        rill::server::accounts::add_user_from_cli(
            &self.state.db,
            name,
            &format!("{name}-password"),
            admin,
        )
        .await
        .expect("user created")
        .id
    }

    /// A browser of its own (its own cookies), not signed in.
    pub fn visitor(&self) -> Person {
        Person {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(REQUEST_BOUND)
                .build()
                .expect("client"),
            base_url: self.base_url.clone(),
        }
    }

    /// A browser signed in as `name` (see [`TestApp::add_user`]).
    pub async fn signed_in(&self, name: &str) -> Person {
        let person = self.visitor();
        let response = person
            .post(
                "sign_in",
                json!({"username": name, "password": format!("{name}-password")}),
            )
            .await;
        assert_eq!(response.status(), 200, "{name} signs in");
        person
    }

    /// Rows in `table`, on either engine.
    pub async fn count(&self, table: &str) -> i64 {
        sql(format!("SELECT COUNT(*) FROM {table}"))
            .scalar(&self.state.db)
            .await
    }

    /// Keeps the server's writes waiting until [`HeldWrites::release`]: on SQLite by holding its
    /// one writer connection; on Postgres by a transaction holding the tables a turn writes
    /// first in EXCLUSIVE mode (reads go on; the batch writer's transaction waits at its first
    /// insert, and the writes after it queue for the batch writer, as on SQLite).
    pub async fn hold_writes(&self) -> HeldWrites {
        match self.state.db.pools() {
            db::Pools::Sqlite { writer, .. } => {
                HeldWrites::Sqlite(writer.acquire().await.expect("the writer connection"))
            }
            // NOWAIT, tried again until both are free: a LOCK that waited could close a cycle
            // with a server transaction holding one table and wanting the other (Postgres
            // would then end one of the two as a deadlock).
            db::Pools::Postgres(pool) => {
                let deadline = tokio::time::Instant::now() + WAIT;
                loop {
                    let mut tx = pool.begin().await.expect("a transaction");
                    let locked =
                        sqlx::query("LOCK TABLE conversations, messages IN EXCLUSIVE MODE NOWAIT")
                            .execute(&mut *tx)
                            .await;
                    match locked {
                        Ok(_) => break HeldWrites::Postgres(tx),
                        Err(e) => {
                            tx.rollback().await.expect("rolled back");
                            assert!(
                                tokio::time::Instant::now() < deadline,
                                "the tables stayed busy: {e}"
                            );
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }
        }
    }

    /// The single-user owner's conversation as `get_conversation` stores it (the newest window).
    pub async fn stored(&self, conversation: Uuid) -> rill::model::ConversationView {
        db::get_conversation(
            &self.state.db,
            &db::Owner("local".into()),
            conversation,
            None,
        )
        .await
        .expect("query")
        .expect("conversation")
    }
}

/// The server's writes held back (see [`TestApp::hold_writes`]).
pub enum HeldWrites {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl HeldWrites {
    /// Lets the writes go (on Postgres, the lock ends with its transaction, at once).
    pub async fn release(self) {
        match self {
            Self::Sqlite(connection) => drop(connection),
            Self::Postgres(tx) => tx.rollback().await.expect("the lock released"),
        }
    }
}

type Lines = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<StreamLine, ndjson::LineError<reqwest::Error>>> + Send>,
>;

/// Reads NDJSON stream lines off a streaming response, however the bytes are chunked (with the
/// reader the page uses).
pub struct EventReader {
    lines: Lines,
}

impl EventReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            lines: Box::pin(ndjson::lines(response.bytes_stream())),
        }
    }

    /// The next line, heartbeats included; `None` when the stream ends.
    pub async fn next_line(&mut self) -> Option<StreamLine> {
        self.next_line_within(WAIT).await
    }

    pub async fn next_line_within(&mut self, bound: Duration) -> Option<StreamLine> {
        let line = tokio::time::timeout(bound, self.lines.next())
            .await
            .expect("next line within the bound")?;
        match line {
            Ok(line) => Some(line),
            // A broken connection ends the stream, as it does for the page.
            Err(ndjson::LineError::Read(_)) => None,
            Err(ndjson::LineError::Malformed(e)) => panic!("invalid NDJSON line: {e}"),
        }
    }

    /// Reads up to the turn's `Started` event; returns its conversation.
    pub async fn started(&mut self) -> Uuid {
        match self.next().await.map(|e| e.event) {
            Some(TurnEvent::Started {
                conversation_id, ..
            }) => conversation_id,
            other => panic!("expected Started, got {other:?}"),
        }
    }

    /// The next turn event, skipping heartbeats and announcements.
    pub async fn next(&mut self) -> Option<TurnEnvelope> {
        loop {
            if let StreamLine::Event(event) = self.next_line().await? {
                return Some(event);
            }
        }
    }

    pub async fn read_to_end(mut self) -> Vec<TurnEnvelope> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

/// The reply's text the events carry (`Delta`s joined).
pub fn text_of(events: &[TurnEnvelope]) -> String {
    joined(events, |event| match event {
        TurnEvent::Delta { text } => Some(text),
        _ => None,
    })
}

/// The reply's thinking the events carry (`Thinking`s joined).
pub fn thinking_of(events: &[TurnEnvelope]) -> String {
    joined(events, |event| match event {
        TurnEvent::Thinking { text } => Some(text),
        _ => None,
    })
}

fn joined(events: &[TurnEnvelope], piece: impl Fn(&TurnEvent) -> Option<&String>) -> String {
    events
        .iter()
        .filter_map(|e| piece(&e.event).map(String::as_str))
        .collect()
}

pub fn conversation_of(events: &[TurnEnvelope]) -> Uuid {
    match events.first().map(|e| &e.event) {
        Some(TurnEvent::Started {
            conversation_id, ..
        }) => *conversation_id,
        other => panic!("first event is not Started: {other:?}"),
    }
}

/// How the turn ended: its last event, which must be `Finished`.
pub fn finished(events: &[TurnEnvelope]) -> &Outcome {
    match &events.last().expect("at least one event").event {
        TurnEvent::Finished(outcome) => outcome,
        last => panic!("last event is not Finished: {last:?}"),
    }
}

/// Polls `check` every 10 ms until it holds, failing the test after `WAIT`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The stored assistant reply of the conversation's last turn: (status, content), on either
/// engine.
pub async fn last_reply(app: &TestApp, conversation_id: Uuid) -> (String, String) {
    sql(
        "SELECT status, content FROM messages WHERE conversation_id = $1
           AND role = 'assistant' ORDER BY position DESC LIMIT 1",
    )
    .bind(conversation_id)
    .fetch_one(&app.state.db)
    .await
}

/// One browser: its own cookie jar, redirects not followed.
pub struct Person {
    pub http: reqwest::Client,
    pub base_url: String,
}

impl Person {
    pub async fn post(&self, endpoint: &str, body: Value) -> reqwest::Response {
        post_api(&self.http, &self.base_url, endpoint, body).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .expect("request reaches the app")
    }

    pub async fn send(
        &self,
        turn_id: Uuid,
        conversation_id: Option<Uuid>,
        text: &str,
    ) -> reqwest::Response {
        self.post(
            "send_message",
            json!({"turn_id": turn_id, "conversation_id": conversation_id, "text": text, "model": null}),
        )
        .await
    }

    /// A server function's status and its answer (JSON, or the text if it is not JSON).
    pub async fn call(&self, endpoint: &str, body: Value) -> (u16, Value) {
        let response = self.post(endpoint, body).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Sends a message and reads the whole turn; panics unless the send is accepted.
    pub async fn turn(&self, conversation_id: Option<Uuid>, text: &str) -> Vec<TurnEnvelope> {
        let response = self.send(Uuid::new_v4(), conversation_id, text).await;
        assert_eq!(response.status(), 200, "send_message");
        EventReader::new(response).read_to_end().await
    }
}

/// A server function called as the page calls it: `POST /api/{endpoint}` with a JSON body.
async fn post_api(
    http: &reqwest::Client,
    base_url: &str,
    endpoint: &str,
    body: Value,
) -> reqwest::Response {
    http.post(format!("{base_url}/api/{endpoint}"))
        .json(&body)
        .send()
        .await
        .expect("request reaches the app")
}
