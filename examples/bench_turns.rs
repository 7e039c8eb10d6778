//! How many sends at once the turn engine takes with none failing. Run in release:
//!
//! ```sh
//! cargo run --release --features ssr --example bench_turns
//! ```
//!
//! Starts the real router on 127.0.0.1 with a temporary SQLite file and the fake provider
//! (OpenAI wire format, 24 tokens 5 ms apart), then for each level sends that many messages at
//! once, each starting a conversation, reads every turn to its end, and checks it was stored
//! complete. Prints one line per level and the highest level with no failure. Bounded: the levels
//! are fixed and each has a time limit.

mod support;

use std::time::{Duration, Instant};

use fake_provider::{FakeConfig, FakeProvider};
use rill::model::MessageStatus;
use rill::server::catalog::LocalModelStatus;
use rill::server::config::Config;

const LEVELS: [usize; 8] = [50, 100, 200, 400, 800, 1_600, 3_200, 4_800];
const LEVEL_LIMIT: Duration = Duration::from_secs(180);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeProvider::start(FakeConfig {
        tokens: 24,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let config = Config {
        providers: vec![support::fake_provider(fake.base_url(), &[])],
        ..support::bench_config(dir.path())
    };
    let (url, pool) = support::start_server(config, LocalModelStatus::Disabled).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2_000)
        .build()?;

    let mut best = 0;
    for n in LEVELS {
        let started = Instant::now();
        let sends = (0..n).map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move { one_turn(&client, &url, i).await }
        });
        let results = tokio::time::timeout(LEVEL_LIMIT, futures::future::join_all(sends)).await;
        let Ok(results) = results else {
            println!("{n:>5} at once: did not finish within {LEVEL_LIMIT:?}");
            break;
        };
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        let stored: (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM messages WHERE role = 'assistant' AND status = 'complete'",
        )
        .fetch_one(&pool)
        .await?;
        println!(
            "{n:>5} at once: {} failed, {:.2} s for all, {} replies stored complete in total{}",
            failed.len(),
            started.elapsed().as_secs_f64(),
            stored.0,
            failed
                .first()
                .map(|f| format!(" (first failure: {f})"))
                .unwrap_or_default()
        );
        if !failed.is_empty() {
            break;
        }
        best = n;
    }
    println!("highest concurrency with no failed send: {best}");
    Ok(())
}

/// Sends one message and reads its turn; `Err` says what went wrong.
async fn one_turn(client: &reqwest::Client, url: &str, i: usize) -> Result<(), String> {
    let outcome = support::send_turn(client, url, None, &format!("Hello {i}"), |_| {}).await?;
    match outcome.status {
        MessageStatus::Complete => Ok(()),
        status => Err(format!("{status:?}: {:?}", outcome.error)),
    }
}
