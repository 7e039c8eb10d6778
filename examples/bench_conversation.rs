//! One long conversation with the built-in model, through the whole server. Run in release:
//!
//! ```sh
//! cargo run --release --features ssr --example bench_conversation [TURNS [CONTEXT]]
//! ```
//!
//! Starts the real router on 127.0.0.1 with a temporary SQLite file and the local model (one
//! inference thread, replies of at most 48 tokens, by default the 8,192-token context; a smaller
//! one shows a conversation that outgrows its context), then asks
//! short questions in one conversation, each turn through `send_message` as the page does. Prints
//! the time to first token, the prompt tokens (and how many came from the cache) and the process's
//! resident memory per turn, then the figures the budget names. Bounded: 100 turns by default,
//! 120 s a turn.

mod support;

use std::time::{Duration, Instant};

use rill::model::{MessageStatus, TurnEvent};
use rill::server::catalog::LocalModelStatus;
use rill::server::config::{Config, LocalModelSettings, DEFAULT_LOCAL_MODEL};
use uuid::Uuid;

const TURN_LIMIT: Duration = Duration::from_secs(120);

struct Turn {
    conversation_id: Uuid,
    first_token: Duration,
    whole: Duration,
    input_tokens: u32,
    cached_tokens: u32,
    left_out: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let turns: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let context_tokens: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(8192);
    let settings = LocalModelSettings {
        path: DEFAULT_LOCAL_MODEL.into(),
        threads: 1,
        max_output_tokens: 48,
        context_tokens,
        queue: 8,
        queue_wait: Duration::from_secs(120),
    };
    let dir = tempfile::tempdir()?;
    let config = Config {
        local_model: Some(settings.clone()),
        ..support::bench_config(dir.path())
    };
    println!("resident memory before the model: {:.0} MB", rss_mb());
    let local =
        tokio::task::spawn_blocking(move || LocalModelStatus::load(Some(&settings))).await?;
    if !matches!(local, LocalModelStatus::Ready(_)) {
        return Err("the local model did not load (run scripts/fetch-model.sh)".into());
    }
    let (url, _) = support::start_server(config, local).await?;
    let client = reqwest::Client::new();
    println!("resident memory with the model loaded: {:.0} MB", rss_mb());

    let mut conversation = None;
    let mut first_ttft = None;
    let mut ttft_at_20 = None;
    let mut memory = Vec::new();
    for n in 1..=turns {
        let question = format!("Question {n}: name one interesting fact about the number {n}.");
        let turn =
            tokio::time::timeout(TURN_LIMIT, one_turn(&client, &url, conversation, &question))
                .await
                .map_err(|_| format!("turn {n} took longer than {TURN_LIMIT:?}"))??;
        conversation = Some(turn.conversation_id);
        let ttft = turn.first_token.as_secs_f64();
        let first = *first_ttft.get_or_insert(ttft);
        if n == 20 {
            ttft_at_20 = Some(ttft);
        }
        let rss = rss_mb();
        memory.push((n, rss));
        if n == 1 || n % 10 == 0 || n == 5 {
            println!(
                "turn {n:>3}: {:>5} prompt tokens ({:>5} from the cache, {:>2} messages left out), first token {:.2} s ({:.2}x turn 1), whole reply {:.2} s, resident {rss:.0} MB",
                turn.input_tokens,
                turn.cached_tokens,
                turn.left_out,
                ttft,
                ttft / first,
                turn.whole.as_secs_f64(),
            );
        }
    }
    if let (Some(first), Some(at_20)) = (first_ttft, ttft_at_20) {
        println!(
            "time to first token, turn 20 / turn 1: {:.2}x",
            at_20 / first
        );
    }
    let later: Vec<f64> = memory
        .iter()
        .filter(|(n, _)| *n >= 10)
        .map(|(_, m)| *m)
        .collect();
    if let (Some(low), Some(high)) = (
        later.iter().copied().reduce(f64::min),
        later.iter().copied().reduce(f64::max),
    ) {
        println!("resident memory from turn 10 on: {low:.0}-{high:.0} MB");
    }
    Ok(())
}

/// Sends one question and reads its turn to the end.
async fn one_turn(
    client: &reqwest::Client,
    url: &str,
    conversation_id: Option<Uuid>,
    text: &str,
) -> Result<Turn, String> {
    let started = Instant::now();
    let mut conversation = conversation_id;
    let mut first_token = None;
    let outcome = support::send_turn(client, url, conversation_id, text, |event| match event {
        TurnEvent::Started {
            conversation_id, ..
        } => conversation = Some(*conversation_id),
        TurnEvent::Delta { .. } => {
            first_token.get_or_insert_with(|| started.elapsed());
        }
        _ => {}
    })
    .await?;
    if outcome.status != MessageStatus::Complete {
        return Err(format!("{:?}: {:?}", outcome.status, outcome.error));
    }
    let usage = outcome.usage.unwrap_or_default();
    Ok(Turn {
        conversation_id: conversation.ok_or("no Started event")?,
        first_token: first_token.unwrap_or_else(|| started.elapsed()),
        whole: started.elapsed(),
        input_tokens: usage.input_tokens,
        cached_tokens: usage.cached_input_tokens,
        left_out: outcome.left_out,
    })
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}
