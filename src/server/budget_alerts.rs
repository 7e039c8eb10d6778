//! Budget warnings for `RILL_BUDGET_WEBHOOK`. After a run's reservation is held, a task beside
//! the turn (never in its way) adds up the budgets the run fell under — the person's, each of
//! their groups', the API key's — and for each threshold (80 and 90 %) reached it claims the
//! warning in the database (`budget_alerts`: one row per budget, month and threshold, so a
//! restart or a second replica never sends it twice), then POSTs a small JSON, retrying a
//! failure a bounded number of times with backoff.

use std::time::Duration;

use serde_json::json;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::clock::SharedClock;
use super::db::{self, Db, DbError, Owner};
use crate::model::groups::{BudgetScope, BudgetUse};

/// Tries per warning: the first and three retries.
const TRIES: u32 = 4;
/// The wait before the first retry; doubled before each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How long one try may take.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);

/// The webhook's sender.
#[derive(Clone)]
pub struct BudgetAlerts {
    db: Db,
    url: reqwest::Url,
    client: reqwest::Client,
    clock: SharedClock,
    /// Shutdown waits for the warnings being sent.
    tasks: TaskTracker,
}

impl std::fmt::Debug for BudgetAlerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a token: never printed.
        f.debug_struct("BudgetAlerts").finish_non_exhaustive()
    }
}

/// An API key a run went through: its id and its own budget.
#[derive(Clone, Copy, Debug)]
pub struct KeyLimit {
    pub id: Uuid,
    pub budget: Option<f64>,
}

impl BudgetAlerts {
    pub fn new(db: Db, url: reqwest::Url, clock: SharedClock, tasks: TaskTracker) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TRY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            db,
            url,
            client,
            clock,
            tasks,
        }
    }

    /// Checks, beside the caller, whether `owner`'s spending in `month` (through `key`, if
    /// any) reached a threshold of a budget, and sends what it reached for the first time.
    pub fn check(&self, owner: Owner, key: Option<KeyLimit>, month: String) {
        let alerts = self.clone();
        self.tasks.spawn(async move {
            if let Err(e) = alerts.check_now(&owner, key, &month).await {
                tracing::warn!("could not check budget warnings: {e}");
            }
        });
    }

    async fn check_now(
        &self,
        owner: &Owner,
        key: Option<KeyLimit>,
        month: &str,
    ) -> Result<(), DbError> {
        let mut budgets = super::groups::budgets_by_id(&self.db, owner, month).await?;
        if let Some(KeyLimit {
            id,
            budget: Some(budget),
        }) = key
        {
            let (name, spent) = db::groups::key_month(&self.db, id, month).await?;
            budgets.push((
                id.to_string(),
                BudgetUse {
                    scope: BudgetScope::Key,
                    name,
                    budget_usd: budget,
                    spent_usd: spent,
                },
            ));
        }
        for (id, budget) in budgets {
            let Some(reached) = budget.warning() else {
                continue;
            };
            // Both thresholds at once when one run passed both: 80 is sent before 90.
            for threshold in [80u8, 90].into_iter().filter(|t| *t <= reached) {
                let scope = scope_word(budget.scope);
                let now = self.clock.now_ms();
                if db::groups::claim_alert(&self.db, scope, &id, month, threshold, now).await? {
                    self.send(scope, &id, month, threshold, &budget).await;
                }
            }
        }
        Ok(())
    }

    /// POSTs one claimed warning, retrying with backoff; each try is recorded.
    async fn send(&self, scope: &str, id: &str, month: &str, threshold: u8, budget: &BudgetUse) {
        let body = json!({
            "scope": scope,
            "id": id,
            "name": budget.name,
            "month": month,
            "threshold": threshold,
            "budget_usd": budget.budget_usd,
            "spent_usd": budget.spent_usd,
        });
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=TRIES {
            let taken = match self.client.post(self.url.clone()).json(&body).send().await {
                Ok(response) if response.status().is_success() => true,
                Ok(response) => {
                    tracing::warn!(status = %response.status(), attempt, "the budget webhook refused a warning");
                    false
                }
                Err(e) => {
                    // Without the URL (it may hold a token).
                    tracing::warn!(
                        attempt,
                        "the budget webhook could not be reached: {}",
                        e.without_url()
                    );
                    false
                }
            };
            let sent = taken.then(|| self.clock.now_ms());
            if let Err(e) =
                db::groups::record_alert_try(&self.db, scope, id, month, threshold, sent).await
            {
                tracing::warn!("could not record a budget warning's try: {e}");
            }
            if taken {
                return;
            }
            if attempt < TRIES {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        tracing::warn!(
            scope,
            threshold,
            "a budget warning was not taken after {TRIES} tries"
        );
    }
}

fn scope_word(scope: BudgetScope) -> &'static str {
    match scope {
        BudgetScope::Person => "person",
        BudgetScope::Group => "group",
        BudgetScope::Key => "key",
    }
}
