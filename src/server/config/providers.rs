//! Model providers: the hosted ones their keys switch on, an OpenAI-compatible server, and the
//! `[[providers]]` of the optional TOML file, which also carries prices and a few settings.

use std::collections::HashMap;

use serde::Deserialize;

use super::settings::{self, Env, List, Optional, Setting, Text};
use super::ConfigError;
use crate::server::pricing::PriceEntry;

/// Which wire protocol a provider speaks.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI itself: chat completions, models from the config.
    Openai,
    /// Any server speaking OpenAI chat completions (Ollama, llama.cpp, vLLM, OpenRouter, Groq …):
    /// the key is optional and the models are listed by the server where it offers `GET /models`.
    #[default]
    OpenaiCompatible,
    Anthropic,
    Gemini,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ProviderConfig {
    /// Prefix of this provider's model ids (`openai` → `openai/gpt-4o-mini`).
    pub id: String,
    #[serde(default)]
    pub kind: ProviderKind,
    /// The API root, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The key itself is never put in the file; only the name of the variable holding it.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(skip)]
    pub api_key: Option<String>,
    /// For `openai_compatible`, optional: the server's own list is used where it offers one.
    #[serde(default)]
    pub models: Vec<String>,
}

/// The optional TOML file named by [`settings::CONFIG`]; the environment wins over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub database: Option<String>,
    pub default_model: Option<String>,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub prices: HashMap<String, PriceEntry>,
}

impl FileConfig {
    /// The file, or an empty one when none is named.
    pub(super) fn read(env: &Env) -> Result<Self, ConfigError> {
        let Some(path) = env.optional(&settings::CONFIG) else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })
    }
}

/// A hosted provider, added when its key is set.
struct Hosted {
    kind: ProviderKind,
    id: &'static str,
    key: &'static Setting<Optional>,
    base_url: &'static Setting<Text>,
    models: &'static Setting<List>,
}

const HOSTED: [Hosted; 3] = [
    Hosted {
        kind: ProviderKind::Openai,
        id: "openai",
        key: &settings::OPENAI_KEY,
        base_url: &settings::OPENAI_BASE_URL,
        models: &settings::OPENAI_MODELS,
    },
    Hosted {
        kind: ProviderKind::Anthropic,
        id: "anthropic",
        key: &settings::ANTHROPIC_KEY,
        base_url: &settings::ANTHROPIC_BASE_URL,
        models: &settings::ANTHROPIC_MODELS,
    },
    Hosted {
        kind: ProviderKind::Gemini,
        id: "gemini",
        key: &settings::GEMINI_KEY,
        base_url: &settings::GEMINI_BASE_URL,
        models: &settings::GEMINI_MODELS,
    },
];

/// The file's providers (with their keys), then each hosted one whose key is set, then the
/// OpenAI-compatible server; refused if an id is bad or a provider lacks what it needs.
pub(super) fn providers(
    env: &Env,
    mut providers: Vec<ProviderConfig>,
) -> Result<Vec<ProviderConfig>, ConfigError> {
    for provider in &mut providers {
        provider.api_key = provider.api_key_env.as_deref().and_then(|n| env.named(n));
    }
    for hosted in &HOSTED {
        let Some(key) = env.optional(hosted.key) else {
            continue;
        };
        providers.push(ProviderConfig {
            id: hosted.id.into(),
            kind: hosted.kind,
            base_url: env.text(hosted.base_url),
            api_key_env: Some(hosted.key.name.into()),
            api_key: Some(key),
            models: env.list(hosted.models),
        });
    }
    if let Some(base_url) = env.optional(&settings::OPENAI_COMPAT_URL) {
        providers.push(ProviderConfig {
            id: env.text(&settings::OPENAI_COMPAT_NAME),
            kind: ProviderKind::OpenaiCompatible,
            base_url,
            api_key_env: Some(settings::OPENAI_COMPAT_API_KEY.name.into()),
            api_key: env.optional(&settings::OPENAI_COMPAT_API_KEY),
            models: env.list(&settings::OPENAI_COMPAT_MODELS),
        });
    }
    check(&providers)?;
    Ok(providers)
}

fn check(providers: &[ProviderConfig]) -> Result<(), ConfigError> {
    for p in providers {
        if p.id.is_empty() || p.id.contains('/') {
            return Err(ConfigError::Invalid(format!(
                "provider id {:?} must be non-empty and contain no '/'",
                p.id
            )));
        }
        if p.id == "local" || p.id == "dev" {
            return Err(ConfigError::Invalid(format!(
                "provider id {:?} is reserved for the built-in models",
                p.id
            )));
        }
        if providers.iter().filter(|q| q.id == p.id).count() > 1 {
            return Err(ConfigError::Invalid(format!(
                "provider id {:?} is used twice",
                p.id
            )));
        }
        if p.kind != ProviderKind::OpenaiCompatible {
            if p.models.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "provider {} lists no models",
                    p.id
                )));
            }
            if p.api_key.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "provider {} needs an API key: set {}",
                    p.id,
                    p.api_key_env
                        .as_deref()
                        .unwrap_or("its api_key_env variable")
                )));
            }
        }
    }
    Ok(())
}
