//! Replicas on one Postgres (issue 28), measured against one replica: how long Stop takes to
//! close the provider's connection when asked through the replica running the turn and through
//! another one; how far behind the sender a second reader of the same reply is, on the same
//! replica and on another; and what a turn costs on Postgres against SQLite.
//!
//! `scripts/bench-replicas.sh` starts a throwaway Postgres and runs this (release build):
//!   RILL_BENCH_POSTGRES=postgres://… cargo run --release --features ssr --example bench_replicas

mod support;

use std::time::{Duration, Instant};

use fake_provider::{FakeConfig, FakeProvider};
use futures::StreamExt;
use rill::model::{ndjson, StreamLine, TurnEvent};
use rill::server::catalog::LocalModelStatus;
use rill::server::config::Database;
use rill::server::{db, http, AppState};
use serde_json::json;
use uuid::Uuid;

type Error = Box<dyn std::error::Error>;

/// A replica: the real router on a free loopback port, on `database`.
async fn replica(
    database: Database,
    fake: &FakeProvider,
    dir: &std::path::Path,
) -> Result<String, Error> {
    let mut config = support::bench_config(dir);
    config.database = database;
    config.providers = vec![support::fake_provider(fake.base_url(), &["fake-model"])];
    let db = db::connect(&config.database).await?;
    let state = AppState::new(db, config, LocalModelStatus::Disabled).await?;
    rill::server::turns::join(&state.db, &state.prices).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let options = leptos::config::LeptosOptions::builder()
        .output_name("rill")
        .build();
    tokio::spawn(http::serve(listener, state, options));
    Ok(base)
}

/// A reader of one turn's lines: (when, how much text it had) at each delta, until `Finished`.
async fn read_text(response: reqwest::Response) -> Vec<(Instant, usize)> {
    let mut seen = Vec::new();
    let mut length = 0;
    let mut lines = std::pin::pin!(ndjson::lines(response.bytes_stream()));
    while let Some(Ok(line)) = lines.next().await {
        let StreamLine::Event(event) = line else {
            continue;
        };
        match event.event {
            TurnEvent::Started { .. } => length = 0,
            TurnEvent::Delta { text } => {
                length += text.len();
                seen.push((Instant::now(), length));
            }
            TurnEvent::Finished(_) => break,
            _ => {}
        }
    }
    seen
}

/// For each point the sender saw, how much later `reader` had as much text (ms).
fn lags(sender: &[(Instant, usize)], reader: &[(Instant, usize)]) -> Vec<f64> {
    sender
        .iter()
        .filter_map(|(at, length)| {
            let caught_up = reader.iter().find(|(_, l)| l >= length)?;
            Some(caught_up.0.saturating_duration_since(*at).as_secs_f64() * 1e3)
        })
        .collect()
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() - 1) as f64 * p).round() as usize;
    values[rank.min(values.len() - 1)]
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
    body: serde_json::Value,
) -> Result<reqwest::Response, Error> {
    Ok(http
        .post(format!("{base}/api/{endpoint}"))
        .json(&body)
        .send()
        .await?)
}

/// Milliseconds from asking `stopper` to stop a turn running on `owner` until the provider saw
/// its connection close, `samples` times.
async fn stops(
    http: &reqwest::Client,
    fake: &FakeProvider,
    owner: &str,
    stopper: &str,
    samples: usize,
) -> Result<Vec<f64>, Error> {
    let mut times = Vec::new();
    for _ in 0..samples {
        fake.reset_log();
        let turn_id = Uuid::new_v4();
        let sent = post(
            http,
            owner,
            "send_message",
            json!({"turn_id": turn_id, "conversation_id": null, "text": "Long"}),
        )
        .await?;
        let mut lines = std::pin::pin!(ndjson::lines(sent.bytes_stream()));
        // Once text flows, the provider's connection is open.
        while let Some(Ok(line)) = lines.next().await {
            if matches!(line, StreamLine::Event(ref e) if matches!(e.event, TurnEvent::Delta { .. }))
            {
                break;
            }
        }
        let asked = Instant::now();
        let stop = post(http, stopper, "stop_turn", json!({"turn_id": turn_id})).await?;
        if !stop.status().is_success() {
            return Err(format!("stop: HTTP {}", stop.status()).into());
        }
        let closed = fake
            .wait_for_disconnect(Duration::from_secs(10))
            .await
            .and_then(|d| d.at)
            .ok_or("the provider never saw the connection close")?;
        times.push(closed.saturating_duration_since(asked).as_secs_f64() * 1e3);
        while lines.next().await.is_some() {}
    }
    Ok(times)
}

