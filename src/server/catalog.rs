//! The catalog of models the picker offers and the provider behind each. A model id is
//! `provider/model`, e.g. `openai/gpt-4o-mini`; the part after the first `/` goes to the provider.

use std::sync::Arc;

use std::time::Duration;

use llm::anthropic::Anthropic;
use llm::dev::DevProvider;
use llm::gemini::Gemini;
use llm::local::{LocalModelConfig, LocalProvider, QueueConfig, SamplingConfig, SessionConfig};
use llm::openai_compat::{MaxTokensField, OpenAiCompatible};
use llm::{Provider, StreamLimits};

use super::config::{Config, LocalModelSettings, ProviderConfig, ProviderKind};
use super::pricing::PriceTable;
use crate::model::{ModelGroup, ModelMenu, ModelOption};

/// The in-process model's id in the catalog.
pub const LOCAL_MODEL: &str = "local/smollm2-135m";
/// Canned replies, offered only when no real model is available.
pub const DEV_MODEL: &str = "dev/echo";

/// What became of the local model at start-up.
pub enum LocalModelStatus {
    Disabled,
    /// The file is not there; the picker tells how to get it.
    Missing {
        hint: String,
    },
    Failed {
        error: String,
    },
    Ready(Arc<LocalProvider>),
}

impl LocalModelStatus {
    /// Loads the model if its file exists. Blocking (about a second): call off the async runtime.
    pub fn load(settings: Option<&LocalModelSettings>) -> Self {
        let Some(settings) = settings else {
            return Self::Disabled;
        };
        if !settings.path.exists() {
            return Self::Missing {
                hint: format!(
                    "The local model is not downloaded: run `bash scripts/fetch-model.sh` (or point RILL_LOCAL_MODEL at a GGUF file; looked for {}).",
                    settings.path.display()
                ),
            };
        }
        let config = LocalModelConfig {
            path: settings.path.clone(),
            max_output_tokens: settings.max_output_tokens,
            sampling: SamplingConfig::default(),
            session: SessionConfig {
                context_tokens: settings.context_tokens,
                threads: settings.threads,
            },
            queue: QueueConfig {
                max_waiting: settings.queue,
                max_wait: settings.queue_wait,
            },
        };
        match LocalProvider::start(config) {
            Ok(provider) => {
                tracing::info!(model = %provider.info.name, threads = settings.threads, "local model loaded");
                Self::Ready(Arc::new(provider))
            }
            Err(e) => {
                tracing::error!("local model failed to load: {e}");
                Self::Failed {
                    error: format!("The local model failed to load: {e}"),
                }
            }
        }
    }
}

pub struct ModelCatalog {
    entries: Vec<ModelEntry>,
    default_model: String,
    /// Things the person choosing a model should know (e.g. how to fetch the local model).
    notices: Vec<String>,
    /// The built-in model, for its queue depth.
    local: Option<Arc<LocalProvider>>,
}

/// One model the picker offers.
pub struct ModelEntry {
    /// `provider/model`.
    pub id: String,
    /// The provider's own name for the model.
    pub model: String,
    /// Said in the picker after the model's name (which is `format::model_name(id)`).
    pub note: Option<String>,
    /// Provider heading in the picker.
    pub group: String,
    pub provider: Arc<dyn Provider>,
    pub limits: ModelLimits,
}

/// What a turn must fit into for one model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelLimits {
    /// Prompt and reply tokens together.
    pub context_tokens: u32,
    /// Most tokens to ask for in one reply.
    pub max_output_tokens: u32,
    /// Asks the model to think first, in at most this many tokens, and to stream its thinking
    /// (`ChatRequest::thinking_budget`); `None` asks nothing.
    pub thinking_tokens: Option<u32>,
    /// The model reads images (hosted models unless their price entry says `images = false`;
    /// never the local or development model). An image sent to one that cannot is refused
    /// before any request.
    pub sees_images: bool,
}

/// What the picker says after a model's name: its own note, and "cannot see images" for a model
/// that cannot (an image sent to it is refused; the refusal points here). Models that see carry
/// no mark: most do, and on a phone the picker's row has no room for a word more.
fn picker_note(entry: &ModelEntry) -> Option<String> {
    const BLIND: &str = "cannot see images";
    match (&entry.note, entry.limits.sees_images) {
        (Some(note), false) => Some(format!("{note}; {BLIND}")),
        (None, false) => Some(BLIND.to_owned()),
        (note, true) => note.clone(),
    }
}

