//! One completion asked through Rill's OpenAI-compatible API (`/v1/chat/completions`): no
//! conversation and none of its text stored, but otherwise a run like a turn's — admitted under
//! the person's limits (replies at once, turns per minute), its worst case reserved against the
//! person's budget, the site's cap and the API key's budget before any provider request
//! (`budget::hold`), streamed from the catalog's provider within the server's bounds (total
//! time, reply size) with the same retries, and settled in the ledger when it ends.
//!
//! It runs in a task of its own that the caller reads through a channel. A caller that goes
//! away (the client disconnected) drops the channel; the task sees that at once, drops the
//! provider stream — closing the upstream request, as Stop does — and settles what was used,
//! at an estimate. A drain gives it the grace running turns get, then cuts it as it cuts them.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use llm::{
    ChatMessage, ChatRequest, FinishReason, LlmError, Provider, ProviderEvent, Retry, Usage,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::budget::{self, KeyBudget};
use super::deps::{Admitted, Deps};
use super::error::RunError;
use super::prompt::{self, Prompt};
use crate::model::MessageStatus;
use crate::server::db::usage::{self as ledger, Charge};
use crate::server::db::Owner;
use crate::server::limits::LimitError;
use crate::server::metrics;

/// What a client asks: a model of the catalog and the messages, which it sends whole.
#[derive(Clone, Debug)]
pub struct CompletionRequest {
    /// `provider/model`, as `GET /v1/models` lists it.
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    /// The client's cap on the reply (`max_completion_tokens` or `max_tokens`); never above
    /// the model's own.
    pub max_tokens: Option<u32>,
}

/// Who asks: the key's owner, whose limits and budget it counts against, and the key.
#[derive(Clone, Debug)]
pub struct Caller {
    pub owner: Owner,
    pub key: KeyBudget,
}

/// What the caller reads, in order: text, then one end.
#[derive(Clone, Debug, PartialEq)]
pub enum CompletionEvent {
    Text(String),
    /// The reply ended: why, and its figures (the provider's, or an estimate).
    Finished {
        reason: FinishReason,
        usage: Usage,
    },
    /// The provider failed, or a bound was met, after the request began: words for the client.
    Failed(String),
}

