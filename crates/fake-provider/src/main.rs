//! Runs the fake provider for browser tests and benchmarks:
//! `fake-provider --port 4010 --tokens 300 --delay-ms 30`. Serves on 127.0.0.1 only. With
//! `--oidc-port 4011` it also runs the fake identity provider there (client `rill`, secret
//! `e2e-secret`; whoever signs in is `ada@example.com`).

use std::net::SocketAddr;

use fake_provider::oidc::{FakeIdp, IdpUser};
use fake_provider::{FakeConfig, FakeProvider};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = FakeConfig::default();
    let mut port = 4010u16;
    let mut oidc_port = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse()?,
            "--oidc-port" => oidc_port = Some(value.parse::<u16>()?),
            "--tokens" => config.tokens = value.parse()?,
            "--delay-ms" => config.token_delay_ms = value.parse()?,
            "--first-token-delay-ms" => config.first_token_delay_ms = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let fake = FakeProvider::start_on(SocketAddr::from(([127, 0, 0, 1], port)), config).await?;
    println!("fake provider listening on {}", fake.base_url());
    let _idp = match oidc_port {
        Some(port) => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let idp = FakeIdp::start_on(
                addr,
                "rill",
                "e2e-secret",
                IdpUser::with_email("ada@example.com"),
            )
            .await?;
            println!("fake identity provider at {}", idp.issuer());
            Some(idp)
        }
        None => None,
    };
    tokio::signal::ctrl_c().await?;
    Ok(())
}
