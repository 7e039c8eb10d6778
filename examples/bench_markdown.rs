//! What rendering a streaming reply costs per token, as the page does it
//! (`ui/chat/reply_text.rs` over `markdown::render_tail`), along a 20,000-token reply of mixed
//! markdown: paragraphs, lists, tables and long code blocks. Prints the median and 99th
//! percentile per token for each stretch of 2,000 tokens, then the same for rendering the whole
//! reply on every token (what the page would cost without settling blocks).
//!
//!     cargo run --release --features ssr --example bench_markdown

use std::time::{Duration, Instant};

use rill::markdown::{render, render_tail};

const TOKENS: usize = 20_000;
const STRETCH: usize = 2_000;

/// A reply of about `TOKENS` tokens of four characters.
fn reply() -> String {
    let section = "## Step\n\nSome prose with **bold**, `code` and a [link](https://example.com). \
        It goes on for a while, as explanations do, before the list.\n\n\
        - first point\n- second point, longer than the first\n  - a nested point\n\n\
        | name | size |\n|------|-----:|\n| a | 1 |\n| b | 22 |\n\n\
        ```rust\nfn main() {\n    let total: u32 = (1..=10).sum();\n    println!(\"{total}\");\n}\n```\n\n";
    let mut text = String::new();
    while text.len() < TOKENS * 4 {
        text.push_str(section);
    }
    text.truncate(TOKENS * 4);
    text
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(label: &str, per_token: &[Duration]) {
    println!("{label}");
    for (n, stretch) in per_token.chunks(STRETCH).enumerate() {
        let mut sorted = stretch.to_vec();
        sorted.sort();
        println!(
            "  tokens {:>6}–{:<6} median {:>8.1} µs   p99 {:>8.1} µs",
            n * STRETCH,
            (n + 1) * STRETCH,
            percentile(&sorted, 0.5).as_secs_f64() * 1e6,
            percentile(&sorted, 0.99).as_secs_f64() * 1e6,
        );
    }
}

fn main() {
    let text = reply();
    let cuts: Vec<usize> = (1..=TOKENS).map(|i| (i * 4).min(text.len())).collect();

    // As the page does: render what is not settled yet; settled blocks are kept.
    let mut settled_len = 0;
    let mut settled_html = String::new();
    let mut open_html = String::new();
    let mut per_token = Vec::with_capacity(TOKENS);
    for &cut in &cuts {
        let started = Instant::now();
        let piece = render_tail(
            &text[settled_len..cut],
            true,
            rill::markdown::MAX_TABLE_CELLS,
        );
        settled_len += piece.settled_len;
        settled_html.push_str(&piece.settled_html);
        open_html = piece.open_html;
        per_token.push(started.elapsed());
    }
    assert_eq!(settled_html + &open_html, render(&text));
    report(
        "settling blocks (the page): render time per token",
        &per_token,
    );

    // Without settling: every token renders the whole reply so far.
    let mut per_token = Vec::with_capacity(TOKENS);
    for &cut in cuts.iter().step_by(10) {
        let started = Instant::now();
        std::hint::black_box(render(&text[..cut]));
        per_token.push(started.elapsed());
    }
    let every_tenth: Vec<Duration> = per_token.iter().flat_map(|d| [*d; 10]).collect();
    report(
        "whole reply every token (for comparison; sampled every 10th token)",
        &every_tenth,
    );
}
