//! The loaded model (weights and vocabulary, shared) and a [`Session`]: one key/value cache and
//! the generation loop that reuses it between requests.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::cache::{CacheSlots, Shift};
use super::text_stream::TextStream;
use super::{LocalModelError, SamplingConfig};
use crate::{ChatRequest, FinishReason, ProviderEvent, Role, Usage};

/// Prompt tokens computed per step. A Stop is noticed between steps, so this bounds how long a
/// long paste keeps the model busy after Stop (at most about a second here), at no cost in speed
/// (measured: 64, 128 and 512 prefill equally fast on one thread).
pub const PREFILL_CHUNK: usize = 128;

/// Conversations whose cache is kept at once. Memory is bounded by the cache's token cells, not by
/// this; it only stops many tiny conversations from each pinning a sliver.
const CACHE_SLOTS: usize = 8;

/// llama.cpp's `LLAMA_FLASH_ATTN_TYPE_DISABLED` (its `-fa off`).
const FLASH_ATTENTION_DISABLED: i32 = 0;

/// The default system prompt of SmolLM2's chat template, used when a conversation has none.
const DEFAULT_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// llama.cpp's process-wide state: initialised once, never torn down.
fn backend() -> Result<&'static LlamaBackend, LocalModelError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs every tensor at load; its errors reach us as return values instead.
            llama_cpp_2::send_logs_to_tracing(
                llama_cpp_2::LogOptions::default().with_logs_enabled(false),
            );
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalModelError::Inference(format!("cannot start llama.cpp: {e}")))
}

/// Weights and vocabulary. Shared: the server counts tokens with it while a session generates.
pub struct LocalModel {
    model: LlamaModel,
    backend: &'static LlamaBackend,
    im_start: LlamaToken,
    im_end: LlamaToken,
    context_length: usize,
    name: String,
}

/// How a session runs.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Token cells of the key/value cache, shared by the cached conversations; also the longest
    /// prompt plus reply (capped at the model's own context length).
    pub context_tokens: usize,
    pub threads: usize,
}

