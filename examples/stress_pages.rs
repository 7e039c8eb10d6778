//! Pages cut off mid-render (a reload, a closed tab, a navigation) must not panic the server. Run:
//!
//! ```sh
//! cargo run --release --features ssr --example stress_pages
//! ```
//!
//! Starts the real server on 127.0.0.1 (the development model, a temporary SQLite file), makes two
//! conversations, then loads `/` and a conversation's page 80 at a time, each cut off after 5 to
//! 300 ms, for 10 rounds; counts the panics of reactive reads ("already been disposed") through a
//! panic hook, and checks that a whole page still renders. Bounded: 800 cut-off pages.
//!
//! Why: Leptos 0.8 checks each Suspense once more as a page ends, on other threads, while the
//! request's reactive arena is being written or torn down; a read that meets that panics, and a
//! panic inside the runtime leaves the worker thread's current owner behind (ARCHITECTURE.md,
//! "the page never panics").

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rill::server::catalog::LocalModelStatus;

static DISPOSED_READS: AtomicUsize = AtomicUsize::new(0);
const ROUNDS: u64 = 10;
const AT_ONCE: u64 = 80;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.to_string().contains("already been disposed") {
            DISPOSED_READS.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
    let dir = tempfile::tempdir()?;
    let (send_url, _pool) = support::start_server(
        support::bench_config(dir.path()),
        LocalModelStatus::Disabled,
    )
    .await?;
    let base = send_url.trim_end_matches("/api/send_message").to_owned();
    let client = reqwest::Client::new();
    support::send_turn(&client, &send_url, None, "A page to cut off", |_| {}).await?;
    support::send_turn(
        &client,
        &send_url,
        None,
        "Another one in the sidebar",
        |_| {},
    )
    .await?;
    let list: serde_json::Value = client
        .post(format!("{base}/api/list_conversations"))
        .json(&serde_json::json!({}))
        .send()
        .await?
        .json()
        .await?;
    let conversation = list[0]["id"].as_str().ok_or("no conversation")?.to_owned();
    let pages = [format!("{base}/"), format!("{base}/c/{conversation}")];

    for round in 0..ROUNDS {
        let cuts = (0..AT_ONCE).map(|i| {
            let url = pages[usize::from(i % 2 == 1)].clone();
            let client = client.clone();
            async move {
                let cut = Duration::from_millis(5 + (round * AT_ONCE + i) * 37 % 295);
                let _ = client.get(url).timeout(cut).send().await;
            }
        });
        futures::future::join_all(cuts).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let whole = client.get(&pages[1]).send().await?;
    let status = whole.status();
    let rendered = whole.text().await?.contains("Another one in the sidebar");
    let panics = DISPOSED_READS.load(Ordering::SeqCst);
    println!(
        "cut-off pages: {}, panics in reactive reads: {panics}; a whole page afterwards: HTTP {status}, rendered: {rendered}",
        ROUNDS * AT_ONCE
    );
    Ok(())
}
