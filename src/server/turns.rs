//! Running turns.
//!
//! A turn belongs to the server, not to the HTTP request that started it: the provider call runs in
//! a task owned by [`TurnHub`], every event goes into a per-turn log numbered from 1, and any number
//! of readers follow that log from any point. Stop cancels the task, which drops the provider stream
//! and with it the upstream connection. A reader that goes away without Stop (closed tab, reload)
//! leaves the turn running to completion, so its text is stored in full and a reload shows it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use llm::{ChatMessage, ChatRequest, LlmError, ProviderEvent, Usage};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::db::{self, BeginTurn, FinishedReply, NewTurn, Owner, TurnRecord};
use super::AppState;
use crate::error::ApiError;
use crate::model::{MessageStatus, MessageView, Role, TurnEnvelope, TurnEvent};

/// How often streamed text is written to the database while a reply grows.
const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// A provider that sends nothing for this long has failed.
const FIRST_TOKEN_TIMEOUT: Duration = Duration::from_secs(90);
/// Retries of a transient failure, only while no text has been shown.
const MAX_RETRIES: u32 = 2;
/// A finished turn stays in memory this long for late readers; after that it is read from the database.
const KEEP_FINISHED: Duration = Duration::from_secs(60);
/// Longest accepted user message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 32_000;

pub type TurnEvents = Pin<Box<dyn Stream<Item = TurnEnvelope> + Send>>;

#[derive(Default)]
pub struct TurnHub {
    live: Mutex<HashMap<Uuid, Arc<LiveTurn>>>,
}

#[derive(Clone, Copy, Debug)]
enum CancelReason {
    Stop,
    Shutdown,
}

