//! An in-process local model: a quantized llama-architecture GGUF (by default SmolLM2-135M-Instruct)
//! run with candle on the CPU. No key, no network.
//!
//! The model is loaded once. Generation runs on one dedicated thread, off the async runtime, one
//! request at a time (a 135M model on a small machine gains nothing from running two at once;
//! they would only slow each other). Other requests wait in a queue and say so. Dropping the
//! event stream stops the generation before its next token.

mod text_stream;
mod tokenizer;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use futures::StreamExt;
use tokenizers::Tokenizer;

use crate::{
    ChatRequest, EventStream, FinishReason, LlmError, Provider, ProviderEvent, Role, Usage,
};
use text_stream::TextStream;

#[derive(Debug, thiserror::Error)]
pub enum LocalModelError {
    #[error("cannot read the model file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the model file is not a usable GGUF model: {0}")]
    Format(String),
    #[error("inference failed: {0}")]
    Inference(String),
}

impl From<candle_core::Error> for LocalModelError {
    fn from(e: candle_core::Error) -> Self {
        Self::Inference(e.to_string())
    }
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
}

pub struct LocalProvider {
    jobs: mpsc::Sender<Job>,
    /// Requests whose reader still waits for them (queued or generating); a new request has this
    /// many ahead of it. Counted by the reader's side, so a stopped request stops counting at
    /// once, while the generation thread finishes the token it is on.
    pending: Arc<AtomicUsize>,
    pub info: ModelInfo,
}

#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub name: String,
    pub context_length: usize,
}

struct Job {
    request: ChatRequest,
    events: tokio::sync::mpsc::Sender<Result<ProviderEvent, LlmError>>,
}

/// The loaded weights and tokenizer, owned by the generation thread.
pub struct LocalModel {
    weights: ModelWeights,
    tokenizer: Tokenizer,
    end_of_turn: u32,
    context_length: usize,
    name: String,
    device: Device,
}

impl LocalModel {
    pub fn load(path: &Path) -> Result<Self, LocalModelError> {
        let read_error = |source| LocalModelError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| LocalModelError::Format(e.to_string()))?;
        let tokenizer = tokenizer::from_gguf(&content)?;
        let metadata_u32 = |key: &str| content.metadata.get(key).and_then(|v| v.to_u32().ok());
        // ChatML models end a turn with <|im_end|>; fall back to the file's end-of-sequence token.
        let end_of_turn = tokenizer
            .token_to_id("<|im_end|>")
            .or_else(|| metadata_u32("tokenizer.ggml.eos_token_id"))
            .ok_or_else(|| LocalModelError::Format("no end-of-turn token".into()))?;
        // candle's rotary tables stop at MAX_SEQ_LEN positions, whatever the file was trained for.
        let context_length = metadata_u32("llama.context_length")
            .map_or(2048, |n| usize::try_from(n).unwrap_or(usize::MAX))
            .min(MAX_SEQ_LEN);
        // The file's name ("SmolLM2-135M-Instruct.Q4_1.gguf") reads better than some files'
        // `general.name` ("Smollm2 135M 8k Lc100K Mix1 Ep2").
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('.').next())
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                content
                    .metadata
                    .get("general.name")
                    .and_then(|v| v.to_string().ok())
                    .cloned()
            })
            .unwrap_or_else(|| "local model".to_owned());
        let device = Device::Cpu;
        let weights = match requantized_for_speed(&content, &mut file)? {
            Some((content, mut bytes)) => ModelWeights::from_gguf(content, &mut bytes, &device)?,
            None => ModelWeights::from_gguf(content, &mut file, &device)?,
        };
        Ok(Self {
            weights,
            tokenizer,
            end_of_turn,
            context_length,
            name,
            device,
        })
    }

    /// The usable context in tokens: the file's, capped at what candle's llama supports.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids of `text`, special tokens such as `<|im_start|>` recognised.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LocalModelError> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(|e| LocalModelError::Inference(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// Generates a reply, calling `on_event` for each event; stops early when it returns false.
    pub fn generate(
        &mut self,
        request: &ChatRequest,
        max_output_tokens: u32,
        sampling: &SamplingConfig,
        mut on_event: impl FnMut(ProviderEvent) -> bool,
    ) -> Result<(), LocalModelError> {
        let requested = request
            .max_output_tokens
            .unwrap_or(max_output_tokens)
            .max(1);
        let mut prompt = self.encode(&chatml_prompt(request))?;
        let max_new = fit_to_context(&mut prompt, requested, self.context_length);
        if max_new == 0 {
            return Err(LocalModelError::Inference(format!(
                "no room to generate in a context of {} tokens",
                self.context_length
            )));
        }
        let seed = sampling.seed.unwrap_or_else(random_seed);
        let mut sampler = LogitsProcessor::from_sampling(
            seed,
            if sampling.temperature <= 0.0 {
                Sampling::ArgMax
            } else {
                Sampling::TopKThenTopP {
                    k: sampling.top_k,
                    p: sampling.top_p,
                    temperature: sampling.temperature,
                }
            },
        );
        let input = Tensor::new(prompt.as_slice(), &self.device)?.unsqueeze(0)?;
        let mut logits = self.weights.forward(&input, 0)?.squeeze(0)?;
        let mut recent: VecDeque<u32> = prompt
            .iter()
            .rev()
            .take(sampling.repeat_last_n)
            .rev()
            .copied()
            .collect();
        let mut text = TextStream::default();
        let mut generated = 0usize;
        let mut finish = FinishReason::Length;
        while generated < max_new {
            if sampling.repeat_penalty != 1.0 {
                let context: Vec<u32> = recent.iter().copied().collect();
                logits = candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    sampling.repeat_penalty,
                    &context,
                )?;
            }
            let next = sampler.sample(&logits)?;
            if next == self.end_of_turn {
                finish = FinishReason::Stop;
                break;
            }
            generated += 1;
            recent.push_back(next);
            if recent.len() > sampling.repeat_last_n {
                recent.pop_front();
            }
            if let Some(delta) = text.push(&self.tokenizer, next)? {
                if !on_event(ProviderEvent::TextDelta(delta)) {
                    return Ok(());
                }
            }
            if generated < max_new {
                // The token just sampled sits right after the prompt and the ones before it.
                let position = prompt.len() + generated - 1;
                let input = Tensor::new(&[next], &self.device)?.unsqueeze(0)?;
                logits = self.weights.forward(&input, position)?.squeeze(0)?;
            }
        }
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let usage = Usage {
            input_tokens: count(prompt.len()),
            output_tokens: count(generated),
            ..Usage::default()
        };
        let _ = on_event(ProviderEvent::Finished(finish)) && on_event(ProviderEvent::Usage(usage));
        Ok(())
    }
}

