//! An in-process local model: a ChatML GGUF (by default SmolLM2-135M-Instruct) run by llama.cpp
//! on the CPU. No key, no network.
//!
//! The model is loaded once. Generation runs on one dedicated thread, off the async runtime, one
//! request at a time (a 135M model on a small machine gains nothing from running two at once;
//! they would only slow each other). Other requests wait and say so; waiting requests are served
//! one person at a time in turn, and a person may have one generating and one waiting, so a few
//! people cannot fill the queue for everyone else. Dropping the event stream stops the generation
//! before its next token, or during a long prompt before its next chunk. The thread keeps each
//! conversation's key/value cache, so a new turn computes only what is new (see
//! `local/cache.rs`).

mod cache;
mod model;
mod text_stream;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use futures::StreamExt;

use crate::{ChatRequest, EventStream, LlmError, Provider, ProviderEvent};
pub use llama_cpp_2::token::LlamaToken;
pub use model::{Generation, LocalModel, Session, SessionConfig, PREFILL_CHUNK};

#[derive(Debug, thiserror::Error)]
pub enum LocalModelError {
    #[error("cannot read the model file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the model file is not a usable GGUF model: {0}")]
    Format(String),
    #[error(
        "the prompt is {prompt} tokens; the local model reads at most {context} with its reply"
    )]
    TooLong { prompt: usize, context: usize },
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Sampling settings; the defaults suit a small instruct model.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingConfig {
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    /// `None` picks a fresh seed per request; tests fix it.
    pub seed: Option<u64>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 0.6,
            top_k: 40,
            top_p: 0.9,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LocalModelConfig {
    pub path: PathBuf,
    /// Reply length limit when the request names none.
    pub max_output_tokens: u32,
    pub sampling: SamplingConfig,
    pub session: SessionConfig,
    pub queue: QueueConfig,
}

/// How many requests may wait behind the one generating, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct QueueConfig {
    /// Requests waiting (not counting the one generating); more are refused as busy at once.
    pub max_waiting: usize,
    /// A request still waiting after this long is refused as busy (and never runs).
    pub max_wait: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_waiting: 8,
            max_wait: Duration::from_secs(120),
        }
    }
}

/// Requests one person may have on the model at once: one generating, one waiting.
pub const PER_PERSON: usize = 2;

pub struct LocalProvider {
    jobs: Arc<Scheduler>,
    queue: QueueConfig,
    /// Requests whose reader still waits for them (queued or generating); a new request has this
    /// many ahead of it. Counted by the reader's side, so a stopped request stops counting at
    /// once, while the generation thread finishes the step it is on.
    pending: Arc<AtomicUsize>,
    /// The same, per requester.
    per_person: Arc<Mutex<HashMap<Option<String>, usize>>>,
    model: Arc<LocalModel>,
    pub info: ModelInfo,
}

/// Jobs waiting for the generation thread, one queue per requester. Each turn goes to the
/// requester served longest ago (one never served first; ties in order of arrival), so someone
/// whose reply is generating waits behind everyone else who is waiting.
#[derive(Default)]
struct Scheduler {
    waiting: Mutex<Waiting>,
    ready: Condvar,
}

#[derive(Default)]
struct Waiting {
    queues: VecDeque<(Option<String>, VecDeque<Job>)>,
    /// When each waiting requester (and the one served last) was last served, by a counter.
    served: HashMap<Option<String>, u64>,
    turns: u64,
    closed: bool,
}

/// The generation thread has stopped taking jobs.
#[derive(Debug)]
struct Stopped;