struct LiveTurn {
    owner: Owner,
    log: Mutex<Vec<TurnEnvelope>>,
    /// The number of events in `log`, for readers waiting on the next one.
    len: watch::Sender<usize>,
    cancel: CancellationToken,
    cancel_reason: OnceLock<CancelReason>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code holding these locks can panic midway; a poisoned lock still holds valid data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LiveTurn {
    fn new(owner: Owner) -> Self {
        Self {
            owner,
            log: Mutex::default(),
            len: watch::Sender::new(0),
            cancel: CancellationToken::new(),
            cancel_reason: OnceLock::new(),
        }
    }

    fn emit(&self, event: TurnEvent) {
        let len = {
            let mut log = lock(&self.log);
            let seq = u32::try_from(log.len() + 1).unwrap_or(u32::MAX);
            log.push(TurnEnvelope { seq, event });
            log.len()
        };
        self.len.send_replace(len);
    }

    fn is_finished(&self) -> bool {
        matches!(
            lock(&self.log).last(),
            Some(TurnEnvelope {
                event: TurnEvent::Finished { .. },
                ..
            })
        )
    }

    fn cancel(&self, reason: CancelReason) {
        let _ = self.cancel_reason.set(reason);
        self.cancel.cancel();
    }

    /// Events after `after_seq`, live until the turn finishes.
    fn follow(self: Arc<Self>, after_seq: u32) -> TurnEvents {
        let changed = self.len.subscribe();
        let next = after_seq as usize;
        Box::pin(futures::stream::unfold(
            (self, changed, next),
            |(turn, mut changed, next)| async move {
                loop {
                    let event = lock(&turn.log).get(next).cloned();
                    if let Some(event) = event {
                        return Some((event, (turn, changed, next + 1)));
                    }
                    if turn.is_finished() || changed.changed().await.is_err() {
                        return None;
                    }
                }
            },
        ))
    }

    async fn wait_finished(&self, timeout: Duration) {
        let mut changed = self.len.subscribe();
        let _ = tokio::time::timeout(timeout, async {
            while !self.is_finished() {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

impl TurnHub {
    /// Starts a turn, or re-attaches to it if this turn id was sent before, and returns its events.
    /// `model` (a catalog id) switches the conversation to that model from this turn on.
    pub async fn send(
        self: &Arc<Self>,
        state: &AppState,
        owner: &Owner,
        turn_id: Uuid,
        conversation_id: Option<Uuid>,
        text: &str,
        model: Option<&str>,
    ) -> Result<TurnEvents, ApiError> {
        if let Some(model) = model.filter(|m| !state.models.contains(m)) {
            return Err(ApiError::BadRequest(format!("unknown model {model}")));
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(ApiError::BadRequest("the message is empty".into()));
        }
        if text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(ApiError::BadRequest(format!(
                "the message is longer than {MAX_MESSAGE_CHARS} characters"
            )));
        }
        // Claim the turn id in memory first, so two concurrent sends of it start one turn.
        let (live, claimed) = {
            let mut live = lock(&self.live);
            match live.get(&turn_id) {
                Some(turn) if turn.owner == *owner => (turn.clone(), false),
                Some(_) => return Err(no_such_turn()),
                None => {
                    let turn = Arc::new(LiveTurn::new(owner.clone()));
                    live.insert(turn_id, turn.clone());
                    (turn, true)
                }
            }
        };
        if !claimed {
            return Ok(live.follow(0));
        }
        let new_turn = NewTurn {
            turn_id,
            conversation_id,
            text,
            model,
            default_model: state.models.default_model(),
        };
        let begun = db::begin_turn(&state.pool, owner, new_turn).await;
        let unclaim = |error: &str| {
            live.emit(failed_before_start(error));
            lock(&self.live).remove(&turn_id);
        };
        match begun {
            Ok(BeginTurn::Started(record)) => {
                tokio::spawn(run_turn(state.clone(), record, live.clone()));
                Ok(live.follow(0))
            }
            Ok(BeginTurn::Repeated) => {
                unclaim("this message was already sent");
                self.replay(state, owner, turn_id).await
            }
            Ok(BeginTurn::NoSuchConversation) => {
                unclaim("no such conversation");
                Err(no_such_conversation())
            }
            Err(e) => {
                tracing::error!(%turn_id, "could not start turn: {e}");
                unclaim("the server could not store this message");
                Err(ApiError::Internal)
            }
        }
    }

    /// Events of a turn after `after_seq`: live while it runs, from the database once it is done.
    pub async fn events(
        &self,
        state: &AppState,
        owner: &Owner,
        turn_id: Uuid,
        after_seq: u32,
    ) -> Result<TurnEvents, ApiError> {
        let live = lock(&self.live).get(&turn_id).cloned();
        match live {
            Some(turn) if turn.owner == *owner => Ok(turn.follow(after_seq)),
            Some(_) => Err(no_such_turn()),
            None => {
                let replay = self.replay(state, owner, turn_id).await?;
                Ok(Box::pin(
                    replay.filter(move |e| std::future::ready(e.seq > after_seq)),
                ))
            }
        }
    }

    async fn replay(
        &self,
        state: &AppState,
        owner: &Owner,
        turn_id: Uuid,
    ) -> Result<TurnEvents, ApiError> {
        let (conversation_id, reply) = db::turn_reply(&state.pool, owner, turn_id)
            .await
            .map_err(|e| {
                tracing::error!(%turn_id, "could not read turn: {e}");
                ApiError::Internal
            })?
            .ok_or(no_such_turn())?;
        Ok(Box::pin(futures::stream::iter(replay_events(
            conversation_id,
            reply,
        ))))
    }

    /// Stops a running turn and returns once its text is stored as stopped. Stopping a turn that
    /// already ended is not an error.
    pub async fn stop(
        &self,
        state: &AppState,
        owner: &Owner,
        turn_id: Uuid,
    ) -> Result<(), ApiError> {
        let live = lock(&self.live).get(&turn_id).cloned();
        match live {
            Some(turn) if turn.owner == *owner => {
                turn.cancel(CancelReason::Stop);
                turn.wait_finished(Duration::from_secs(5)).await;
                Ok(())
            }
            Some(_) => Err(no_such_turn()),
            None => match db::turn_reply(&state.pool, owner, turn_id).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(no_such_turn()),
                Err(e) => {
                    tracing::error!(%turn_id, "could not read turn: {e}");
                    Err(ApiError::Internal)
                }
            },
        }
    }

    /// Ends every running turn (their text is stored, marked failed) before the server exits.
    pub async fn shutdown(&self, timeout: Duration) {
        let turns: Vec<Arc<LiveTurn>> = lock(&self.live).values().cloned().collect();
        for turn in &turns {
            turn.cancel(CancelReason::Shutdown);
        }
        let _ = tokio::time::timeout(
            timeout,
            futures::future::join_all(turns.iter().map(|t| t.wait_finished(timeout))),
        )
        .await;
    }

    /// Number of turns currently generating.
    pub fn running(&self) -> usize {
        lock(&self.live)
            .values()
            .filter(|t| !t.is_finished())
            .count()
    }
}

fn no_such_turn() -> ApiError {
    ApiError::NotFound("no such turn".into())
}

fn no_such_conversation() -> ApiError {
    ApiError::NotFound("no such conversation".into())
}

fn replay_events(conversation_id: Uuid, reply: MessageView) -> Vec<TurnEnvelope> {
    let mut events = vec![TurnEvent::Started {
        conversation_id,
        message_id: reply.id,
        model: reply.model.clone().unwrap_or_default(),
    }];
    if !reply.content.is_empty() {
        events.push(TurnEvent::Delta {
            text: reply.content,
        });
    }
    // A reply still `streaming` here belongs to a turn that is no longer running in this process.
    if reply.status != MessageStatus::Streaming {
        events.push(TurnEvent::Finished {
            status: reply.status,
            error: reply.error,
            usage: reply.usage,
            usage_estimated: reply.usage_estimated,
            cost_usd: reply.cost_usd,
        });
    }
    events
        .into_iter()
        .zip(1..)
        .map(|(event, seq)| TurnEnvelope { seq, event })
        .collect()
}

fn failed_before_start(error: &str) -> TurnEvent {
    TurnEvent::Finished {
        status: MessageStatus::Failed,
        error: Some(error.to_owned()),
        usage: None,
        usage_estimated: false,
        cost_usd: None,
    }
}

/// How a reply ended.
struct Ending {
    status: MessageStatus,
    error: Option<String>,
    /// The provider's final figures.
    usage: Option<Usage>,
    /// Figures the provider reported before the reply was cut short (Anthropic sends the exact
    /// prompt counts first); they replace the estimate's prompt side.
    usage_so_far: Option<Usage>,
}

async fn run_turn(state: AppState, record: TurnRecord, live: Arc<LiveTurn>) {
    live.emit(TurnEvent::Started {
        conversation_id: record.conversation_id,
        message_id: record.assistant_message_id,
        model: record.model.clone(),
    });
    let mut text = String::new();
    let (ending, prompt) = match build_request(&state, &record).await {
        Ok((provider, request)) => {
            let prompt: Vec<String> = request
                .system
                .iter()
                .cloned()
                .chain(request.messages.iter().map(|m| m.content.clone()))
                .collect();
            (
                stream_reply(
                    &state,
                    &record,
                    &live,
                    provider.as_ref(),
                    request,
                    &mut text,
                )
                .await,
                prompt,
            )
        }
        Err(message) => (
            Ending {
                status: MessageStatus::Failed,
                error: Some(message),
                usage: None,
                usage_so_far: None,
            },
            Vec::new(),
        ),
    };
    let (usage, usage_estimated) = match ending.usage {
        Some(usage) => (Some(usage), false),
        None if !prompt.is_empty() => (
            Some(estimate_usage(&prompt, &text, ending.usage_so_far)),
            true,
        ),
        None => (None, false),
    };
    let cost_usd = usage.and_then(|u| state.prices.cost(&record.model, &u));
    let reply = FinishedReply {
        content: &text,
        status: ending.status,
        error: ending.error.as_deref(),
        usage,
        usage_estimated,
        cost_usd,
    };
    if let Err(e) = db::finish_reply(&state.pool, record.assistant_message_id, reply).await {
        tracing::error!(turn_id = %record.turn_id, "could not store the finished reply: {e}");
    }
    tracing::info!(turn_id = %record.turn_id, status = ending.status.as_str(), chars = text.len(), "turn finished");
    live.emit(TurnEvent::Finished {
        status: ending.status,
        error: ending.error,
        usage,
        usage_estimated,
        cost_usd,
    });
    let hub = state.turns.clone();
    tokio::spawn(async move {
        tokio::time::sleep(KEEP_FINISHED).await;
        lock(&hub.live).remove(&record.turn_id);
    });
}

/// The provider call for this turn: the whole history from the database, the system prompt from
/// the conversation. Errors are messages for the person.
async fn build_request(
    state: &AppState,
    record: &TurnRecord,
) -> Result<(Arc<dyn llm::Provider>, ChatRequest), String> {
    let (provider, model) = state.models.resolve(&record.model).ok_or_else(|| {
        format!(
            "the model {} is not configured on this server; pick another",
            record.model
        )
    })?;
    let history = db::history(&state.pool, record.conversation_id)
        .await
        .map_err(|e| {
            tracing::error!(turn_id = %record.turn_id, "could not read history: {e}");
            "the server could not read this conversation".to_owned()
        })?;
    let messages = history
        .into_iter()
        .map(|(role, content)| ChatMessage {
            role: match role {
                Role::User => llm::Role::User,
                Role::Assistant => llm::Role::Assistant,
            },
            content,
        })
        .collect();
    let system = Some(record.system_prompt.clone()).filter(|s| !s.trim().is_empty());
    Ok((
        provider,
        ChatRequest {
            model,
            system,
            messages,
            max_output_tokens: None,
        },
    ))
}

async fn stream_reply(
    state: &AppState,
    record: &TurnRecord,
    live: &LiveTurn,
    provider: &dyn llm::Provider,
    request: ChatRequest,
    text: &mut String,
) -> Ending {
    let mut attempt = 0;
    loop {
        let result = stream_once(state, record, live, provider, request.clone(), text).await;
        match result {
            Err(error) if text.is_empty() && error.is_transient() && attempt < MAX_RETRIES => {
                attempt += 1;
                let backoff = error
                    .retry_after()
                    .unwrap_or(Duration::from_millis(500 * 2u64.pow(attempt)));
                tracing::warn!(turn_id = %record.turn_id, attempt, "retrying after {backoff:?}: {error}");
                tokio::select! {
                    _ = live.cancel.cancelled() => return cancelled_ending(live),
                    _ = tokio::time::sleep(backoff.min(Duration::from_secs(10))) => {}
                }
            }
            Err(error) => {
                return Ending {
                    status: MessageStatus::Failed,
                    error: Some(error.to_string()),
                    usage: None,
                    usage_so_far: None,
                }
            }
            Ok(ending) => return ending,
        }
    }
}

/// Usage for a turn the provider never finished: its own prompt figures where it reported them,
/// else about four characters a token; the shown text likewise, but never below what the
/// provider had already counted.
fn estimate_usage(prompt: &[String], shown: &str, reported: Option<Usage>) -> Usage {
    let estimate = Usage::estimate(prompt.iter().map(String::as_str), shown);
    match reported {
        Some(r) => Usage {
            output_tokens: estimate.output_tokens.max(r.output_tokens),
            ..r
        },
        None => estimate,
    }
}

fn cancelled_ending(live: &LiveTurn) -> Ending {
    match live.cancel_reason.get() {
        Some(CancelReason::Shutdown) => Ending {
            status: MessageStatus::Failed,
            error: Some("the server was shut down during this reply".into()),
            usage: None,
            usage_so_far: None,
        },
        _ => Ending {
            status: MessageStatus::Stopped,
            error: None,
            usage: None,
            usage_so_far: None,
        },
    }
}

/// One provider call. `Err` only for a provider error; Stop and completion are `Ok` endings.
async fn stream_once(
    state: &AppState,
    record: &TurnRecord,
    live: &LiveTurn,
    provider: &dyn llm::Provider,
    request: ChatRequest,
    text: &mut String,
) -> Result<Ending, LlmError> {
    let mut events = provider.stream_chat(request);
    let mut usage = None;
    let mut unsaved = false;
    // Time in a queue is not the provider failing to answer.
    let mut queued = false;
    let mut flush = tokio::time::interval(FLUSH_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let first_token_deadline = tokio::time::sleep(FIRST_TOKEN_TIMEOUT);
    tokio::pin!(first_token_deadline);
    let ending = loop {
        tokio::select! {
            // Stop wins over any event that is ready at the same time.
            biased;
            _ = live.cancel.cancelled() => break Ok(Ending { usage_so_far: usage, ..cancelled_ending(live) }),
            _ = &mut first_token_deadline, if text.is_empty() && !queued => {
                break Err(LlmError::Connect(format!("no reply within {}s", FIRST_TOKEN_TIMEOUT.as_secs())));
            }
            _ = flush.tick(), if unsaved => {
                unsaved = false;
                if let Err(e) = db::save_partial_reply(&state.pool, record.assistant_message_id, text).await {
                    tracing::warn!(turn_id = %record.turn_id, "could not save partial reply: {e}");
                }
            }
            event = events.next() => match event {
                Some(Ok(ProviderEvent::TextDelta(delta))) => {
                    text.push_str(&delta);
                    unsaved = true;
                    live.emit(TurnEvent::Delta { text: delta });
                }
                Some(Ok(ProviderEvent::Queued { ahead })) => {
                    queued = true;
                    live.emit(TurnEvent::Queued { ahead: u32::try_from(ahead).unwrap_or(u32::MAX) });
                }
                Some(Ok(ProviderEvent::Usage(u))) => usage = Some(u),
                Some(Ok(ProviderEvent::Finished(_))) => {}
                Some(Err(error)) => break Err(error),
                None => break Ok(Ending { status: MessageStatus::Complete, error: None, usage, usage_so_far: None }),
            },
        }
    };
    // Dropping the stream closes the provider connection now, before any database write.
    drop(events);
    ending
}
