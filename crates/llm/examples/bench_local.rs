//! Benchmark of the local model on one session: decode speed, prefill speed of fresh long prompts,
//! and one conversation of short questions, turn by turn (time to first token, tokens reused from
//! the cache, memory); then whether a second concurrent request slows the first.
//!
//!     cargo run --release -p llm --features local --example bench_local [MODEL.gguf]
//!
//! Threads come from RILL_LOCAL_THREADS (Rill's default is 1). Bounded: a few runs and 20 turns.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use llm::local::{
    LocalModel, LocalModelConfig, LocalProvider, QueueConfig, SamplingConfig, Session,
    SessionConfig,
};
use llm::{ChatMessage, ChatRequest, Provider, ProviderEvent, Role};

const DECODE_TOKENS: u32 = 128;
const RUNS: usize = 3;
const TURNS: usize = 20;

fn request(system: &str, text: &str, max: u32) -> ChatRequest {
    ChatRequest {
        model: "local".into(),
        system: Some(system.into()),
        messages: vec![ChatMessage::text(Role::User, text)],
        max_output_tokens: Some(max),
        thinking_budget: None,
        requester: None,
    }
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

struct Timing {
    prompt_tokens: u32,
    reused_tokens: u32,
    output_tokens: u32,
    first_token: Duration,
    total: Duration,
    text: String,
}

impl Timing {
    fn decode_rate(&self) -> f64 {
        f64::from(self.output_tokens.saturating_sub(1))
            / (self.total - self.first_token).as_secs_f64()
    }
}

fn timed(session: &mut Session<'_>, request: &ChatRequest, sampling: &SamplingConfig) -> Timing {
    let start = Instant::now();
    let mut first = None;
    let mut usage = None;
    let mut text = String::new();
    session
        .generate(
            request,
            512,
            sampling,
            &mut |event| {
                match event {
                    ProviderEvent::TextDelta(delta) => {
                        first.get_or_insert_with(|| start.elapsed());
                        text.push_str(&delta);
                    }
                    ProviderEvent::Usage(u) => usage = Some(u),
                    _ => {}
                }
                true
            },
            &|| false,
        )
        .expect("generation");
    let usage = usage.expect("usage");
    Timing {
        prompt_tokens: usage.input_tokens,
        reused_tokens: usage.cached_input_tokens,
        output_tokens: usage.output_tokens,
        first_token: first.unwrap_or_default(),
        total: start.elapsed(),
        text,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    let threads: usize = std::env::var("RILL_LOCAL_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let session_config = SessionConfig {
        context_tokens: 8192,
        threads,
    };
    println!("model: {}, {threads} thread(s)", path.display());
    println!("rss before load: {:.0} MB", rss_mb());
    let started = Instant::now();
    let model = LocalModel::load(&path).expect("model loads");
    let mut session = model.session(&session_config).expect("session");
    println!(
        "load: {:.2} s, rss after load: {:.0} MB",
        started.elapsed().as_secs_f64(),
        rss_mb()
    );
    let sampling = SamplingConfig {
        seed: Some(7),
        ..SamplingConfig::default()
    };

    // Decode: a prompt that invites a long answer, capped so every run decodes about the same.
    let short = request(
        "You are brief.",
        "Explain in detail why the sky looks blue during the day and red at sunset, with two everyday examples and one simple experiment anyone can try at home.",
        DECODE_TOKENS,
    );
    let runs: Vec<Timing> = (0..RUNS)
        .map(|_| timed(&mut session, &short, &sampling))
        .collect();
    let decode = median(runs.iter().map(Timing::decode_rate).collect());
    let out = runs.iter().map(|t| t.output_tokens).max().unwrap_or(0);
    println!("decode: {decode:.1} tokens/s (median of {RUNS}, up to {out} tokens each)");

    // Prefill of a fresh long prompt: each run's text is new, so nothing is reused.
    for repeats in [20, 80] {
        let prefill: Vec<f64> = (0..RUNS)
            .map(|run| {
                let text = format!("Run {run}. ")
                    + &"The history of lighthouses spans many centuries and coasts. "
                        .repeat(repeats);
                let t = timed(
                    &mut session,
                    &request("You are brief.", &text, 1),
                    &sampling,
                );
                // Only the system prompt's turn is shared with earlier runs.
                f64::from(t.prompt_tokens - t.reused_tokens)
                    / t.first_token.max(t.total).as_secs_f64()
            })
            .collect();
        let tokens = model
            .prompt_tokens(&request(
                "You are brief.",
                &"The history of lighthouses spans many centuries and coasts. ".repeat(repeats),
                1,
            ))
            .len();
        println!(
            "prefill: {:.0} tokens/s (fresh {tokens}-token prompt, median of {RUNS})",
            median(prefill)
        );
    }

    // One conversation of short questions: each turn sends the whole history, as the server does.
    let mut conversation = request("You are brief.", "Hello! Who are you?", 48);
    let mut first_ttft = None;
    for turn in 1..=TURNS {
        let t = timed(&mut session, &conversation, &sampling);
        let ttft = t.first_token.as_secs_f64();
        let first = *first_ttft.get_or_insert(ttft);
        if turn == 1 || turn % 5 == 0 {
            println!(
                "turn {turn:>2}: {} prompt tokens, {} reused, time to first token {:.2} s ({:.2}x turn 1), whole reply {:.2} s, rss {:.0} MB",
                t.prompt_tokens,
                t.reused_tokens,
                ttft,
                ttft / first,
                t.total.as_secs_f64(),
                rss_mb()
            );
        }
        conversation
            .messages
            .push(ChatMessage::text(Role::Assistant, t.text));
        conversation.messages.push(ChatMessage::text(
            Role::User,
            format!(
                "Thanks. Question {}: name one more fact about the number {turn}.",
                turn + 1
            ),
        ));
    }
    drop(session);

    // Two concurrent requests through the provider: the second waits its turn; the first keeps its pace.
    let provider = LocalProvider::start(LocalModelConfig {
        path,
        max_output_tokens: DECODE_TOKENS,
        sampling,
        session: session_config,
        queue: QueueConfig::default(),
    })
    .expect("provider starts");
    let rate_of = |events: Vec<(Instant, ProviderEvent)>| {
        let texts: Vec<Instant> = events
            .iter()
            .filter(|(_, e)| matches!(e, ProviderEvent::TextDelta(_)))
            .map(|(t, _)| *t)
            .collect();
        let span = (*texts.last().expect("text") - texts[0]).as_secs_f64();
        (texts.len() - 1) as f64 / span
    };
    let collect = |stream: llm::EventStream| async move {
        stream
            .map(|e| (Instant::now(), e.expect("event")))
            .collect::<Vec<_>>()
            .await
    };
    let alone = rate_of(collect(provider.stream_chat(short.clone())).await);
    let (first, second) = tokio::join!(collect(provider.stream_chat(short.clone())), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        collect(provider.stream_chat(short.clone())).await
    });
    let queued = matches!(
        second.first(),
        Some((_, ProviderEvent::Queued { ahead: 1 }))
    );
    println!(
        "first request alone: {alone:.1} deltas/s; with a second request arriving: {:.1} deltas/s; second was queued: {queued}",
        rate_of(first)
    );

    // Stop during a long prompt: how soon the model is free for the next request.
    let paste = "The quick brown fox jumps over the lazy dog. ".repeat(300);
    let mut long = provider.stream_chat(request("You are brief.", &paste, 8));
    // The first poll queues it; a second of prefill (of about 25) passes with no event.
    let _ = tokio::time::timeout(Duration::from_secs(1), long.next()).await;
    let stopped = Instant::now();
    drop(long);
    let mut next = provider.stream_chat(request("You are brief.", "Say hi.", 4));
    while let Some(event) = next.next().await {
        if matches!(event, Ok(ProviderEvent::TextDelta(_))) {
            break;
        }
    }
    println!(
        "stop during a {}-token prompt: the next request's first token {:.2} s after the stop",
        model
            .prompt_tokens(&request("You are brief.", &paste, 8))
            .len(),
        stopped.elapsed().as_secs_f64()
    );
    println!("rss at end: {:.0} MB", rss_mb());
}