impl Scheduler {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a job behind its requester's others; `Err` (the job dropped) once the thread has
    /// stopped.
    fn push(&self, job: Job) -> Result<(), Stopped> {
        let mut waiting = self.lock();
        if waiting.closed {
            return Err(Stopped);
        }
        let requester = job.request.requester.clone();
        match waiting.queues.iter_mut().find(|(r, _)| *r == requester) {
            Some((_, jobs)) => jobs.push_back(job),
            None => waiting.queues.push_back((requester, VecDeque::from([job]))),
        }
        drop(waiting);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, in turn; blocks while there is none. `None` once closed and empty.
    fn next(&self) -> Option<Job> {
        let mut waiting = self.lock();
        loop {
            let Waiting {
                queues,
                served,
                turns,
                ..
            } = &mut *waiting;
            let longest_ago = queues
                .iter()
                .enumerate()
                .min_by_key(|(i, (requester, _))| (served.get(requester).copied().unwrap_or(0), *i))
                .map(|(i, _)| i);
            if let Some(i) = longest_ago {
                let (requester, jobs) = &mut queues[i];
                let job = jobs.pop_front();
                let requester = requester.clone();
                if jobs.is_empty() {
                    queues.remove(i);
                }
                *turns += 1;
                served.insert(requester.clone(), *turns);
                // Remember only those still waiting, and the one now served.
                served.retain(|r, _| *r == requester || queues.iter().any(|(q, _)| q == r));
                if job.is_some() {
                    return job;
                }
                continue;
            }
            if waiting.closed {
                return None;
            }
            waiting = self.ready.wait(waiting).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// No more jobs: the thread serves what is queued, then ends.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

impl Drop for LocalProvider {
    fn drop(&mut self) {
        self.jobs.close();
    }
}

#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub name: String,
    /// Longest prompt plus reply: the model's own context length, or less if so configured.
    pub context_length: usize,
}

struct Job {
    request: ChatRequest,
    events: tokio::sync::mpsc::Sender<Result<ProviderEvent, LlmError>>,
    /// Told when the job leaves the queue and generation begins.
    started: Option<tokio::sync::oneshot::Sender<()>>,
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

impl LocalProvider {
    /// Loads the model (about half a second; call off the async runtime) and starts its
    /// generation thread, which owns the key/value cache.
    pub fn start(config: LocalModelConfig) -> Result<Self, LocalModelError> {
        let model = LocalModel::load(&config.path)?;
        let jobs = Arc::new(Scheduler::default());
        let queue = jobs.clone();
        let (ready, started) = mpsc::channel::<Result<usize, LocalModelError>>();
        let shared = model.clone();
        std::thread::Builder::new()
            .name("local-model".into())
            .spawn(move || {
                let mut session = match shared.session(&config.session) {
                    Ok(session) => session,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(session.context_tokens()));
                serve(&queue, |request, on_event, stopped| {
                    let guard = ResetOnPanic(&mut session);
                    guard
                        .0
                        .generate(
                            request,
                            config.max_output_tokens,
                            &config.sampling,
                            on_event,
                            stopped,
                        )
                        .map(drop)
                })
            })
            .map_err(|e| {
                LocalModelError::Inference(format!("cannot start the generation thread: {e}"))
            })?;
        let context_length = started.recv().map_err(|_| {
            LocalModelError::Inference("the generation thread stopped at start".into())
        })??;
        Ok(Self {
            jobs,
            queue: config.queue,
            pending: Arc::new(AtomicUsize::new(0)),
            per_person: Arc::default(),
            info: ModelInfo {
                name: model.name().to_owned(),
                context_length,
            },
            model,
        })
    }
}

/// Empties the session's cache if a generation panics, so the next one starts from nothing
/// rather than from bookkeeping that may not match the cache.
struct ResetOnPanic<'s, 'm>(&'s mut Session<'m>);

impl Drop for ResetOnPanic<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.reset();
        }
    }
}

/// The generation thread's loop: one job at a time, in turn, until the scheduler closes. A job
/// that fails or panics sends [`LlmError::Local`] to its reader, and the loop goes on with the
/// next job.
/// (This guards the Rust around llama.cpp: llama.cpp reports errors as return values, and its
/// internal assertions, none reachable from Rill's calls, would abort the process. A generation
/// that fails leaves its cache slot emptied, and one that panics the whole cache.)
fn serve(
    queue: &Scheduler,
    mut generate: impl FnMut(
        &ChatRequest,
        &mut dyn FnMut(ProviderEvent) -> bool,
        &dyn Fn() -> bool,
    ) -> Result<(), LocalModelError>,
) {
    while let Some(mut job) = queue.next() {
        // A request whose reader is already gone (Stop while queued, or its wait ran out)
        // costs nothing.
        if job.events.is_closed() {
            continue;
        }
        if let Some(started) = job.started.take() {
            let _ = started.send(());
        }
        let mut send = |event| job.events.blocking_send(Ok(event)).is_ok();
        let stopped = || job.events.is_closed();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            generate(&job.request, &mut send, &stopped)
        }));
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(panic) => Some(format!("generation panicked: {}", panic_text(&*panic))),
        };
        if let Some(detail) = failure {
            let _ = job.events.blocking_send(Err(LlmError::Local { detail }));
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

impl LocalProvider {
    /// Requests waiting or generating.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

/// One request counted in `pending` (and its requester's count) for as long as its reader holds
/// the stream.
struct Counted {
    pending: Arc<AtomicUsize>,
    per_person: Arc<Mutex<HashMap<Option<String>, usize>>>,
    requester: Option<String>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
        let mut per_person = self.per_person.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_person.get_mut(&self.requester) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_person.remove(&self.requester);
            }
        }
    }
}

