//! The usage page.

use server_fn::codec::Json;

use crate::error::ApiError;
use crate::model::accounts::UsageReport;
use crate::model::groups::BudgetUse;
#[cfg(feature = "ssr")]
use crate::server::{usage, AppState};

/// This month's spending by day and model: one's own, or (admins) another user's.
#[leptos::server(prefix = "/api", endpoint = "monthly_usage", input = Json)]
pub async fn monthly_usage(user_id: Option<String>) -> Result<UsageReport, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    let (owner, username, budget) = usage::subject(&state, &principal, user_id.as_deref()).await?;
    Ok(usage::report(&state, &owner, username, budget).await?)
}

/// The budgets the person falls under this month (their own, each group's) and how much of
/// each is spent: what the composer warns about from 80 % on.
#[leptos::server(prefix = "/api", endpoint = "budget_status", input = Json)]
pub async fn budget_status() -> Result<Vec<BudgetUse>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    let month = state.month();
    Ok(crate::server::groups::budgets(&state.db, &owner, &month).await?)
}
