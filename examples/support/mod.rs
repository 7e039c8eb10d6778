//! What the app's benchmarks share: the real server on 127.0.0.1, and one turn through
//! `send_message`, as the page sends it.

use futures::StreamExt;
use rill::model::{ndjson, Outcome, StreamLine, TurnEvent};
use std::path::Path;
use std::time::Duration;

use rill::server::catalog::LocalModelStatus;
use rill::server::config::{
    Config, ConnectionSettings, LimitSettings, ProviderConfig, ProviderKind, TurnSettings,
};
use rill::server::{db, http, AppState};
use sqlx::SqlitePool;
use uuid::Uuid;

/// A benchmark server's settings: its database in `dir`, no provider, no local model, shipped
/// turn bounds, and no per-person limits (one owner sends everything here: the limits would be
/// what is measured). Each benchmark adds what it needs.
pub fn bench_config(dir: &Path) -> Config {
    Config {
        database: rill::server::config::Database::Sqlite(dir.join("rill.db")),
        unsafe_file_modes: false,
        owner: "bench".into(),
        access: Default::default(),
        limits: LimitSettings {
            running_per_user: usize::MAX,
            turns_per_minute: u32::MAX,
            streams_per_user: usize::MAX,
            writes_per_minute: u32::MAX,
            ..LimitSettings::default()
        },
        connections: ConnectionSettings {
            max_connections: Some(usize::MAX),
            max_per_address: Some(usize::MAX),
            ..ConnectionSettings::default()
        },
        providers: Vec::new(),
        default_model: None,
        dev_word_delay: Duration::ZERO,
        price_overrides: Default::default(),
        local_model: None,
        turns: TurnSettings::default(),
        conversations: Default::default(),
        ops: Default::default(),
        oidc: None,
    }
}

/// The fake provider as the OpenAI-compatible provider `fake`.
#[allow(
    dead_code,
    reason = "each benchmark compiles this module; bench_conversation has no fake"
)]
pub fn fake_provider(base_url: String, models: &[&str]) -> ProviderConfig {
    ProviderConfig {
        id: "fake".into(),
        kind: ProviderKind::OpenaiCompatible,
        base_url,
        api_key_env: None,
        api_key: None,
        models: models.iter().map(|m| m.to_string()).collect(),
    }
}

/// Starts the real router with `config` on a free loopback port; returns the URL of
/// `send_message` and a reader of the database.
#[allow(
    dead_code,
    reason = "bench_replicas starts replicas of its own, on Postgres, with a lease each"
)]
pub async fn start_server(
    config: Config,
    local: LocalModelStatus,
) -> Result<(String, SqlitePool), Box<dyn std::error::Error>> {
    let database = db::connect(&config.database).await?;
    let pool = database.reader()?.clone();
    let state = AppState::new(database, config, local).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/send_message", listener.local_addr()?);
    let options = leptos::config::LeptosOptions::builder()
        .output_name("rill")
        .build();
    tokio::spawn(http::serve(listener, state, options));
    Ok((url, pool))
}

/// Sends `text` (into `conversation_id`, or a new conversation) and reads the turn to its end,
/// calling `on_event` for each event; returns the outcome of `Finished`. `Err` says what went wrong.
pub async fn send_turn(
    client: &reqwest::Client,
    url: &str,
    conversation_id: Option<Uuid>,
    text: &str,
    mut on_event: impl FnMut(&TurnEvent),
) -> Result<Outcome, String> {
    let body = serde_json::json!({"turn_id": Uuid::new_v4(), "conversation_id": conversation_id, "text": text});
    let response = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let mut lines = std::pin::pin!(ndjson::lines(response.bytes_stream()));
    while let Some(line) = lines.next().await {
        if let StreamLine::Event(event) = line.map_err(|e| format!("read: {e}"))? {
            on_event(&event.event);
            if let TurnEvent::Finished(outcome) = event.event {
                return Ok(outcome);
            }
        }
    }
    Err("the stream ended before the turn did".into())
}
