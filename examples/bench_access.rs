//! What accounts and protection cost a turn. Run in release:
//!
//! ```sh
//! cargo run --release --features ssr --example bench_access
//! ```
//!
//! Two servers from the same build, each on 127.0.0.1 with a temporary SQLite file and the fake
//! provider answering one token at once: single-user mode (the request checks and headers only),
//! and accounts mode with a signed-in person who has a monthly budget, so that every turn also
//! reads the session, the user, and the month's spending. Turns are sent one at a time, in
//! alternating blocks so that both servers see the same machine; prints the median and 95th
//! percentile time to the first token and to the end of the turn; then sends 300 at once to each
//! and counts failures. Bounded: a fixed number of turns, and a time limit on the burst.

mod support;

use std::time::{Duration, Instant};

use fake_provider::{FakeConfig, FakeProvider};
use rill::model::TurnEvent;
use rill::server::catalog::LocalModelStatus;
use rill::server::config::{AccessSettings, AuthMode, Config};
use rill::server::{accounts, db};

const BLOCKS: usize = 10;
const TURNS_PER_BLOCK: usize = 30;
const AT_ONCE: usize = 300;

fn config(dir: &std::path::Path, fake: &FakeProvider, mode: AuthMode) -> Config {
    Config {
        access: AccessSettings {
            mode,
            ..AccessSettings::default()
        },
        providers: vec![support::fake_provider(fake.base_url(), &["fake-model"])],
        // Priced, so that the budget check has a cost to weigh.
        price_overrides: toml::from_str("[\"fake/fake-model\"]\ninput = 1.0\noutput = 2.0\n")
            .expect("prices"),
        ..support::bench_config(dir)
    }
}

struct Server {
    name: &'static str,
    url: String,
    client: reqwest::Client,
    first_token: Vec<Duration>,
    whole: Vec<Duration>,
}

impl Server {
    async fn turn(&mut self) -> Result<(), String> {
        let sent = Instant::now();
        let mut first = None;
        let outcome = support::send_turn(&self.client, &self.url, None, "Hello", |event| {
            if first.is_none() && matches!(event, TurnEvent::Delta { .. }) {
                first = Some(sent.elapsed());
            }
        })
        .await?;
        if outcome.status != rill::model::MessageStatus::Complete {
            return Err(format!("turn ended {:?}", outcome.status));
        }
        self.whole.push(sent.elapsed());
        self.first_token.push(first.ok_or("no token")?);
        Ok(())
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeProvider::start(FakeConfig {
        tokens: 1,
        token_delay_ms: 0,
        ..FakeConfig::default()
    })
    .await?;
    let single_dir = tempfile::tempdir()?;
    let accounts_dir = tempfile::tempdir()?;

    let (url, _) = support::start_server(
        config(single_dir.path(), &fake, AuthMode::SingleUser),
        LocalModelStatus::Disabled,
    )
    .await?;
    let single = Server {
        name: "single-user",
        url,
        client: reqwest::Client::builder().tcp_nodelay(true).build()?,
        first_token: Vec::new(),
        whole: Vec::new(),
    };

    let accounts_config = config(accounts_dir.path(), &fake, AuthMode::Accounts);
    let database = db::connect(&accounts_config.database).await?;
    let user = accounts::add_user_from_cli(&database, "bench", "bench-password", false).await?;
    db::accounts::set_budget(&database, &user.id, Some(1_000.0)).await?;
    let (url, _) = support::start_server(accounts_config, LocalModelStatus::Disabled).await?;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .tcp_nodelay(true)
        .build()?;
    let signed_in = client
        .post(url.replace("send_message", "sign_in"))
        .json(&serde_json::json!({"username": "bench", "password": "bench-password"}))
        .send()
        .await?;
    if !signed_in.status().is_success() {
        return Err(format!("sign-in: HTTP {}", signed_in.status()).into());
    }
    let signed = Server {
        name: "accounts, signed in, budget",
        url,
        client,
        first_token: Vec::new(),
        whole: Vec::new(),
    };

    let mut servers = [single, signed];
    // Warm up both (connections, statement caches).
    for server in &mut servers {
        for _ in 0..10 {
            server.turn().await?;
        }
        server.first_token.clear();
        server.whole.clear();
    }
    for _ in 0..BLOCKS {
        for server in &mut servers {
            for _ in 0..TURNS_PER_BLOCK {
                server.turn().await?;
            }
        }
    }
    for server in &mut servers {
        println!(
            "{:<28} {} turns: first token median {:.2} ms, p95 {:.2} ms; whole turn median {:.2} ms, p95 {:.2} ms",
            server.name,
            server.whole.len(),
            percentile(&mut server.first_token, 0.5),
            percentile(&mut server.first_token, 0.95),
            percentile(&mut server.whole, 0.5),
            percentile(&mut server.whole, 0.95),
        );
    }
    // Many at once: every send of the accounts server reads its session and budget while the
    // others write.
    for server in &servers {
        let started = Instant::now();
        let sends = (0..AT_ONCE)
            .map(|_| support::send_turn(&server.client, &server.url, None, "Hello", |_| {}));
        let results =
            tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(sends))
                .await
                .map_err(|_| {
                    format!(
                        "{}: {AT_ONCE} at once did not end within 120 s",
                        server.name
                    )
                })?;
        let failed = results
            .iter()
            .filter(|r| !matches!(r, Ok(o) if o.status == rill::model::MessageStatus::Complete))
            .count();
        println!(
            "{:<28} {AT_ONCE} at once: {failed} failed, {:.2} s for all",
            server.name,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
