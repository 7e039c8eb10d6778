//! Monthly budgets as a ledger. Before a run sends anything it reserves its worst case — a token
//! for every byte of the prompt, and its whole output cap, at the model's prices — against the
//! owner's month (and the site's), in the same write transaction that adds up what is settled
//! and what other runs hold; when it ends it is settled to its real cost. So runs started at
//! once cannot together pass a budget, and a run is billed to the month it ran in. A refusal is
//! a failed reply that cost nothing, with the question kept; no provider request is made.

use llm::Usage;

use super::deps::Deps;
use super::error::RunError;
use super::prompt::Prompt;
use crate::server::clock;
use crate::server::db::usage::{self as ledger, Limits, Reservation, Reserved};
use crate::server::db::{self, Db, DbError, TurnRecord};
use crate::server::pricing::PriceTable;

/// Reserves this run's worst case.
pub async fn reserve(deps: &Deps, record: &TurnRecord, prompt: &Prompt) -> Result<(), RunError> {
    let turn_id = record.turn_id();
    let unchecked = |e: DbError| {
        tracing::error!(%turn_id, "could not check the budget: {e}");
        RunError::BudgetUnchecked
    };
    // Single-user mode has no user row, and so no budget.
    let budget = db::accounts::user_by_id(&deps.db, &record.owner.0)
        .await
        .map_err(unchecked)?
        .and_then(|user| user.monthly_budget_usd);
    let site_cap = db::accounts::site_settings(&deps.db)
        .await
        .map_err(unchecked)?
        .monthly_cap_usd;
    let model = record.model();
    let worst = prompt.worst_case();
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
        _ if (budget.is_some() || site_cap.is_some()) && !deps.allow_unpriced_models => {
            tracing::info!(%turn_id, model, "refused: a model with no price under a budget");
            return Err(RunError::Unpriced {
                model: model.to_owned(),
            });
        }
        _ => 0.0,
    };
    let now = deps.clock.now_ms();
    let chars_before = |text: &str| u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    let reservation = Reservation {
        owner: &record.owner,
        message_id: record.reply.id,
        run: record.reply.run,
        model,
        month: &clock::month_of(now),
        at_ms: now,
        reserved_usd: reserved,
        input_tokens: worst.input_tokens,
        chars_before: chars_before(&record.reply.content)
            .saturating_add(chars_before(&record.reply.thinking)),
        purpose: ledger::Purpose::Reply,
    };
    let limits = Limits { budget, site_cap };
    match ledger::reserve(&deps.db, &reservation, limits)
        .await
        .map_err(unchecked)?
    {
        Reserved::Held => Ok(()),
        Reserved::OverBudget { spent, budget } => {
            tracing::info!(%turn_id, spent, reserved, budget, "refused: over the monthly budget");
            Err(RunError::OverBudget {
                budget,
                spent,
                reserved,
            })
        }
        Reserved::OverSiteCap { spent, cap } => {
            tracing::warn!(%turn_id, spent, reserved, cap, "refused: over the site's monthly cap");
            Err(RunError::OverSiteCap { spent, cap })
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