/// A model id resolved for one turn.
#[derive(Clone)]
pub struct ResolvedModel {
    pub provider: Arc<dyn Provider>,
    /// The provider's own name for the model.
    pub model: String,
    pub limits: ModelLimits,
}

/// How long start-up waits for an OpenAI-compatible server's model list.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// A model a provider offers, with the context window its server reported, if any.
struct Offered {
    model: String,
    context_tokens: Option<u32>,
}

impl Offered {
    fn configured(models: &[String]) -> Vec<Self> {
        models
            .iter()
            .map(|m| Offered {
                model: m.clone(),
                context_tokens: None,
            })
            .collect()
    }
}

/// The provider client for `p` and the models it offers, or a notice saying why it has none.
async fn connect(
    http: &llm::HttpClient,
    p: &ProviderConfig,
    limits: &StreamLimits,
) -> Result<(Arc<dyn Provider>, Vec<Offered>), String> {
    let key = || p.api_key.clone().unwrap_or_default();
    let provider: Arc<dyn Provider> = match p.kind {
        ProviderKind::Anthropic => {
            Arc::new(Anthropic::new(http.clone(), &p.base_url, key()).with_limits(limits.clone()))
        }
        ProviderKind::Gemini => {
            Arc::new(Gemini::new(http.clone(), &p.base_url, key()).with_limits(limits.clone()))
        }
        ProviderKind::Openai => Arc::new(
            OpenAiCompatible::new(http.clone(), &p.base_url, p.api_key.clone())
                .with_limits(limits.clone())
                .with_max_tokens_field(MaxTokensField::MaxCompletionTokens),
        ),
        ProviderKind::OpenaiCompatible => {
            let client = OpenAiCompatible::new(http.clone(), &p.base_url, p.api_key.clone())
                .with_limits(limits.clone());
            // The server's own list where it offers one, then any configured model it did not
            // list; the configured list alone where it offers none.
            let mut models: Vec<Offered> = match client.list_models(DISCOVERY_TIMEOUT).await {
                Ok(listed) => listed
                    .into_iter()
                    .map(|m| Offered {
                        model: m.id,
                        context_tokens: m.context_tokens,
                    })
                    .collect(),
                Err(e) if !p.models.is_empty() => {
                    tracing::info!(provider = %p.id, "no model list from the server ({e}); using the configured models");
                    Vec::new()
                }
                Err(e) => {
                    return Err(format!(
                        "{}: could not list the server's models ({e}), and none are configured (RILL_OPENAI_COMPAT_MODELS or `models` in the config file).",
                        p.id
                    ))
                }
            };
            for m in Offered::configured(&p.models) {
                if !models.iter().any(|o| o.model == m.model) {
                    models.push(m);
                }
            }
            if models.is_empty() {
                return Err(format!("{}: the server lists no models.", p.id));
            }
            return Ok((Arc::new(client), models));
        }
    };
    Ok((provider, Offered::configured(&p.models)))
}

