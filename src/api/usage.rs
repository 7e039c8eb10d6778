//! The usage page.

use server_fn::codec::Json;

use crate::error::ApiError;
use crate::model::accounts::UsageReport;
#[cfg(feature = "ssr")]
use crate::server::{usage, AppState};

/// This month's spending by day and model: one's own, or (admins) another user's.
#[leptos::server(prefix = "/api", endpoint = "monthly_usage", input = Json)]
pub async fn monthly_usage(user_id: Option<String>) -> Result<UsageReport, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    let (owner, username, budget) = usage::subject(&state, &principal, user_id.as_deref()).await?;
    Ok(usage::report(&state, &owner, username, budget).await?)
}
