//! The catalog of models the picker offers and the provider behind each. A model id is
//! `provider/model`, e.g. `openai/gpt-4o-mini`; the part after the first `/` goes to the provider.

use std::sync::Arc;

use llm::dev::DevProvider;
use llm::openai_compat::OpenAiCompatible;
use llm::Provider;

use super::config::Config;

/// Used only when no provider is configured.
pub const DEV_MODEL: &str = "dev/echo";

pub struct ModelCatalog {
    entries: Vec<ModelEntry>,
    default_model: String,
}

struct ModelEntry {
    id: String,
    model: String,
    provider: Arc<dyn Provider>,
}

impl ModelCatalog {
    pub fn from_config(config: &Config) -> Self {
        let http = llm::http_client();
        let mut entries = Vec::new();
        for p in &config.providers {
            let provider: Arc<dyn Provider> = Arc::new(OpenAiCompatible::new(
                http.clone(),
                &p.base_url,
                p.api_key.clone(),
            ));
            for model in &p.models {
                entries.push(ModelEntry {
                    id: format!("{}/{model}", p.id),
                    model: model.clone(),
                    provider: provider.clone(),
                });
            }
        }
        if entries.is_empty() {
            entries.push(ModelEntry {
                id: DEV_MODEL.to_owned(),
                model: "echo".to_owned(),
                provider: Arc::new(DevProvider::new(config.dev_word_delay)),
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
        }
    }

    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    /// The provider and its own model name for a Rill model id.
    pub fn resolve(&self, id: &str) -> Option<(Arc<dyn Provider>, String)> {
        self.entries
            .iter()
            .find(|e| e.id == id)
            .map(|e| (e.provider.clone(), e.model.clone()))
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.id.as_str())
    }
}
