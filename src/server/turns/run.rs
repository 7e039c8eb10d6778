//! One run of a turn, top to bottom: build the prompt, stream the provider's reply into the log
//! (retrying a transient refusal before any text), bound it in time and size, then store how it
//! ended and only then tell the readers.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use llm::{ChatRequest, FinishReason, LlmError, Provider, ProviderEvent, Retry, Usage};
use tokio::time::Instant;

use super::budget;
use super::deps::{Admitted, Deps};
use super::error::RunError;
use super::history;
use super::live::{CancelReason, LiveTurn};
use super::prompt::{self, Prompt};
use super::titles;
use crate::model::{MessageStatus, Outcome, TurnEvent};
use crate::server::db::usage::Charge;
use crate::server::db::{self, ReplyRef, ReplyText, TurnRecord};
use crate::server::metrics;

/// How this run ended, before its figures are settled.
struct Ending {
    status: MessageStatus,
    error: Option<String>,
    /// The provider's final figures.
    usage: Option<Usage>,
    /// Figures the provider reported before the reply was cut short (Anthropic sends the exact
    /// prompt counts first); they replace the estimate's prompt side.
    usage_so_far: Option<Usage>,
    /// The provider's failure in full, for admins and the log.
    detail: Option<String>,
    /// The provider said the reply ended at its output cap.
    cut_at_limit: bool,
}

impl Ending {
    fn failed(error: impl Into<String>, usage_so_far: Option<Usage>) -> Self {
        Self {
            status: MessageStatus::Failed,
            error: Some(error.into()),
            usage: None,
            usage_so_far,
            detail: None,
            cut_at_limit: false,
        }
    }

    fn provider_failed(error: &LlmError, usage_so_far: Option<Usage>) -> Self {
        Self {
            detail: Some(error.detail()),
            ..Self::failed(error.to_string(), usage_so_far)
        }
    }

    fn cancelled(reason: Option<CancelReason>, usage_so_far: Option<Usage>) -> Self {
        match reason {
            Some(CancelReason::Shutdown) => Self {
                status: MessageStatus::Interrupted,
                error: Some("the server shut down during this reply".into()),
                usage: None,
                usage_so_far,
                detail: None,
                cut_at_limit: false,
            },
            Some(CancelReason::Stop) | None => Self {
                status: MessageStatus::Stopped,
                error: None,
                usage: None,
                usage_so_far,
                detail: None,
                cut_at_limit: false,
            },
        }
    }
}

/// What this run is writing.
struct Reply<'a> {
    deps: &'a Deps,
    live: &'a LiveTurn,
    record: &'a TurnRecord,
    /// Characters of the reply before this run (a continuation's text so far).
    prior_chars: usize,
    /// Characters this run added.
    added_chars: usize,
    /// Characters of thinking before this run, and those this run added.
    prior_thinking_chars: usize,
    thought_chars: usize,
    /// When this run began.
    started: Instant,
    /// When this run must be over.
    deadline: Instant,
}

pub async fn run_turn(deps: Arc<Deps>, live: Arc<LiveTurn>, admitted: Admitted) {
    let Some(record) = live.record().cloned() else {
        return;
    };
    live.emit(TurnEvent::Started {
        conversation_id: record.conversation_id,
        message_id: record.reply.id,
        model: record.model().to_owned(),
        run: record.reply.run,
        system_prompt_revision: record.reply.system_prompt_revision,
    });
    if !record.reply.thinking.is_empty() {
        live.emit(TurnEvent::Thinking {
            text: record.reply.thinking.clone(),
        });
    }
    if !record.reply.content.is_empty() {
        live.emit(TurnEvent::Delta {
            text: record.reply.content.clone(),
        });
    }
    metrics::turn_started(record.model());
    let started = Instant::now();
    let mut reply = Reply {
        deps: &deps,
        live: &live,
        record: &record,
        prior_chars: record.reply.content.chars().count(),
        added_chars: 0,
        prior_thinking_chars: record.reply.thinking.chars().count(),
        thought_chars: 0,
        started,
        deadline: deadline_after(deps.settings.max_duration),
    };
    // Boxed, as is the store below: their database futures are the largest states of a run,
    // and a task is as large as its largest state, so every streaming reply would carry them.
    let (ending, prompt) = match Box::pin(prepare(&deps, &record)).await {
        Ok((provider, prompt)) => {
            let ending = reply.stream(provider.as_ref(), &prompt.request).await;
            (ending, Some(prompt))
        }
        Err(refused) => (Ending::failed(refused.to_string(), None), None),
    };
    let (outcome, charge) = settle(&deps, &record, &live.written(), ending, prompt.as_ref());
    let status = outcome.status;
    Box::pin(store_and_finish(
        &deps,
        &live,
        &record,
        outcome,
        Some(&charge),
        Some(admitted),
    ))
    .await;
    if deps.model_titles && titles::wanted_after(&record, status) {
        // After `Finished`: the reply is the person's to read while its title is asked.
        let deps = deps.clone();
        let record = record.clone();
        let tasks = deps.tasks.clone();
        tasks.spawn(async move { titles::name_conversation(&deps, &record).await });
    }
    // Counted once stored: a task that dies before this is counted by `store_crashed` instead.
    metrics::turn_finished(
        record.model(),
        status,
        charge.usage.as_ref(),
        charge.cost_usd,
        Some(started.elapsed()),
    );
}