/// Why a completion was refused before any provider request.
#[derive(Debug, thiserror::Error)]
pub enum CompletionError {
    #[error("the server is restarting; try again in a moment")]
    Draining,
    #[error("the model `{0}` does not exist on this server; GET /v1/models lists those it has")]
    NoSuchModel(String),
    #[error(transparent)]
    Limited(#[from] LimitError),
    #[error(transparent)]
    Refused(#[from] RunError),
}

/// Events a reader may be behind by before the run waits for it.
const CHANNEL: usize = 64;

/// Starts a completion, or says why not; its events arrive on the receiver.
pub(super) async fn start(
    deps: &Arc<Deps>,
    tasks: &TaskTracker,
    cut: &CancellationToken,
    caller: Caller,
    request: CompletionRequest,
) -> Result<mpsc::Receiver<CompletionEvent>, CompletionError> {
    let model = deps
        .catalog
        .resolve(&request.model)
        .ok_or_else(|| CompletionError::NoSuchModel(request.model.clone()))?;
    let slot = deps.admit(&caller.owner).await?;
    let chat = ChatRequest {
        model: model.model.clone(),
        system: request.system,
        messages: request.messages,
        // The client's cap within the model's; unasked, the model's, but never more than half
        // the window (as a turn's prompt leaves room for its reply).
        max_output_tokens: Some(request.max_tokens.map_or_else(
            || {
                model
                    .limits
                    .max_output_tokens
                    .min(model.limits.context_tokens / 2)
                    .max(1)
            },
            |asked| asked.clamp(1, model.limits.max_output_tokens.max(1)),
        )),
        thinking_budget: model.limits.thinking_tokens,
        requester: Some(caller.owner.0.clone()),
    };
    if chat.messages.iter().any(|m| !m.images.is_empty()) && !model.limits.sees_images {
        return Err(RunError::CannotSee {
            model: request.model,
        }
        .into());
    }
    fits(&request.model, &chat, model.provider.as_ref(), model.limits)?;
    let id = Uuid::new_v4();
    let prompt = Prompt {
        request: chat,
        left_out: 0,
    };
    let run = budget::Run {
        owner: &caller.owner,
        message_id: id,
        run: 1,
        model: &request.model,
        chars_before: 0,
        key: Some(caller.key),
    };
    let limits = budget::limits(deps, &caller.owner, id).await?;
    budget::hold(deps, &run, prompt.worst_case(), limits).await?;
    let (events, receiver) = mpsc::channel(CHANNEL);
    let completion = Running {
        deps: deps.clone(),
        id,
        model: request.model,
        provider: model.provider,
        request: prompt.request,
        events,
        cut: cut.clone(),
        _slot: slot,
    };
    tasks.spawn(completion.run());
    Ok(receiver)
}

/// Refuses a prompt that cannot fit the model's window beside its reply (measured as a turn's
/// prompt is: the provider's exact count where it has one).
fn fits(
    model_id: &str,
    request: &ChatRequest,
    provider: &dyn Provider,
    limits: crate::server::catalog::ModelLimits,
) -> Result<(), RunError> {
    let measure = prompt::Measure(Some(provider));
    let tokens = request
        .messages
        .iter()
        .map(|m| measure.message(&m.content))
        .fold(
            measure.framing(request.system.as_deref()),
            u32::saturating_add,
        );
    let fits = limits
        .context_tokens
        .saturating_sub(request.max_output_tokens.unwrap_or(0));
    if tokens > fits {
        return Err(RunError::TooLong {
            model: model_id.to_owned(),
            tokens,
            fits,
            window: limits.context_tokens,
        });
    }
    Ok(())
}

/// A completion under way, owned by its task.
struct Running {
    deps: Arc<Deps>,
    /// Its row in the ledger (`message_id`, run 1).
    id: Uuid,
    model: String,
    provider: Arc<dyn Provider>,
    request: ChatRequest,
    events: mpsc::Sender<CompletionEvent>,
    /// Cancelled when a drain's grace is over.
    cut: CancellationToken,
    /// One of the owner's replies at once, held until the run ends.
    _slot: Admitted,
}

/// How the run ended, before it is settled.
struct Ending {
    status: MessageStatus,
    reason: FinishReason,
    usage: Option<Usage>,
    /// Figures the provider reported before it was cut short.
    usage_so_far: Option<Usage>,
    /// Words for the client when it failed.
    error: Option<String>,
}

impl Ending {
    fn cut(status: MessageStatus, usage_so_far: Option<Usage>, error: Option<String>) -> Self {
        Self {
            status,
            reason: FinishReason::Stop,
            usage: None,
            usage_so_far,
            error,
        }
    }
}

impl Running {
    async fn run(self) {
        metrics::turn_started(&self.model);
        let started = Instant::now();
        let deadline = started
            .checked_add(self.deps.settings.max_duration)
            .unwrap_or(started + Duration::from_secs(365 * 24 * 3600));
        let mut shown = String::new();
        let ending = self.stream(&mut shown, deadline).await;
        let (usage, estimated) = match ending.usage {
            Some(usage) => (usage, false),
            None => {
                let prompt = self
                    .request
                    .system
                    .iter()
                    .map(String::as_str)
                    .chain(self.request.messages.iter().map(|m| m.content.as_str()));
                let estimate = Usage::estimate(prompt, &shown);
                let usage = match ending.usage_so_far {
                    Some(r) => Usage {
                        output_tokens: estimate.output_tokens.max(r.output_tokens),
                        ..r
                    },
                    None => estimate,
                };
                (usage, true)
            }
        };
        let cost = self.deps.prices.cost(&self.model, &usage);
        let charge = Charge {
            status: ending.status,
            usage: Some(usage),
            cost_usd: cost,
            estimated,
        };
        if let Err(e) = ledger::settle_alone(&self.deps.db, self.id, 1, &charge).await {
            tracing::error!(completion = %self.id, "could not settle a completion's spending: {e}");
        }
        metrics::turn_finished(
            &self.model,
            ending.status,
            Some(&usage),
            cost,
            Some(started.elapsed()),
        );
        // A reader still there learns how it ended (one gone is told nothing).
        let last = match ending.error {
            Some(error) => CompletionEvent::Failed(error),
            None => CompletionEvent::Finished {
                reason: ending.reason,
                usage,
            },
        };
        let _ = self.events.send(last).await;
    }

    /// Streams the reply to the reader, retrying a transient failure while nothing was sent.
    async fn stream(&self, shown: &mut String, deadline: Instant) -> Ending {
        let mut retries = 0;
        loop {
            let (error, usage_so_far) = match self.stream_once(shown, deadline).await {
                Ok(ending) => return ending,
                Err(failure) => failure,
            };
            metrics::provider_error(&self.model, error.kind());
            let wait = match self.deps.retry.decide(&error, retries) {
                Retry::After(wait) if shown.is_empty() => wait,
                _ => {
                    tracing::warn!(kind = error.kind(), "provider failed: {}", error.detail());
                    return Ending::cut(
                        MessageStatus::Failed,
                        usage_so_far,
                        Some(error.to_string()),
                    );
                }
            };
            retries += 1;
            tokio::select! {
                biased;
                () = self.events.closed() => return Ending::cut(MessageStatus::Stopped, None, None),
                () = self.cut.cancelled() => return self.shut_down(None),
                () = tokio::time::sleep_until(deadline) => return self.too_slow(None),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One provider call. `Err` only for a provider error, with the figures it had reported.
    async fn stream_once(
        &self,
        shown: &mut String,
        deadline: Instant,
    ) -> Result<Ending, (LlmError, Option<Usage>)> {
        let mut stream = self.provider.stream_chat(self.request.clone());
        let mut usage = None;
        let mut reason = FinishReason::Stop;
        let max_chars = self.deps.settings.max_reply_chars;
        let mut chars = 0usize;
        let gone = self.events.closed();
        let too_late = tokio::time::sleep_until(deadline);
        tokio::pin!(gone, too_late);
        let ending = loop {
            tokio::select! {
                // The reader's going wins over any event ready at the same time.
                biased;
                () = &mut gone => break Ok(Ending::cut(MessageStatus::Stopped, usage, None)),
                () = self.cut.cancelled() => break Ok(self.shut_down(usage)),
                () = &mut too_late => break Ok(self.too_slow(usage)),
                event = stream.next() => match event {
                    Some(Ok(ProviderEvent::TextDelta(delta))) => {
                        chars = chars.saturating_add(delta.chars().count());
                        if chars > max_chars {
                            break Ok(Ending::cut(MessageStatus::Failed, usage, Some(format!(
                                "the reply grew past {max_chars} characters, this server's limit"
                            ))));
                        }
                        shown.push_str(&delta);
                        if self.events.send(CompletionEvent::Text(delta)).await.is_err() {
                            break Ok(Ending::cut(MessageStatus::Stopped, usage, None));
                        }
                    }
                    // The API's answer has no place for thinking; it is billed all the same
                    // (counted in the estimate when the provider reports nothing).
                    Some(Ok(ProviderEvent::ThinkingDelta(delta))) => {
                        chars = chars.saturating_add(delta.chars().count());
                        if chars > max_chars {
                            break Ok(Ending::cut(MessageStatus::Failed, usage, Some(format!(
                                "the reply grew past {max_chars} characters, this server's limit"
                            ))));
                        }
                        shown.push_str(&delta);
                    }
                    Some(Ok(ProviderEvent::Queued { .. })) => {}
                    Some(Ok(ProviderEvent::Usage(u))) => usage = Some(u),
                    Some(Ok(ProviderEvent::Finished(why))) => reason = why,
                    Some(Err(error)) => break Err((error, usage)),
                    None => break Ok(Ending {
                        status: MessageStatus::Complete,
                        reason,
                        usage,
                        usage_so_far: None,
                        error: None,
                    }),
                },
            }
        };
        // Dropping the stream closes the provider connection now, before the ledger is written.
        drop(stream);
        ending
    }

    fn shut_down(&self, usage_so_far: Option<Usage>) -> Ending {
        Ending::cut(
            MessageStatus::Interrupted,
            usage_so_far,
            Some("the server shut down during this reply".into()),
        )
    }

    fn too_slow(&self, usage_so_far: Option<Usage>) -> Ending {
        let limit = self.deps.settings.max_duration.as_secs();
        Ending::cut(
            MessageStatus::Failed,
            usage_so_far,
            Some(format!(
                "the reply took longer than {limit} seconds, this server's limit"
            )),
        )
    }
}