/// Trims `prompt` to fit `context` with room for a reply, keeping its end (the latest turns), and
/// returns how many tokens may be generated: at most `requested`, and prompt + reply ≤ context.
fn fit_to_context(prompt: &mut Vec<u32>, requested: u32, context: usize) -> usize {
    let requested = usize::try_from(requested).unwrap_or(usize::MAX);
    // Keep at least one prompt token (the model needs an input) whatever the reply asks for.
    let budget = context.saturating_sub(requested).max(1);
    if prompt.len() > budget {
        prompt.drain(..prompt.len() - budget);
    }
    requested.min(context.saturating_sub(prompt.len()))
}

/// A GGUF file's header and its tensor data, held in memory.
type InMemoryGguf = (gguf_file::Content, std::io::Cursor<Vec<u8>>);

/// candle has AVX2 kernels for Q4_0 and Q8_0 but only scalar code for Q4_1, Q5_0 and Q5_1 (the
/// default model is Q4_1). Such tensors are re-quantized to Q8_0 at load, in memory: a few more
/// megabytes for a much faster decode, and no loss that matters (8-bit steps over 4-bit values).
/// Returns `None` when the file needs nothing.
fn requantized_for_speed(
    content: &gguf_file::Content,
    file: &mut std::fs::File,
) -> Result<Option<InMemoryGguf>, LocalModelError> {
    use candle_core::quantized::{GgmlDType, QTensor};
    let slow =
        |dtype: GgmlDType| matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1);
    if !content.tensor_infos.values().any(|t| slow(t.ggml_dtype)) {
        return Ok(None);
    }
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content.tensor(file, name, &Device::Cpu)?;
        let tensor = if slow(tensor.dtype()) {
            let values = tensor.dequantize(&Device::Cpu)?;
            // Q8_0 needs rows in whole blocks of 32; any other tensor keeps its format.
            QTensor::quantize(&values, GgmlDType::Q8_0).unwrap_or(tensor)
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let mut bytes = std::io::Cursor::new(Vec::new());
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    gguf_file::write(&mut bytes, &metadata, &tensor_refs)?;
    drop(tensor_refs);
    drop(tensors);
    bytes.set_position(0);
    let content =
        gguf_file::Content::read(&mut bytes).map_err(|e| LocalModelError::Format(e.to_string()))?;
    Ok(Some((content, bytes)))
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// SmolLM2's chat template (ChatML), including its default system prompt when none is given. A
/// partial reply to continue is prefilled: the prompt ends inside the assistant's turn.
pub fn chatml_prompt(request: &ChatRequest) -> String {
    let system = request
        .system
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("You are a helpful AI assistant named SmolLM, trained by Hugging Face");
    let mut prompt = format!("<|im_start|>system\n{system}<|im_end|>\n");
    let (history, partial) = request.split_partial();
    for message in history {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        prompt.push_str(&format!(
            "<|im_start|>{role}\n{}<|im_end|>\n",
            message.content
        ));
    }
    prompt.push_str("<|im_start|>assistant\n");
    prompt.push_str(partial.unwrap_or(""));
    prompt
}

impl LocalProvider {
    /// Loads the model (seconds; call off the async runtime) and starts its generation thread.
    pub fn start(config: LocalModelConfig) -> Result<Self, LocalModelError> {
        let mut model = LocalModel::load(&config.path)?;
        let info = ModelInfo {
            name: model.name.clone(),
            context_length: model.context_length,
        };
        let (jobs, queue) = mpsc::channel::<Job>();
        let pending = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("local-model".into())
            .spawn(move || {
                serve(queue, |request, on_event| {
                    model.generate(
                        request,
                        config.max_output_tokens,
                        &config.sampling,
                        on_event,
                    )
                })
            })
            .map_err(|e| {
                LocalModelError::Inference(format!("cannot start the generation thread: {e}"))
            })?;
        Ok(Self {
            jobs,
            pending,
            info,
        })
    }
}

/// The generation thread's loop: one job at a time, until every sender is gone. A job that fails
/// or panics sends [`LlmError::Local`] to its reader, and the loop goes on with the next job.
/// (After a panic the model is still usable: each generation starts its KV cache afresh.)
fn serve(
    queue: mpsc::Receiver<Job>,
    mut generate: impl FnMut(
        &ChatRequest,
        &mut dyn FnMut(ProviderEvent) -> bool,
    ) -> Result<(), LocalModelError>,
) {
    for job in queue {
        // A request whose reader is already gone (Stop while queued) costs nothing.
        if job.events.is_closed() {
            continue;
        }
        let mut send = |event| job.events.blocking_send(Ok(event)).is_ok();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            generate(&job.request, &mut send)
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

/// One request counted in `pending` for as long as its reader holds the stream.
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Provider for LocalProvider {
    fn stream_chat(&self, request: ChatRequest) -> EventStream {
        let jobs = self.jobs.clone();
        let pending = self.pending.clone();
        // Queued on first poll, like an HTTP provider's request.
        let start = async move {
            let (events, receiver) = tokio::sync::mpsc::channel(256);
            let ahead = pending.fetch_add(1, Ordering::AcqRel);
            let waiting = Waiting(pending);
            if jobs.send(Job { request, events }).is_err() {
                let failed = futures::stream::iter([Err(LlmError::Local {
                    detail: "the generation thread has stopped".into(),
                })]);
                return failed.left_stream();
            }
            let queued = (ahead > 0).then_some(Ok(ProviderEvent::Queued { ahead }));
            futures::stream::iter(queued)
                .chain(futures::stream::unfold(
                    (receiver, waiting),
                    |(mut r, waiting)| async move { r.recv().await.map(|e| (e, (r, waiting))) },
                ))
                .right_stream()
        };
        Box::pin(futures::stream::once(start).flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(model: &str, messages: &[(Role, &str)]) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            system: Some("Be brief.".into()),
            ..ChatRequest::of(messages)
        }
    }

    #[test]
    fn the_context_keeps_the_end_of_the_prompt_and_room_for_the_reply() {
        let mut prompt: Vec<u32> = (0..5000).collect();
        assert_eq!(fit_to_context(&mut prompt, 512, 4096), 512);
        assert_eq!(prompt.len(), 4096 - 512);
        assert_eq!(prompt.last(), Some(&4999));

        let mut prompt: Vec<u32> = (0..10).collect();
        assert_eq!(fit_to_context(&mut prompt, 512, 4096), 512);
        assert_eq!(prompt.len(), 10);

        // A reply limit beyond the context leaves one prompt token and the rest for the reply.
        let mut prompt: Vec<u32> = (0..100).collect();
        assert_eq!(fit_to_context(&mut prompt, u32::MAX, 4096), 4095);
        assert_eq!(prompt, vec![99]);

        // Degenerate contexts give no room rather than a panic.
        let mut prompt: Vec<u32> = (0..3).collect();
        assert_eq!(fit_to_context(&mut prompt, 1, 1), 0);
        let mut prompt: Vec<u32> = (0..3).collect();
        assert_eq!(fit_to_context(&mut prompt, 7, 0), 0);
    }

    #[test]
    fn a_partial_reply_is_prefilled_in_chatml() {
        let prompt = chatml_prompt(&request(
            "m",
            &[(Role::User, "hi"), (Role::Assistant, "Hello, wor")],
        ));
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nHello, wor"
        );
        let prompt = chatml_prompt(&request("m", &[(Role::User, "hi")]));
        assert!(prompt.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"));
    }

    #[test]
    fn a_panicking_generation_fails_its_own_request_and_the_next_one_runs() {
        let (jobs, queue) = mpsc::channel::<Job>();
        let worker = std::thread::spawn(move || {
            serve(queue, |request, on_event| {
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
            jobs.send(Job {
                request: request(model, &[(Role::User, "hi")]),
                events,
            })
            .expect("the thread is serving");
            readers.push(receiver);
        }
        drop(jobs);
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
}