/// The provider and the prompt for this run.
async fn prepare(
    deps: &Deps,
    record: &TurnRecord,
) -> Result<(Arc<dyn Provider>, Prompt), RunError> {
    let model = deps
        .catalog
        .resolve(record.model())
        .ok_or_else(|| RunError::ModelGone(record.model().to_owned()))?;
    let measure = prompt::Measure(Some(&*model.provider));
    // Two reads that need nothing of each other, side by side: under load each waits its turn
    // at the database, and the first token waits for both.
    let (history, limits) = tokio::join!(
        history::read(&deps.db, record, model.limits.context_tokens, &measure),
        budget::limits(deps, &record.owner, record.reply.id),
    );
    let history = history.map_err(|e| {
        tracing::error!("could not read history: {e}");
        RunError::HistoryUnreadable
    })?;
    let prompt = prompt::build(record, history, &model.model, model.limits, &measure)?;
    budget::reserve(deps, record, &prompt, limits?).await?;
    Ok((model.provider, prompt))
}

impl Reply<'_> {
    /// Streams the reply, retrying a transient failure while this run has shown no text.
    async fn stream(&mut self, provider: &dyn Provider, request: &ChatRequest) -> Ending {
        let mut retries = 0;
        loop {
            let (error, usage_so_far) = match self.stream_once(provider, request.clone()).await {
                Ok(ending) => return ending,
                Err(failure) => failure,
            };
            metrics::provider_error(self.record.model(), error.kind());
            let wait = match self.deps.retry.decide(&error, retries) {
                Retry::After(wait) if !self.has_shown_anything() => wait,
                _ => {
                    tracing::warn!(kind = error.kind(), "provider failed: {}", error.detail());
                    return Ending::provider_failed(&error, usage_so_far);
                }
            };
            retries += 1;
            tracing::warn!(
                kind = error.kind(),
                retries,
                ?wait,
                "retrying: {}",
                error.detail()
            );
            tokio::select! {
                biased;
                () = self.live.cancelled() => return Ending::cancelled(self.live.cancel_reason(), None),
                () = tokio::time::sleep_until(self.deadline) => return self.too_slow(None),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One provider call. `Err` only for a provider error, with the figures it had reported;
    /// Stop, bounds and completion are endings.
    async fn stream_once(
        &mut self,
        provider: &dyn Provider,
        request: ChatRequest,
    ) -> Result<Ending, (LlmError, Option<Usage>)> {
        let mut events = provider.stream_chat(request);
        let mut usage = None;
        let mut cut_at_limit = false;
        // Made once, not per event: a timer and a waiter made and dropped for each token were a
        // visible part of a token's CPU at 1,000 at once.
        let live = self.live;
        let stopped = live.cancelled();
        let too_late = tokio::time::sleep_until(self.deadline);
        tokio::pin!(stopped, too_late);
        let ending = loop {
            tokio::select! {
                // Stop wins over any event that is ready at the same time.
                biased;
                () = &mut stopped => {
                    break Ok(Ending::cancelled(live.cancel_reason(), usage));
                }
                () = &mut too_late => break Ok(self.too_slow(usage)),
                event = events.next() => match event {
                    Some(Ok(ProviderEvent::TextDelta(delta))) => {
                        let chars = delta.chars().count();
                        let so_far = self.prior_chars.saturating_add(self.added_chars);
                        if let Some(error) = self.past_bound("the reply", so_far, chars) {
                            break Ok(Ending::failed(error, usage));
                        }
                        self.first_token(chars);
                        self.added_chars += chars;
                        self.live.emit(TurnEvent::Delta { text: delta });
                    }
                    Some(Ok(ProviderEvent::ThinkingDelta(mut delta))) => {
                        let chars = delta.chars().count();
                        let so_far = self.prior_thinking_chars.saturating_add(self.thought_chars);
                        if let Some(error) = self.past_bound("the model's thinking", so_far, chars) {
                            break Ok(Ending::failed(error, usage));
                        }
                        // A continuation's new thinking starts a paragraph of its own.
                        if self.thought_chars == 0 && self.prior_thinking_chars > 0 {
                            delta.insert_str(0, "\n\n");
                        }
                        self.first_token(chars);
                        self.thought_chars += chars;
                        self.live.emit(TurnEvent::Thinking { text: delta });
                    }
                    Some(Ok(ProviderEvent::Queued { ahead })) => {
                        self.live.emit(TurnEvent::Queued { ahead: u32::try_from(ahead).unwrap_or(u32::MAX) });
                    }
                    Some(Ok(ProviderEvent::Usage(u))) => usage = Some(u),
                    Some(Ok(ProviderEvent::Finished(reason))) => {
                        cut_at_limit = reason == FinishReason::Length;
                    }
                    Some(Err(error)) => break Err((error, usage)),
                    None => break Ok(Ending {
                        status: MessageStatus::Complete,
                        error: None,
                        usage,
                        usage_so_far: None,
                        detail: None,
                        cut_at_limit,
                    }),
                },
            }
        };
        // Dropping the stream closes the provider connection now, before any database write.
        drop(events);
        if let Err((error, _)) = &ending {
            if self.has_shown_anything() {
                tracing::warn!("provider failed mid-reply: {}", error.detail());
            }
        }
        ending
    }

    /// The failure to store when `chars` more would take `what` (the reply's text or its
    /// thinking, `so_far` characters now) past the server's bound; each has the bound alone.
    fn past_bound(&self, what: &str, so_far: usize, chars: usize) -> Option<String> {
        let max = self.deps.settings.max_reply_chars;
        (so_far.saturating_add(chars) > max).then(|| {
            format!(
                "{what} grew past {max} characters, this server's limit; the text so far is kept"
            )
        })
    }

    /// Whether this run has shown text or thinking (after which a failure is not retried: the
    /// person has seen it).
    fn has_shown_anything(&self) -> bool {
        self.added_chars > 0 || self.thought_chars > 0
    }

    /// Records the time to the first token this run shows, text or thinking.
    fn first_token(&self, chars: usize) {
        if !self.has_shown_anything() && chars > 0 {
            metrics::first_token(self.record.model(), self.started.elapsed());
        }
    }

    fn too_slow(&self, usage_so_far: Option<Usage>) -> Ending {
        let limit = self.deps.settings.max_duration;
        Ending::failed(
            format!(
                "the reply took longer than {}, this server's limit; the text so far is kept",
                words(limit)
            ),
            usage_so_far,
        )
    }
}

/// `now + after`, or a year from now when that does not fit (a limit set absurdly high).
fn deadline_after(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or(now + Duration::from_secs(365 * 24 * 3600))
}

/// "15 minutes", "90 seconds".
fn words(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 120 && secs.is_multiple_of(60) {
        format!("{} minutes", secs / 60)
    } else {
        format!("{secs} seconds")
    }
}

/// The run's figures: the provider's where it reported them, an estimate otherwise; added to
/// the figures of the runs before it (a continuation) for the reply, and alone for the ledger.
fn settle(
    deps: &Deps,
    record: &TurnRecord,
    written: &ReplyText,
    ending: Ending,
    prompt: Option<&Prompt>,
) -> (Outcome, Charge) {
    let (usage, estimated) = match (ending.usage, prompt) {
        (Some(usage), _) => (Some(usage), false),
        (None, Some(prompt)) => {
            // What this run wrote: the text and thinking after those it began with.
            let after = |all: &str, before: &str| -> String {
                all.chars().skip(before.chars().count()).collect()
            };
            let mut shown = after(&written.thinking, &record.reply.thinking);
            shown.push_str(&after(&written.content, &record.reply.content));
            (
                Some(estimate_usage(&prompt.request, &shown, ending.usage_so_far)),
                true,
            )
        }
        (None, None) => (None, false),
    };
    let cost = usage.and_then(|u| deps.prices.cost(record.model(), &u));
    let before = &record.reply.outcome;
    let outcome = Outcome {
        status: ending.status,
        error: ending.error,
        usage: match (before.usage, usage) {
            (Some(a), Some(b)) => Some(add_usage(a, b)),
            (a, b) => a.or(b),
        },
        usage_estimated: estimated || before.usage_estimated,
        cost_usd: match (before.cost_usd, cost) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        },
        left_out: prompt.map_or(0, |p| p.left_out),
        error_detail: ending.detail,
        cut_at_limit: ending.cut_at_limit,
        // A continued import stays marked: its earlier figures were not spent here.
        imported: before.imported,
    };
    let charge = Charge {
        status: outcome.status,
        usage,
        cost_usd: cost,
        estimated,
    };
    (outcome, charge)
}

fn add_usage(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens.saturating_add(b.input_tokens),
        cached_input_tokens: a.cached_input_tokens.saturating_add(b.cached_input_tokens),
        cache_write_tokens: a.cache_write_tokens.saturating_add(b.cache_write_tokens),
        output_tokens: a.output_tokens.saturating_add(b.output_tokens),
        reasoning_tokens: a.reasoning_tokens.saturating_add(b.reasoning_tokens),
    }
}