impl LocalProvider {
    /// Counts a request in, or refuses it when its requester already has their share.
    fn count_in(&self, requester: Option<String>) -> Result<(usize, Counted), LlmError> {
        {
            let mut per_person = self.per_person.lock().unwrap_or_else(|e| e.into_inner());
            let mine = per_person.entry(requester.clone()).or_insert(0);
            if requester.is_some() && *mine >= PER_PERSON {
                return Err(LlmError::OwnShareUsed {
                    detail: format!("{mine} requests of this person on the model"),
                });
            }
            *mine += 1;
        }
        let ahead = self.pending.fetch_add(1, Ordering::AcqRel);
        Ok((
            ahead,
            Counted {
                pending: self.pending.clone(),
                per_person: self.per_person.clone(),
                requester,
            },
        ))
    }
}

impl Provider for LocalProvider {
    fn message_tokens(&self, content: &str) -> Option<u32> {
        Some(u32::try_from(self.model.message_tokens(content)).unwrap_or(u32::MAX))
    }

    fn framing_tokens(&self, system: Option<&str>) -> Option<u32> {
        Some(u32::try_from(self.model.framing_tokens(system)).unwrap_or(u32::MAX))
    }

    fn stream_chat(&self, request: ChatRequest) -> EventStream {
        let jobs = self.jobs.clone();
        let queue = self.queue;
        let fail = |error| Box::pin(futures::stream::iter([Err(error)])) as EventStream;
        let (ahead, waiting) = match self.count_in(request.requester.clone()) {
            Ok(counted) => counted,
            Err(refused) => return fail(refused),
        };
        // `ahead` counts the one generating too.
        if ahead > queue.max_waiting {
            return fail(LlmError::Busy {
                detail: format!(
                    "{ahead} requests ahead; the queue holds {}",
                    queue.max_waiting
                ),
            });
        }
        // Queued on first poll, like an HTTP provider's request.
        let start = async move {
            let fail = |error| futures::stream::iter([Err(error)]).left_stream();
            let (events, receiver) = tokio::sync::mpsc::channel(256);
            let (started, began) = tokio::sync::oneshot::channel();
            let job = Job {
                request,
                events,
                started: Some(started),
            };
            if jobs.push(job).is_err() {
                return fail(LlmError::Local {
                    detail: "the generation thread has stopped".into(),
                });
            }
            if ahead > 0 {
                // Dropping the receiver on the way out takes the job off the queue: the thread
                // skips a job whose reader is gone.
                let waited = tokio::time::timeout(queue.max_wait, began);
                let queued = futures::stream::iter([Ok(ProviderEvent::Queued { ahead })]);
                let turn = futures::stream::once(async move {
                    match waited.await {
                        Ok(Ok(())) => Some((receiver, waiting)),
                        _ => None,
                    }
                });
                return queued
                    .chain(turn.flat_map(move |ready| {
                        match ready {
                            Some(reader) => events_of(reader).left_stream(),
                            None => futures::stream::iter([Err(LlmError::Busy {
                                detail: format!(
                                    "waited {} s in the queue",
                                    queue.max_wait.as_secs()
                                ),
                            })])
                            .right_stream(),
                        }
                    }))
                    .right_stream()
                    .right_stream();
            }
            events_of((receiver, waiting)).left_stream().right_stream()
        };
        Box::pin(futures::stream::once(start).flatten())
    }
}

type Reader = (
    tokio::sync::mpsc::Receiver<Result<ProviderEvent, LlmError>>,
    Counted,
);

