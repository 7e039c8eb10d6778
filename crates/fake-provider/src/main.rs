//! Runs the fake provider for browser tests and benchmarks:
//! `fake-provider --port 4010 --tokens 300 --delay-ms 30`. Serves on 127.0.0.1 only.

use std::net::SocketAddr;

use fake_provider::{FakeConfig, FakeProvider};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = FakeConfig::default();
    let mut port = 4010u16;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse()?,
            "--tokens" => config.tokens = value.parse()?,
            "--delay-ms" => config.token_delay_ms = value.parse()?,
            "--first-token-delay-ms" => config.first_token_delay_ms = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let fake = FakeProvider::start_on(SocketAddr::from(([127, 0, 0, 1], port)), config).await?;
    println!("fake provider listening on {}", fake.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
