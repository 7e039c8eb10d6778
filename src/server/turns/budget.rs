//! Monthly budgets: before a run sends anything, the owner's recorded cost this month plus the
//! estimated cost of this prompt must fit their limit. A refusal is a failed reply that cost
//! nothing, with the question kept; no provider request is made.

use llm::{ChatRequest, Usage};

use super::hub::Deps;
use crate::format::format_cost;
use crate::server::db::{self, TurnRecord};

/// `Err` is the message the person sees.
pub async fn check(deps: &Deps, record: &TurnRecord, request: &ChatRequest) -> Result<(), String> {
    let turn_id = record.turn_id();
    let unchecked = |e: db::DbError| {
        tracing::error!(%turn_id, "could not check the budget: {e}");
        "the server could not check your monthly budget; try again".to_owned()
    };
    // Single-user mode has no user row, and so no budget.
    let Some(limit) = db::accounts::user_by_id(&deps.db, &record.owner.0)
        .await
        .map_err(unchecked)?
        .and_then(|user| user.monthly_budget_usd)
    else {
        return Ok(());
    };
    let prompt = request
        .system
        .iter()
        .map(String::as_str)
        .chain(request.messages.iter().map(|m| m.content.as_str()));
    let estimate = deps
        .prices
        .cost(record.model(), &Usage::estimate(prompt, ""))
        .unwrap_or(0.0);
    if estimate <= 0.0 {
        // A model that costs nothing (the built-in one) answers whatever was spent.
        return Ok(());
    }
    let spent = db::usage::month_cost(&deps.db, &record.owner)
        .await
        .map_err(unchecked)?;
    if spent + estimate > limit {
        tracing::info!(%turn_id, spent, estimate, limit, "refused: over the monthly budget");
        return Err(format!(
            "this message would take your spending this month past your budget of {} ({} spent, \
             this prompt about {}); ask an admin to raise it, or pick a model that costs nothing",
            format_cost(limit),
            format_cost(spent),
            format_cost(estimate)
        ));
    }
    Ok(())
}
