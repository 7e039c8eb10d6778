//! What a turn needs from the rest of the server, handed down to every part of the engine.

use std::sync::Arc;

use llm::RetryPolicy;
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::server::budget_alerts::BudgetAlerts;
use crate::server::catalog::ModelCatalog;
use crate::server::clock::SharedClock;
use crate::server::config::{Config, TurnSettings};
use crate::server::db::limits::SharedAdmission;
use crate::server::db::{self, Db, Engine, Owner};
use crate::server::limits::{LimitError, RunningSlot, TurnLimits};
use crate::server::pricing::PriceTable;

pub(super) struct Deps {
    pub db: Db,
    pub catalog: Arc<ModelCatalog>,
    pub prices: Arc<PriceTable>,
    pub settings: TurnSettings,
    pub retry: RetryPolicy,
    pub limits: TurnLimits,
    /// Runs are billed to the month this clock says they began in.
    pub clock: SharedClock,
    /// People with a budget may use models with no price (`RILL_ALLOW_UNPRICED_MODELS`).
    pub allow_unpriced_models: bool,
    /// Bytes one person may store (`RILL_STORAGE_QUOTA_MB`).
    pub storage_quota: Option<u64>,
    /// The system prompt a new conversation starts with when the page sets none.
    pub default_system_prompt: String,
    /// Titles are asked of a model after the first reply (`RILL_PLAIN_TITLES` unset).
    pub model_titles: bool,
    /// Where a new title is told to the pages following its conversation.
    pub titles: broadcast::Sender<TitleChange>,
    /// Every task a turn runs in, and what a run leaves behind it (a title's request): shutdown
    /// waits for them all, so none is writing when the database closes.
    pub tasks: TaskTracker,
    /// Budget warnings for `RILL_BUDGET_WEBHOOK`, when it is set.
    pub budget_alerts: Option<BudgetAlerts>,
}

impl Deps {
    pub fn new(
        db: Db,
        catalog: Arc<ModelCatalog>,
        prices: Arc<PriceTable>,
        config: &Config,
        clock: SharedClock,
    ) -> Self {
        let tasks = TaskTracker::new();
        let budget_alerts = config
            .limits
            .budget_webhook
            .clone()
            .map(|url| BudgetAlerts::new(db.clone(), url, clock.clone(), tasks.clone()));
        Self {
            db,
            catalog,
            prices,
            settings: config.turns.clone(),
            retry: RetryPolicy::default(),
            limits: TurnLimits::new(&config.limits),
            clock,
            allow_unpriced_models: config.limits.allow_unpriced_models,
            storage_quota: config.limits.storage_quota_bytes,
            default_system_prompt: config.conversations.default_system_prompt.clone(),
            model_titles: !config.conversations.plain_titles,
            // A title sent while a page's stream is busy waits here; a burst past this is
            // skipped (the page reads the title when it next loads).
            titles: broadcast::channel(64).0,
            tasks,
            budget_alerts,
        }
    }
}

impl Deps {
    /// Admits one more run of `owner`: under this replica's counts first (in memory, no
    /// waiting), then, on Postgres, under the counts every replica shares (`db::limits`). The
    /// run holds what is returned until it ends.
    pub async fn admit(&self, owner: &Owner) -> Result<Admitted, LimitError> {
        let slot = self.limits.admit(owner)?;
        let shared = db::limits::admit(
            &self.db,
            owner,
            self.limits.max_running(),
            self.limits.per_minute(),
        )
        .await;
        match shared {
            Ok(SharedAdmission::Admitted) => {}
            Ok(SharedAdmission::TooManyRunning(n)) => return Err(LimitError::TooManyRunning(n)),
            Ok(SharedAdmission::TooFast(wait)) => return Err(LimitError::TooFast(wait)),
            // This replica's own counts still hold; the turn's own writes will say if the
            // database is gone.
            Err(e) => tracing::warn!("could not count a run across replicas: {e}"),
        }
        Ok(Admitted {
            _slot: slot,
            shared: (self.db.engine() == Engine::Postgres)
                .then(|| (self.db.clone(), owner.clone())),
        })
    }
}

/// A run admitted under its owner's limits, counted until it is dropped.
pub struct Admitted {
    _slot: RunningSlot,
    /// Counted across replicas too: given back when the run ends.
    shared: Option<(Db, Owner)>,
}

impl Admitted {
    /// Gives the run's place back now (before its end is announced), not when dropped.
    pub async fn release(mut self) {
        if let Some((db, owner)) = self.shared.take() {
            if let Err(e) = db::limits::release(&db, &owner).await {
                tracing::warn!("could not count a run's end across replicas: {e}");
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((db, owner)) = self.shared.take() {
            tokio::spawn(async move {
                if let Err(e) = db::limits::release(&db, &owner).await {
                    tracing::warn!("could not count a run's end across replicas: {e}");
                }
            });
        }
    }
}

/// A conversation's title changed (for the pages following it).
#[derive(Clone, Debug)]
pub struct TitleChange {
    pub conversation_id: Uuid,
    pub title: String,
}
