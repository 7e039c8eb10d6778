//! Monthly budgets as a ledger. Before a run sends anything it reserves its worst case — a token
//! for every byte of the prompt, and its whole output cap, at the model's prices — against the
//! owner's month (their groups', the site's, an API key's), in the same write transaction that
//! adds up what is settled and what other runs hold; when it ends it is settled to its real
//! cost. So runs started at once cannot together pass a budget, and a run is billed to the
//! month it ran in. A refusal is a failed reply that cost nothing, with the question kept; no
//! provider request is made. A model the owner's groups do not allow is refused here too.

use llm::Usage;
use uuid::Uuid;

use super::deps::Deps;
use super::error::RunError;
use super::prompt::Prompt;
use crate::server::budget_alerts::KeyLimit;
use crate::server::clock;
use crate::server::db::usage::{self as ledger, Limits, Reservation, Reserved, RunLimits};
use crate::server::db::{Db, DbError, Owner, TurnRecord};
use crate::server::pricing::PriceTable;

/// What a run of `owner`'s is held against (read beside its history: see `run.rs`).
pub async fn limits(deps: &Deps, owner: &Owner, message: Uuid) -> Result<RunLimits, RunError> {
    ledger::run_limits(&deps.db, owner).await.map_err(|e| {
        tracing::error!(%message, "could not check the budget: {e}");
        RunError::BudgetUnchecked
    })
}

/// Reserves this run's worst case against `stored`, its owner's [`limits`].
pub async fn reserve(
    deps: &Deps,
    record: &TurnRecord,
    prompt: &Prompt,
    stored: RunLimits,
) -> Result<(), RunError> {
    let chars_before = |text: &str| u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    let run = Run {
        owner: &record.owner,
        message_id: record.reply.id,
        run: record.reply.run,
        model: record.model(),
        chars_before: chars_before(&record.reply.content)
            .saturating_add(chars_before(&record.reply.thinking)),
        key: None,
    };
    hold(deps, &run, prompt.worst_case(), stored).await
}

/// The API key a run is asked through, and its own budget.
#[derive(Clone, Copy, Debug)]
pub struct KeyBudget {
    pub id: Uuid,
    pub budget: Option<f64>,
}

/// One run to reserve for: a reply's, or an API completion's (`message_id` its own id).
pub(super) struct Run<'a> {
    pub owner: &'a Owner,
    pub message_id: Uuid,
    pub run: u32,
    pub model: &'a str,
    /// Characters of the reply's text and thinking before this run.
    pub chars_before: u64,
    pub key: Option<KeyBudget>,
}

/// Holds `worst` at the model's prices against every limit the run falls under (`stored`, read
/// by [`limits`]): the owner's budget, the site's cap, and the key's budget for a run through
/// an API key.
pub(super) async fn hold(
    deps: &Deps,
    run: &Run<'_>,
    worst: Usage,
    stored: RunLimits,
) -> Result<(), RunError> {
    let message = run.message_id;
    let unchecked = |e: DbError| {
        tracing::error!(%message, "could not check the budget: {e}");
        RunError::BudgetUnchecked
    };
    // The person's groups may limit the models they use.
    if !stored.allows(run.model) {
        tracing::info!(%message, model = run.model, "refused: a model the person's groups do not allow");
        return Err(RunError::ModelNotAllowed {
            model: run.model.to_owned(),
        });
    }
    let limits = Limits {
        key_budget: run.key.and_then(|k| k.budget),
        ..stored.limits()
    };
    let model = run.model;
    // The prompt at the dearer of the input and cache-write rates (a provider may write it all
    // to its cache).
    let cached = Usage {
        cache_write_tokens: worst.input_tokens,
        ..worst
    };
    let reserved = match (
        deps.prices.cost(model, &worst),
        deps.prices.cost(model, &cached),
    ) {
        (Some(plain), Some(written)) => plain.max(written),
        _ if limits.any() && !deps.allow_unpriced_models => {
            tracing::info!(%message, model, "refused: a model with no price under a budget");
            return Err(RunError::Unpriced {
                model: model.to_owned(),
            });
        }
        _ => 0.0,
    };
    let now = deps.clock.now_ms();
    let reservation = Reservation {
        owner: run.owner,
        message_id: run.message_id,
        run: run.run,
        model,
        month: &clock::month_of(now),
        at_ms: now,
        reserved_usd: reserved,
        input_tokens: worst.input_tokens,
        chars_before: run.chars_before,
        purpose: ledger::Purpose::Reply,
        api_key: run.key.map(|k| k.id),
    };
    match ledger::reserve(&deps.db, &reservation, limits)
        .await
        .map_err(unchecked)?
    {
        Reserved::Held => {
            if let Some(alerts) = &deps.budget_alerts {
                let key = run.key.map(|k| KeyLimit {
                    id: k.id,
                    budget: k.budget,
                });
                alerts.check(run.owner.clone(), key, clock::month_of(now));
            }
            Ok(())
        }
        Reserved::OverBudget { spent, budget } => {
            tracing::info!(%message, spent, reserved, budget, "refused: over the monthly budget");
            Err(RunError::OverBudget {
                budget,
                spent,
                reserved,
            })
        }
        Reserved::OverSiteCap { spent, cap } => {
            tracing::warn!(%message, spent, reserved, cap, "refused: over the site's monthly cap");
            Err(RunError::OverSiteCap { spent, cap })
        }
        Reserved::OverGroupBudget {
            group,
            spent,
            budget,
        } => {
            tracing::info!(%message, spent, reserved, budget, "refused: over a group's budget");
            Err(RunError::OverGroupBudget {
                group,
                budget,
                spent,
                reserved,
            })
        }
        Reserved::OverKeyBudget { spent, budget } => {
            tracing::info!(%message, spent, reserved, budget, "refused: over the key's budget");
            Err(RunError::OverKeyBudget {
                budget,
                spent,
                reserved,
            })
        }
    }
}

/// Settles runs left reserved with no turn to end them (`message_id`: that reply's only) at an
/// estimate: the prompt as reserved, and about four characters a token of what the run saved.
/// At start-up this bills the replies a crash interrupted.
pub async fn settle_open_runs(
    db: &Db,
    prices: &PriceTable,
    message_id: Option<uuid::Uuid>,
) -> Result<usize, DbError> {
    let open = ledger::open_runs(db, message_id).await?;
    for run in &open {
        let usage = Usage {
            input_tokens: run.input_tokens,
            output_tokens: u32::try_from(run.chars_written.div_ceil(4)).unwrap_or(u32::MAX),
            ..Usage::default()
        };
        let cost = prices.cost(&run.model, &usage);
        ledger::settle_open_run(db, run, usage, cost).await?;
    }
    Ok(open.len())
}
