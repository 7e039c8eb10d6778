//! Prometheus metrics: what each turn did, recorded where the turn begins and ends, and the
//! exposition that `/metrics` serves. Names follow Prometheus conventions (`_total` counters,
//! seconds, a `rill_` prefix); labels are the provider and model, never a user or a text.

use std::sync::OnceLock;
use std::time::Duration;

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use llm::Usage;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::model::MessageStatus;

const TURNS_STARTED: &str = "rill_turns_started_total";
const TURNS_FINISHED: &str = "rill_turns_finished_total";
const TOKENS: &str = "rill_tokens_total";
/// Counters are whole numbers, so cost is counted in millionths of a dollar.
const COST: &str = "rill_cost_microusd_total";
const FIRST_TOKEN: &str = "rill_time_to_first_token_seconds";
const REPLY_DURATION: &str = "rill_reply_duration_seconds";
const STREAMING: &str = "rill_replies_streaming";
const LOCAL_QUEUE: &str = "rill_local_model_queue_depth";
const PROVIDER_ERRORS: &str = "rill_provider_errors_total";
const CONNECTIONS: &str = "rill_connections_open";
const CONNECTIONS_REFUSED: &str = "rill_connections_refused_total";

/// Seconds: from a fast local model's first token to a long reasoning reply.
const BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

/// The process-wide recorder (the `metrics` facade has one global recorder), installed on
/// first use; `None` if something else installed one first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(FIRST_TOKEN.into()), BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(REPLY_DURATION.into()), BUCKETS)
                })
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::error!("metrics are off: {e}");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    describe_counter!(
        TURNS_STARTED,
        "Turns started (sends, retries and continues)."
    );
    describe_counter!(TURNS_FINISHED, "Turns ended, by how they ended.");
    describe_counter!(
        TOKENS,
        "Tokens of finished turns, by kind (input, cached_input, cache_write, output, reasoning)."
    );
    describe_counter!(COST, "Cost of finished turns in millionths of a US dollar (estimated where the provider gave no figures).");
    describe_histogram!(
        FIRST_TOKEN,
        "Seconds from the start of a turn to its first token."
    );
    describe_histogram!(
        REPLY_DURATION,
        "Seconds from the start of a turn to its end."
    );
    describe_gauge!(STREAMING, "Replies being written now.");
    describe_gauge!(
        LOCAL_QUEUE,
        "Requests waiting for or running on the built-in model."
    );
    describe_counter!(
        PROVIDER_ERRORS,
        "Provider failures by kind, retried ones included."
    );
    describe_gauge!(CONNECTIONS, "Client connections open now.");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections answered 503 and closed at the caps, by which cap (full, address_full)."
    );
}

/// Histograms keep their samples until upkeep folds them in; without a scrape they would pile up.
pub async fn upkeep(handle: &'static PrometheusHandle) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

/// The exposition text, with the gauges that are read rather than counted set first.
pub fn render(handle: &PrometheusHandle, streaming: usize, local_queue: usize) -> String {
    gauge!(STREAMING).set(streaming as f64);
    gauge!(LOCAL_QUEUE).set(local_queue as f64);
    handle.run_upkeep();
    handle.render()
}

/// `openai/gpt-4o` → (`openai`, `gpt-4o`).
fn labels(model: &str) -> [(&'static str, String); 2] {
    let (provider, name) = model.split_once('/').unwrap_or((model, ""));
    [
        ("provider", provider.to_owned()),
        ("model", name.to_owned()),
    ]
}

pub fn turn_started(model: &str) {
    counter!(TURNS_STARTED, &labels(model)).increment(1);
}

pub fn first_token(model: &str, after: Duration) {
    let [provider, _] = labels(model);
    histogram!(FIRST_TOKEN, &[provider]).record(after.as_secs_f64());
}

/// One run's end: its status, and the figures of this run alone (a continuation's earlier runs
/// were counted when they ended).
pub fn turn_finished(
    model: &str,
    status: MessageStatus,
    usage: Option<&Usage>,
    cost_usd: Option<f64>,
    took: Option<Duration>,
) {
    let [provider, name] = labels(model);
    counter!(
        TURNS_FINISHED,
        &[
            provider.clone(),
            name.clone(),
            ("status", status.as_str().to_owned())
        ]
    )
    .increment(1);
    if let Some(usage) = usage {
        for (kind, tokens) in [
            ("input", usage.input_tokens),
            ("cached_input", usage.cached_input_tokens),
            ("cache_write", usage.cache_write_tokens),
            ("output", usage.output_tokens),
            ("reasoning", usage.reasoning_tokens),
        ] {
            counter!(
                TOKENS,
                &[provider.clone(), name.clone(), ("kind", kind.to_owned())]
            )
            .increment(u64::from(tokens));
        }
    }
    if let Some(cost) = cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
        counter!(COST, &[provider.clone(), name]).increment((cost * 1e6).round() as u64);
    }
    if let Some(took) = took {
        histogram!(REPLY_DURATION, &[provider]).record(took.as_secs_f64());
    }
}

pub fn provider_error(model: &str, kind: &'static str) {
    let [provider, _] = labels(model);
    counter!(PROVIDER_ERRORS, &[provider, ("kind", kind.to_owned())]).increment(1);
}

pub fn connections_open(open: usize) {
    gauge!(CONNECTIONS).set(open as f64);
}

pub fn connection_refused(reason: &'static str) {
    counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(1);
}