/// Usage for a run the provider never finished: its own prompt figures where it reported them,
/// else about four characters a token; the shown text likewise, but never below what the
/// provider had already counted.
fn estimate_usage(request: &ChatRequest, shown: &str, reported: Option<Usage>) -> Usage {
    let prompt = request
        .system
        .iter()
        .map(String::as_str)
        .chain(request.messages.iter().map(|m| m.content.as_str()));
    let estimate = Usage::estimate(prompt, shown);
    match reported {
        Some(r) => Usage {
            output_tokens: estimate.output_tokens.max(r.output_tokens),
            ..r
        },
        None => estimate,
    }
}

/// Stores the reply (and settles this run's reservation to `charge`), gives back the run's
/// place under its owner's limits, then emits `Finished`: what a reader sees after `Finished` is
/// exactly what a reload shows, and a send that follows it is not refused for this run.
async fn store_and_finish(
    deps: &Deps,
    live: &LiveTurn,
    record: &TurnRecord,
    outcome: Outcome,
    charge: Option<&Charge>,
    admitted: Option<Admitted>,
) {
    let text = live.written();
    // Rendered once, here, and kept: opening the conversation later renders nothing.
    let html = crate::server::render::html(text.content.clone()).await;
    let reply = ReplyRef {
        owner: record.owner.clone(),
        message_id: record.reply.id,
        run: record.reply.run,
    };
    // Storing the end is idempotent: a write the database refused (busy past its timeout, a
    // full disk) is tried again before the turn gives up on it. A reply whose end could not be
    // stored stays `streaming` in the database; the hub repairs it as interrupted when asked.
    for (attempt, wait_ms) in [250u64, 1_000, 3_000, 0].into_iter().enumerate() {
        match db::finish_reply(&deps.db, &reply, &text, &html, &outcome, charge).await {
            Ok(()) => break,
            Err(e) if wait_ms > 0 => {
                tracing::warn!(attempt, "could not store the finished reply: {e}");
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            }
            Err(e) => {
                tracing::error!("giving up storing the finished reply: {e}");
            }
        }
    }
    tracing::info!(
        status = outcome.status.as_str(),
        chars = text.content.len(),
        thinking_chars = text.thinking.len(),
        "turn finished"
    );
    if let Some(admitted) = admitted {
        admitted.release().await;
    }
    // The detail is for admins, who read it from the stored conversation; readers of the
    // event log may be anyone the conversation's owner is.
    live.emit(TurnEvent::Finished(Outcome {
        error_detail: None,
        ..outcome
    }));
}

/// The turn's task died (a panic): store what was shown as failed, and end the log.
pub async fn store_crashed(deps: &Deps, live: &LiveTurn, error: &tokio::task::JoinError) {
    tracing::error!("the turn's task died: {error}");
    let Some(record) = live.record() else {
        live.emit(TurnEvent::Finished(Outcome::failed(
            "an internal error ended this reply",
        )));
        return;
    };
    let before = &record.reply.outcome;
    metrics::turn_finished(record.model(), MessageStatus::Failed, None, None, None);
    let outcome = Outcome {
        usage: before.usage,
        usage_estimated: before.usage_estimated,
        cost_usd: before.cost_usd,
        ..Outcome::failed("an internal error ended this reply; the text so far is kept")
    };
    store_and_finish(deps, live, record, outcome, None, None).await;
    // This run's figures died with its task: bill it at an estimate from what it saved.
    if let Err(e) = budget::settle_open_runs(&deps.db, &deps.prices, Some(record.reply.id)).await {
        tracing::error!("could not settle the run's spending: {e}");
    }
}
