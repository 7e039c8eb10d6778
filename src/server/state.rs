use std::sync::Arc;

use sqlx::SqlitePool;

use super::config::Config;
use super::db::Owner;
use super::models::ModelCatalog;
use super::turns::TurnHub;
use crate::error::ApiError;

/// Everything a request needs; cheap to clone. Provided to SSR and server functions as context.
#[derive(Clone)]
pub struct AppState {
    pub pool: SqlitePool,
    pub config: Arc<Config>,
    pub models: Arc<ModelCatalog>,
    pub turns: Arc<TurnHub>,
}

impl AppState {
    pub fn new(pool: SqlitePool, config: Config) -> Self {
        let models = Arc::new(ModelCatalog::from_config(&config));
        Self {
            pool,
            config: Arc::new(config),
            models,
            turns: Arc::new(TurnHub::default()),
        }
    }

    /// The state and the requesting owner, inside a server function.
    pub fn from_context() -> Result<(Self, Owner), ApiError> {
        let state = leptos::prelude::use_context::<Self>().ok_or_else(|| {
            tracing::error!("AppState missing from the request context");
            ApiError::Internal
        })?;
        // Accounts come later; until then every request acts as the configured owner.
        let owner = Owner(state.config.owner.clone());
        Ok((state, owner))
    }
}