impl LocalModel {
    /// Loads a llama-architecture GGUF with a ChatML template (SmolLM2 and its kin).
    pub fn load(path: &Path) -> Result<Arc<Self>, LocalModelError> {
        if let Err(source) = std::fs::metadata(path) {
            return Err(LocalModelError::Read {
                path: path.to_owned(),
                source,
            });
        }
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| LocalModelError::Format(e.to_string()))?;
        // The turn markers must be control tokens: only those does plain-text tokenizing leave
        // alone. A model whose markers are ordinary added tokens would let typed text open turns.
        let special = |text: &str| -> Result<LlamaToken, LocalModelError> {
            let vocab = model.vocab();
            match vocab.tokenize(text.as_bytes(), false, true).as_slice() {
                [token] if vocab.is_control(*token) => Ok(*token),
                _ => Err(LocalModelError::Format(format!(
                    "the model has no {text} control token; only ChatML models are supported"
                ))),
            }
        };
        let im_start = special("<|im_start|>")?;
        let im_end = special("<|im_end|>")?;
        let context_length = usize::try_from(model.n_ctx_train()).unwrap_or(usize::MAX);
        // The file's name ("SmolLM2-135M-Instruct.Q4_1.gguf") reads better than some files'
        // `general.name` ("Smollm2 135M 8k Lc100K Mix1 Ep2").
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('.').next())
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .or_else(|| model.meta_val_str("general.name").ok())
            .unwrap_or_else(|| "local model".to_owned());
        Ok(Arc::new(Self {
            model,
            backend,
            im_start,
            im_end,
            context_length,
            name,
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The context length the model was trained for.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Token ids of `text` as plain text: a `<|im_start|>` typed by a person is the characters
    /// `<`, `|`, … and never the control token.
    pub fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        if text.is_empty() {
            return Vec::new();
        }
        self.model.vocab().tokenize(text.as_bytes(), false, false)
    }

    /// The text of `tokens`; control tokens are left out.
    pub fn detokenize(&self, tokens: &[LlamaToken]) -> String {
        let vocab = self.model.vocab();
        let bytes: Vec<u8> = tokens
            .iter()
            .flat_map(|t| vocab.token_to_piece(*t, false, None))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The control tokens that open and close a ChatML turn.
    pub fn turn_markers(&self) -> (LlamaToken, LlamaToken) {
        (self.im_start, self.im_end)
    }

    /// Tokens one message costs in the prompt, its ChatML framing included.
    /// Counted with the longest role name, so it holds for every role.
    pub fn message_tokens(&self, content: &str) -> usize {
        // <|im_start|> role "\n" content <|im_end|> "\n"
        self.tokenize(&format!("assistant\n{content}"))
            .len()
            .saturating_add(3)
    }

    /// Tokens of the prompt besides its messages: the system turn (the default one if `system` is
    /// empty) and the opening of the reply.
    pub fn framing_tokens(&self, system: Option<&str>) -> usize {
        self.prompt_tokens(&ChatRequest {
            model: String::new(),
            system: system.map(str::to_owned),
            messages: Vec::new(),
            max_output_tokens: None,
            thinking_budget: None,
            requester: None,
        })
        .len()
    }

    /// The prompt for `request` in ChatML, as token ids. Control tokens are placed by id; every
    /// text between them is tokenized as plain text. A partial reply to continue is prefilled:
    /// the prompt then ends inside the assistant's turn.
    pub fn prompt_tokens(&self, request: &ChatRequest) -> Vec<LlamaToken> {
        let system = request
            .system
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(DEFAULT_SYSTEM);
        let newline = self.tokenize("\n");
        let mut tokens = Vec::new();
        let turn = |tokens: &mut Vec<LlamaToken>, text: &str, closed: bool| {
            tokens.push(self.im_start);
            tokens.extend(self.tokenize(text));
            if closed {
                tokens.push(self.im_end);
                tokens.extend_from_slice(&newline);
            }
        };
        turn(&mut tokens, &format!("system\n{system}"), true);
        let (history, partial) = request.split_partial();
        for message in history {
            let text = format!("{}\n{}", role_name(message.role), message.content);
            turn(&mut tokens, &text, true);
        }
        turn(
            &mut tokens,
            &format!("assistant\n{}", partial.unwrap_or("")),
            false,
        );
        tokens
    }

    /// A generation session: its own key/value cache of `config.context_tokens` cells.
    pub fn session(&self, config: &SessionConfig) -> Result<Session<'_>, LocalModelError> {
        let context_tokens = config.context_tokens.min(self.context_length).max(1);
        let cells = u32::try_from(context_tokens).unwrap_or(u32::MAX);
        let threads = i32::try_from(config.threads.max(1)).unwrap_or(1);
        let chunk = u32::try_from(PREFILL_CHUNK).unwrap_or(u32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(cells))
            .with_n_batch(chunk)
            .with_n_ubatch(chunk)
            .with_n_seq_max(u32::try_from(CACHE_SLOTS).unwrap_or(1))
            .with_kv_unified(true)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            // Measured on one thread (docs/decisions.md): flash attention slows decode of long
            // conversations here, and an 8-bit K cache costs nothing in speed for a quarter
            // less memory (an 8-bit V cache would need flash attention).
            .with_flash_attention_policy(FLASH_ATTENTION_DISABLED)
            .with_type_k(KvCacheType::Q8_0)
            .with_type_v(KvCacheType::F16);
        let context = self
            .model
            .new_context(self.backend, params)
            .map_err(|e| LocalModelError::Inference(format!("cannot create a context: {e}")))?;
        Ok(Session {
            model: self,
            context,
            slots: CacheSlots::new(CACHE_SLOTS, context_tokens),
            context_tokens,
            batch: LlamaBatch::new(PREFILL_CHUNK, 1),
        })
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// The work one generation did, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were already cached.
    pub reused: usize,
    /// Prompt tokens computed.
    pub prefilled: usize,
    pub generated: usize,
}

pub struct Session<'m> {
    model: &'m LocalModel,
    context: LlamaContext<'m>,
    slots: CacheSlots<LlamaToken>,
    context_tokens: usize,
    batch: LlamaBatch<'static>,
}

impl Session<'_> {
    /// Longest prompt plus reply.
    pub fn context_tokens(&self) -> usize {
        self.context_tokens
    }

    /// Generates a reply, calling `on_event` for each event; stops early when it returns false
    /// or, during the prompt, as soon as `stopped` says so.
    pub fn generate(
        &mut self,
        request: &ChatRequest,
        max_output_tokens: u32,
        sampling: &SamplingConfig,
        on_event: &mut dyn FnMut(ProviderEvent) -> bool,
        stopped: &dyn Fn() -> bool,
    ) -> Result<Generation, LocalModelError> {
        let prompt = self.model.prompt_tokens(request);
        let room = self.context_tokens.saturating_sub(prompt.len());
        if room == 0 {
            return Err(LocalModelError::TooLong {
                prompt: prompt.len(),
                context: self.context_tokens,
            });
        }
        let requested = request.max_output_tokens.unwrap_or(max_output_tokens);
        let max_new = usize::try_from(requested)
            .unwrap_or(usize::MAX)
            .clamp(1, room);
        let mut generation = Generation {
            prompt_tokens: prompt.len(),
            ..Generation::default()
        };

        let plan = self.slots.plan(&prompt, max_new);
        for slot in &plan.evict {
            self.forget(*slot);
        }
        let slot = plan.slot;
        if let Some(shift) = plan.shift {
            self.cut(slot, shift)?;
        }
        self.remove_from(slot, plan.reuse)?;
        generation.reused = plan.reuse;

        // The prompt, a chunk at a time; only its last token's logits are needed.
        let mut position = plan.reuse;
        for chunk in prompt[plan.reuse..].chunks(PREFILL_CHUNK) {
            if stopped() {
                return Ok(generation);
            }
            let last = position + chunk.len() == prompt.len();
            self.batch.clear();
            for (i, token) in chunk.iter().enumerate() {
                let logits = last && i + 1 == chunk.len();
                self.add(*token, position + i, slot, logits)?;
            }
            self.decode(slot)?;
            self.slots.extend(slot, chunk);
            position += chunk.len();
            generation.prefilled += chunk.len();
        }

        let mut sampler = sampler(sampling, &self.model.model);
        let recent = prompt.len().saturating_sub(sampling.repeat_last_n);
        sampler.accept_many(&prompt[recent..]);
        let mut logits_at = self.batch.n_tokens() - 1;
        let model = self.model;
        let vocab = model.model.vocab();
        let mut text = TextStream::default();
        let mut finish = FinishReason::Length;
        while generation.generated < max_new {
            let token = sampler.sample(&self.context, logits_at);
            if vocab.is_eog(token) {
                finish = FinishReason::Stop;
                break;
            }
            generation.generated += 1;
            if let Some(delta) = text.push(&vocab.token_to_piece(token, false, None)) {
                if !on_event(ProviderEvent::TextDelta(delta)) {
                    return Ok(generation);
                }
            }
            if generation.generated < max_new {
                self.batch.clear();
                self.add(token, position, slot, true)?;
                self.decode(slot)?;
                self.slots.extend(slot, &[token]);
                position += 1;
                logits_at = 0;
            }
        }
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let usage = Usage {
            input_tokens: count(generation.prompt_tokens),
            cached_input_tokens: count(generation.reused),
            output_tokens: count(generation.generated),
            ..Usage::default()
        };
        let _ = on_event(ProviderEvent::Finished(finish)) && on_event(ProviderEvent::Usage(usage));
        Ok(generation)
    }

    fn add(
        &mut self,
        token: LlamaToken,
        position: usize,
        slot: usize,
        logits: bool,
    ) -> Result<(), LocalModelError> {
        let position = i32::try_from(position)
            .map_err(|_| LocalModelError::Inference("position out of range".into()))?;
        let slot = i32::try_from(slot).unwrap_or(0);
        self.batch
            .add(token, position, &[slot], logits)
            .map_err(|e| LocalModelError::Inference(e.to_string()))
    }

    /// Computes the batch; on failure the slot's cache contents are unknown, so it is emptied.
    fn decode(&mut self, slot: usize) -> Result<(), LocalModelError> {
        self.context.decode(&mut self.batch).map_err(|e| {
            self.forget(slot);
            LocalModelError::Inference(e.to_string())
        })
    }

    /// Drops a slot's cached tokens from `from` on.
    fn remove_from(&mut self, slot: usize, from: usize) -> Result<(), LocalModelError> {
        let seq = u32::try_from(slot).ok();
        let from = u32::try_from(from).ok();
        match self.context.clear_kv_cache_seq(seq, from, None) {
            Ok(true) => Ok(()),
            _ => {
                self.forget(slot);
                Err(LocalModelError::Inference(
                    "cannot trim the key/value cache".into(),
                ))
            }
        }
    }

    /// Cuts the messages a trimmed prompt left out and moves the rest back; llama.cpp re-rotates
    /// the moved keys to their new positions before the next computation.
    fn cut(&mut self, slot: usize, shift: Shift) -> Result<(), LocalModelError> {
        let failed = |session: &mut Self| {
            session.forget(slot);
            LocalModelError::Inference("cannot shift the key/value cache".into())
        };
        let (Ok(seq), Ok(at), Ok(end), Ok(delta)) = (
            u32::try_from(slot),
            u32::try_from(shift.at),
            u32::try_from(shift.at.saturating_add(shift.gap)),
            i32::try_from(shift.gap),
        ) else {
            return Err(failed(self));
        };
        if !matches!(
            self.context
                .clear_kv_cache_seq(Some(seq), Some(at), Some(end)),
            Ok(true)
        ) {
            return Err(failed(self));
        }
        let moved = i32::try_from(seq).ok().and_then(|seq| {
            self.context
                .kv_cache_seq_add(seq, Some(end), None, -delta)
                .ok()
        });
        moved.ok_or_else(|| failed(self))
    }

    /// Empties the whole cache: after a panic nothing about it can be trusted.
    pub fn reset(&mut self) {
        self.context.clear_kv_cache();
        self.slots = CacheSlots::new(CACHE_SLOTS, self.context_tokens);
    }

    fn forget(&mut self, slot: usize) {
        self.slots.forget(slot);
        if let Ok(seq) = u32::try_from(slot) {
            let _ = self.context.clear_kv_cache_seq(Some(seq), None, None);
        }
    }
}

fn sampler(sampling: &SamplingConfig, model: &LlamaModel) -> LlamaSampler {
    if sampling.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    let seed = sampling.seed.unwrap_or_else(super::random_seed);
    LlamaSampler::chain_simple([
        LlamaSampler::penalties(
            model.n_vocab(),
            i32::try_from(sampling.repeat_last_n).unwrap_or(i32::MAX),
            sampling.repeat_penalty,
            0.0,
            0.0,
        ),
        LlamaSampler::top_k(i32::try_from(sampling.top_k).unwrap_or(i32::MAX)),
        LlamaSampler::top_p(sampling.top_p as f32, 1),
        LlamaSampler::temp(sampling.temperature as f32),
        // llama.cpp takes a 32-bit seed; folding keeps every bit of ours in play.
        LlamaSampler::dist((seed ^ (seed >> 32)) as u32),
    ])
}