/// The job's events, counted in `pending` until the reader drops them.
fn events_of(reader: Reader) -> impl futures::Stream<Item = Result<ProviderEvent, LlmError>> {
    futures::stream::unfold(reader, |(mut r, waiting)| async move {
        r.recv().await.map(|e| (e, (r, waiting)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn request(model: &str, messages: &[(Role, &str)]) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            system: Some("Be brief.".into()),
            ..ChatRequest::of(messages)
        }
    }

    #[test]
    fn a_panicking_generation_fails_its_own_request_and_the_next_one_runs() {
        let jobs = Arc::new(Scheduler::default());
        let queue = jobs.clone();
        let worker = std::thread::spawn(move || {
            serve(&queue, |request, on_event, _stopped| {
                match request.model.as_str() {
                    "panic" => panic!("index out of bounds in a kernel"),
                    "fail" => return Err(LocalModelError::Inference("bad\n  0: backtrace".into())),
                    _ => {}
                }
                on_event(ProviderEvent::TextDelta("ok".into()));
                Ok(())
            })
        });
        let mut readers = Vec::new();
        for model in ["panic", "fine", "fail", "fine"] {
            let (events, receiver) = tokio::sync::mpsc::channel(8);
            let pushed = jobs.push(Job {
                request: request(model, &[(Role::User, "hi")]),
                events,
                started: None,
            });
            assert!(pushed.is_ok(), "the thread is serving");
            readers.push(receiver);
        }
        jobs.close();
        worker.join().expect("the thread survives a panicking job");
        let mut first = |r: &mut tokio::sync::mpsc::Receiver<_>| r.blocking_recv();
        let outcomes: Vec<_> = readers.iter_mut().map(&mut first).collect();
        assert!(matches!(
            &outcomes[0],
            Some(Err(LlmError::Local { detail })) if detail.contains("index out of bounds")
        ));
        assert_eq!(outcomes[1], Some(Ok(ProviderEvent::TextDelta("ok".into()))));
        let Some(Err(failed)) = &outcomes[2] else {
            panic!("expected a failure, got {:?}", outcomes[2]);
        };
        assert_eq!(failed.to_string(), "the local model failed");
        assert!(failed.detail().contains("backtrace"));
        assert_eq!(outcomes[3], Some(Ok(ProviderEvent::TextDelta("ok".into()))));
    }

    #[test]
    fn waiting_requests_are_served_one_person_at_a_time_in_turn() {
        let jobs = Scheduler::default();
        let mut readers = Vec::new();
        // Ann asks three times before Ben and Cai ask once each; nobody named asks last.
        for (who, n) in [("ann", 1), ("ann", 2), ("ann", 3), ("ben", 1), ("cai", 1)]
            .map(|(w, n)| (Some(w), n))
            .into_iter()
            .chain([(None, 1)])
        {
            let (events, receiver) = tokio::sync::mpsc::channel(1);
            let pushed = jobs.push(Job {
                request: ChatRequest {
                    requester: who.map(str::to_owned),
                    ..request(&format!("{}{n}", who.unwrap_or("anyone")), &[])
                },
                events,
                started: None,
            });
            assert!(pushed.is_ok());
            readers.push(receiver);
        }
        jobs.close();
        let order: Vec<String> = std::iter::from_fn(|| jobs.next())
            .map(|job| job.request.model)
            .collect();
        assert_eq!(order, ["ann1", "ben1", "cai1", "anyone1", "ann2", "ann3"]);
    }

    #[test]
    fn someone_whose_reply_is_generating_waits_behind_the_others() {
        let jobs = Scheduler::default();
        let push = |who: &str, n: u32| {
            let (events, receiver) = tokio::sync::mpsc::channel(1);
            let pushed = jobs.push(Job {
                request: ChatRequest {
                    requester: Some(who.to_owned()),
                    ..request(&format!("{who}{n}"), &[])
                },
                events,
                started: None,
            });
            assert!(pushed.is_ok());
            receiver
        };
        let _a1 = push("ann", 1);
        assert_eq!(
            jobs.next().map(|j| j.request.model).as_deref(),
            Some("ann1")
        );
        // While Ann's first reply generates, she asks again, then Ben and Cai ask.
        let _rest = [push("ann", 2), push("ben", 1), push("cai", 1)];
        jobs.close();
        let order: Vec<String> = std::iter::from_fn(|| jobs.next())
            .map(|job| job.request.model)
            .collect();
        assert_eq!(order, ["ben1", "cai1", "ann2"]);
    }
}
