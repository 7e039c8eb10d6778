//! Every setting Rill reads, in one place. Each is documented in `.env.example`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Debug)]
pub struct Config {
    /// SQLite database file (`RILL_DATABASE`, default `data/rill.db`).
    pub database_path: PathBuf,
    /// Until accounts exist, every conversation belongs to this owner (`RILL_OWNER`, default `local`).
    pub owner: String,
    pub providers: Vec<ProviderConfig>,
    /// `provider/model` used for new conversations (`RILL_DEFAULT_MODEL`, default: the first model).
    pub default_model: Option<String>,
    /// Delay between the development model's words (`RILL_DEV_WORD_DELAY_MS`, default 40).
    pub dev_word_delay: Duration,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ProviderConfig {
    /// Prefix of this provider's model ids (`openai` → `openai/gpt-4o-mini`).
    pub id: String,
    /// The API root, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The key itself is never put in the file; only the name of the variable holding it.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(skip)]
    pub api_key: Option<String>,
    pub models: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The optional TOML file named by `RILL_CONFIG`; the environment wins over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database: Option<PathBuf>,
    default_model: Option<String>,
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Builds the config from any variable source, so tests need not touch the process environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = match var("RILL_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })?
            }
            None => FileConfig::default(),
        };
        let mut providers = file.providers;
        for provider in &mut providers {
            provider.api_key = provider.api_key_env.as_deref().and_then(&var);
        }
        if let Some(key) = var("OPENAI_API_KEY") {
            providers.push(ProviderConfig {
                id: "openai".into(),
                base_url: var("RILL_OPENAI_BASE_URL")
                    .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                api_key_env: Some("OPENAI_API_KEY".into()),
                api_key: Some(key),
                models: list(var("RILL_OPENAI_MODELS"))
                    .unwrap_or_else(|| vec!["gpt-4o-mini".into(), "gpt-4o".into()]),
            });
        }
        if let Some(base_url) = var("RILL_OPENAI_COMPAT_URL") {
            providers.push(ProviderConfig {
                id: var("RILL_OPENAI_COMPAT_NAME").unwrap_or_else(|| "compat".into()),
                base_url,
                api_key_env: Some("RILL_OPENAI_COMPAT_API_KEY".into()),
                api_key: var("RILL_OPENAI_COMPAT_API_KEY"),
                models: list(var("RILL_OPENAI_COMPAT_MODELS")).ok_or_else(|| {
                    ConfigError::Invalid(
                        "RILL_OPENAI_COMPAT_URL is set but RILL_OPENAI_COMPAT_MODELS is not".into(),
                    )
                })?,
            });
        }
        for p in &providers {
            if p.id.is_empty() || p.id.contains('/') {
                return Err(ConfigError::Invalid(format!(
                    "provider id {:?} must be non-empty and contain no '/'",
                    p.id
                )));
            }
            if p.models.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "provider {} lists no models",
                    p.id
                )));
            }
        }
        let dev_word_delay = match var("RILL_DEV_WORD_DELAY_MS") {
            Some(ms) => Duration::from_millis(ms.parse().map_err(|_| {
                ConfigError::Invalid(format!("RILL_DEV_WORD_DELAY_MS={ms} is not a number"))
            })?),
            None => Duration::from_millis(40),
        };
        Ok(Self {
            database_path: var("RILL_DATABASE")
                .map(PathBuf::from)
                .or(file.database)
                .unwrap_or_else(|| "data/rill.db".into()),
            owner: var("RILL_OWNER").unwrap_or_else(|| "local".into()),
            providers,
            default_model: var("RILL_DEFAULT_MODEL").or(file.default_model),
            dev_word_delay,
        })
    }
}

fn list(value: Option<String>) -> Option<Vec<String>> {
    let items: Vec<String> = value?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_need_nothing() {
        let c = config(&[]).expect("config");
        assert_eq!(c.database_path, PathBuf::from("data/rill.db"));
        assert_eq!(c.owner, "local");
        assert!(c.providers.is_empty());
    }

    #[test]
    fn env_adds_openai_and_a_compatible_server() {
        let c = config(&[
            ("OPENAI_API_KEY", "sk-test"),
            ("RILL_OPENAI_COMPAT_URL", "http://127.0.0.1:11434/v1"),
            ("RILL_OPENAI_COMPAT_NAME", "ollama"),
            ("RILL_OPENAI_COMPAT_MODELS", "llama3.2, qwen2.5"),
        ])
        .expect("config");
        assert_eq!(c.providers[0].id, "openai");
        assert_eq!(c.providers[0].api_key.as_deref(), Some("sk-test"));
        assert_eq!(c.providers[1].models, vec!["llama3.2", "qwen2.5"]);
    }

    #[test]
    fn a_compatible_server_without_models_is_an_error() {
        let err = config(&[("RILL_OPENAI_COMPAT_URL", "http://x")]).expect_err("must fail");
        assert!(err.to_string().contains("RILL_OPENAI_COMPAT_MODELS"));
    }

    #[test]
    fn file_providers_take_keys_from_named_variables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rill.toml");
        std::fs::write(
            &path,
            "default_model = \"vllm/qwen\"\n[[providers]]\nid = \"vllm\"\nbase_url = \"http://127.0.0.1:8000/v1\"\napi_key_env = \"VLLM_KEY\"\nmodels = [\"qwen\"]\n",
        )
        .expect("write");
        let path = path.to_string_lossy().into_owned();
        let c = config(&[("RILL_CONFIG", path.as_str()), ("VLLM_KEY", "k")]).expect("config");
        assert_eq!(c.providers[0].api_key.as_deref(), Some("k"));
        assert_eq!(c.default_model.as_deref(), Some("vllm/qwen"));
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "nonsense = 1\n").expect("write");
        let bad = bad.to_string_lossy().into_owned();
        assert!(config(&[("RILL_CONFIG", bad.as_str())]).is_err());
    }
}