impl ModelCatalog {
    /// Builds the catalog: every configured provider's models (asking OpenAI-compatible servers
    /// for their list), then the local model, with the development model only as a last resort.
    /// Each model's limits come from its server's own report, then the price table, then the
    /// configured defaults.
    pub async fn build(config: &Config, local: LocalModelStatus, prices: &PriceTable) -> Self {
        let http = llm::http_client();
        let stream_limits = StreamLimits {
            idle: config.turns.provider_idle,
            ..StreamLimits::default()
        };
        let limits_for = |id: &str, reported: Option<u32>| {
            let entry = prices.entry(id);
            let context_tokens = reported
                .or_else(|| entry.and_then(|e| e.context_tokens))
                .unwrap_or(config.turns.default_context_tokens);
            let max_output_tokens = entry
                .and_then(|e| e.max_output_tokens)
                .map_or(config.turns.max_output_tokens, |m| {
                    m.min(config.turns.max_output_tokens)
                });
            ModelLimits {
                context_tokens,
                max_output_tokens,
                thinking_tokens: entry.and_then(|e| e.thinking_tokens).filter(|t| *t > 0),
                sees_images: entry.and_then(|e| e.images).unwrap_or(true),
            }
        };
        let mut entries = Vec::new();
        let mut notices = Vec::new();
        for p in &config.providers {
            let (provider, models) = match connect(&http, p, &stream_limits).await {
                Ok(found) => found,
                Err(notice) => {
                    notices.push(notice);
                    continue;
                }
            };
            for offered in models {
                let id = format!("{}/{}", p.id, offered.model);
                entries.push(ModelEntry {
                    limits: limits_for(&id, offered.context_tokens),
                    id,
                    note: None,
                    model: offered.model,
                    group: p.id.clone(),
                    provider: provider.clone(),
                });
            }
        }
        let hosted = !entries.is_empty();
        let mut local_provider = None;
        match local {
            LocalModelStatus::Ready(provider) => {
                local_provider = Some(provider.clone());
                // With no hosted provider the local model comes first, and so is the default.
                let entry = ModelEntry {
                    id: LOCAL_MODEL.to_owned(),
                    model: provider.info.name.clone(),
                    note: Some(format!("{}, on this server, no key", provider.info.name)),
                    group: "local".to_owned(),
                    limits: ModelLimits {
                        context_tokens: u32::try_from(provider.info.context_length)
                            .unwrap_or(u32::MAX),
                        max_output_tokens: config
                            .local_model
                            .as_ref()
                            .map_or(config.turns.max_output_tokens, |l| l.max_output_tokens),
                        thinking_tokens: None,
                        sees_images: false,
                    },
                    provider,
                };
                if hosted {
                    entries.push(entry);
                } else {
                    entries.insert(0, entry);
                }
            }
            LocalModelStatus::Missing { hint: message }
            | LocalModelStatus::Failed { error: message } => notices.push(message),
            LocalModelStatus::Disabled => {}
        }
        if entries.is_empty() {
            entries.push(ModelEntry {
                id: DEV_MODEL.to_owned(),
                model: "echo".to_owned(),
                note: Some("canned replies, for development".to_owned()),
                group: "dev".to_owned(),
                provider: Arc::new(DevProvider::new(config.dev_word_delay)),
                limits: ModelLimits {
                    sees_images: false,
                    ..limits_for(DEV_MODEL, None)
                },
            });
        }
        let default_model = config
            .default_model
            .clone()
            .filter(|wanted| entries.iter().any(|e| &e.id == wanted))
            .unwrap_or_else(|| entries[0].id.clone());
        Self {
            entries,
            default_model,
            notices,
            local: local_provider,
        }
    }

    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    /// Adds a model (or replaces the one with its id): for embedding Rill with a provider of
    /// one's own, and for tests.
    pub fn insert(&mut self, entry: ModelEntry) {
        self.entries.retain(|e| e.id != entry.id);
        self.entries.push(entry);
    }

    /// The provider, its own model name and the limits for a Rill model id.
    pub fn resolve(&self, id: &str) -> Option<ResolvedModel> {
        self.entries
            .iter()
            .find(|e| e.id == id)
            .map(|e| ResolvedModel {
                provider: e.provider.clone(),
                model: e.model.clone(),
                limits: e.limits,
            })
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.id.as_str())
    }

    /// Requests waiting for or running on the built-in model (0 without one).
    pub fn local_queue_depth(&self) -> usize {
        self.local.as_ref().map_or(0, |l| l.pending())
    }

    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// The picker's contents: models grouped by provider, in configuration order, with prices.
    pub fn menu(&self, prices: &PriceTable) -> ModelMenu {
        let mut groups: Vec<ModelGroup> = Vec::new();
        for e in &self.entries {
            let option = ModelOption {
                id: e.id.clone(),
                note: picker_note(e),
                price: prices.price(&e.id).cloned(),
            };
            match groups.iter_mut().find(|g| g.provider == e.group) {
                Some(group) => group.models.push(option),
                None => groups.push(ModelGroup {
                    provider: e.group.clone(),
                    models: vec![option],
                }),
            }
        }
        ModelMenu {
            groups,
            default_model: self.default_model.clone(),
            notices: self.notices.clone(),
            prices_as_of: prices.as_of.clone(),
        }
    }
}
