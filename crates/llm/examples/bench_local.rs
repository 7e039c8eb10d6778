//! Benchmark of the local model: prefill and decode speed, time to first token, memory, and
//! whether a second concurrent request slows the first.
//!
//!     cargo run --release -p llm --features local --example bench_local [MODEL.gguf]
//!
//! Threads come from CANDLE_NUM_THREADS (Rill's default is 1). Bounded: a few short runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use llm::local::{chatml_prompt, LocalModel, LocalModelConfig, LocalProvider, SamplingConfig};
use llm::{ChatMessage, ChatRequest, Provider, ProviderEvent, Role};

const DECODE_TOKENS: u32 = 128;
const RUNS: usize = 3;

fn request(system: &str, text: &str, max: u32) -> ChatRequest {
    ChatRequest {
        model: "local".into(),
        system: Some(system.into()),
        messages: vec![ChatMessage {
            role: Role::User,
            content: text.into(),
        }],
        max_output_tokens: Some(max),
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
    output_tokens: u32,
    first_token: Duration,
    total: Duration,
}

impl Timing {
    fn decode_rate(&self) -> f64 {
        f64::from(self.output_tokens.saturating_sub(1))
            / (self.total - self.first_token).as_secs_f64()
    }
}

fn timed(model: &mut LocalModel, request: &ChatRequest, sampling: &SamplingConfig) -> Timing {
    let start = Instant::now();
    let mut first = None;
    let mut usage = None;
    model
        .generate(request, 512, sampling, |event| {
            match event {
                ProviderEvent::TextDelta(_) if first.is_none() => first = Some(start.elapsed()),
                ProviderEvent::Usage(u) => usage = Some(u),
                _ => {}
            }
            true
        })
        .expect("generation");
    let usage = usage.expect("usage");
    Timing {
        prompt_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        first_token: first.unwrap_or_default(),
        total: start.elapsed(),
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
    println!("model: {}", path.display());
    println!(
        "threads: {}",
        std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "candle default".into())
    );
    println!("rss before load: {:.0} MB", rss_mb());
    let started = Instant::now();
    let mut model = LocalModel::load(&path).expect("model loads");
    println!(
        "load: {:.2} s, rss after load: {:.0} MB",
        started.elapsed().as_secs_f64(),
        rss_mb()
    );

    // ~50-token prompt (ChatML wrapper included); the reply is capped so every run decodes the same.
    let short = request(
        "You are brief.",
        "Explain in detail why the sky looks blue during the day and red at sunset, with two everyday examples and one simple experiment anyone can try at home.",
        DECODE_TOKENS,
    );
    // Ignore end-of-turn noise: sample greedily from a prompt that invites a long answer.
    let sampling = SamplingConfig {
        seed: Some(7),
        ..SamplingConfig::default()
    };
    println!(
        "prompt: {} tokens",
        model.encode(&chatml_prompt(&short)).expect("encode").len()
    );
    let _warm = timed(&mut model, &short, &sampling);
    let runs: Vec<Timing> = (0..RUNS)
        .map(|_| timed(&mut model, &short, &sampling))
        .collect();
    let ttft = median(
        runs.iter()
            .map(|t| t.first_token.as_secs_f64() * 1000.0)
            .collect(),
    );
    let decode = median(runs.iter().map(Timing::decode_rate).collect());
    let out = runs.iter().map(|t| t.output_tokens).max().unwrap_or(0);
    println!(
        "time to first token ({}-token prompt): {ttft:.0} ms (median of {RUNS})",
        runs[0].prompt_tokens
    );
    println!("decode: {decode:.1} tokens/s (median of {RUNS}, up to {out} tokens each)");

    let long_text = "The history of lighthouses spans many centuries and coasts. ".repeat(40);
    let long = request("You are brief.", &long_text, 1);
    let prefill: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = timed(&mut model, &long, &sampling);
            f64::from(t.prompt_tokens) / t.first_token.max(t.total).as_secs_f64()
        })
        .collect();
    println!(
        "prefill: {:.0} tokens/s ({}-token prompt, median of {RUNS})",
        median(prefill),
        model.encode(&chatml_prompt(&long)).expect("encode").len()
    );
    println!("rss after generation: {:.0} MB", rss_mb());
    drop(model);

    // Two concurrent requests through the provider: the second waits its turn; the first keeps its pace.
    let provider = LocalProvider::start(LocalModelConfig {
        path,
        max_output_tokens: DECODE_TOKENS,
        sampling,
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
    println!("rss at end: {:.0} MB", rss_mb());
}