/// Turns one after another (`n`), then `n` at once: (ms per turn in a row, ms for the burst).
async fn turn_cost(http: &reqwest::Client, base: &str, n: usize) -> Result<(f64, f64), Error> {
    let url = format!("{base}/api/send_message");
    let started = Instant::now();
    for _ in 0..n {
        support::send_turn(http, &url, None, "Hi", |_| {}).await?;
    }
    let in_a_row = started.elapsed().as_secs_f64() * 1e3 / n as f64;
    let started = Instant::now();
    let all = futures::future::join_all(
        (0..n).map(|_| support::send_turn(http, &url, None, "Hi", |_| {})),
    )
    .await;
    if let Some(Err(e)) = all.into_iter().find(Result::is_err) {
        return Err(e.into());
    }
    Ok((in_a_row, started.elapsed().as_secs_f64() * 1e3))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("RILL_BENCH_POSTGRES")
        .map_err(|_| "set RILL_BENCH_POSTGRES to an empty Postgres database's URL (scripts/bench-replicas.sh does)")?;
    let dir = tempfile::tempdir()?;
    let fake = FakeProvider::start(FakeConfig {
        tokens: 5_000,
        token_delay_ms: 5,
        ..FakeConfig::default()
    })
    .await?;
    let a = replica(Database::Postgres(url.clone()), &fake, dir.path()).await?;
    let b = replica(Database::Postgres(url), &fake, dir.path()).await?;
    let http = reqwest::Client::new();

    println!("Stop → provider connection closed (ms, 30 each)");
    for (name, stopper) in [
        ("through the replica running it", &a),
        ("through another replica", &b),
    ] {
        let mut times = stops(&http, &fake, &a, stopper, 30).await?;
        println!(
            "  {name:32} p50 {:6.1}  p99 {:6.1}",
            percentile(&mut times, 0.5),
            percentile(&mut times, 0.99)
        );
    }

    println!("A second reader's lag behind the sender (ms; 5 replies of 200 tokens, 20 ms apart)");
    fake.set_config(FakeConfig {
        tokens: 200,
        token_delay_ms: 20,
        ..FakeConfig::default()
    });
    let (mut same, mut other) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let turn_id = Uuid::new_v4();
        let sent = post(
            &http,
            &a,
            "send_message",
            json!({"turn_id": turn_id, "conversation_id": null, "text": "Story"}),
        )
        .await?;
        let reattach = json!({"turn_id": turn_id, "run": 1, "after_seq": 0});
        let on_a = post(&http, &a, "turn_events", reattach.clone()).await?;
        let on_b = post(&http, &b, "turn_events", reattach).await?;
        let (sender, on_a, on_b) =
            futures::join!(read_text(sent), read_text(on_a), read_text(on_b));
        same.extend(lags(&sender, &on_a));
        other.extend(lags(&sender, &on_b));
    }
    println!(
        "  {:32} p50 {:6.1}  p99 {:6.1}",
        "on the same replica",
        percentile(&mut same, 0.5),
        percentile(&mut same, 0.99)
    );
    println!(
        "  {:32} p50 {:6.1}  p99 {:6.1}",
        "on another replica",
        percentile(&mut other, 0.5),
        percentile(&mut other, 0.99)
    );

    println!("A turn's cost (3 tokens, no delay): ms per turn in a row (100), ms for 100 at once");
    fake.set_config(FakeConfig {
        tokens: 3,
        ..FakeConfig::default()
    });
    let sqlite_dir = tempfile::tempdir()?;
    let sqlite = replica(
        Database::Sqlite(sqlite_dir.path().join("rill.db")),
        &fake,
        sqlite_dir.path(),
    )
    .await?;
    for (name, base) in [("SQLite", &sqlite), ("Postgres", &a)] {
        let (in_a_row, burst) = turn_cost(&http, base, 100).await?;
        println!("  {name:9} {in_a_row:6.2} ms a turn in a row   {burst:7.0} ms for 100 at once");
    }
    Ok(())
}
