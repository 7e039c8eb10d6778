//! The admin page: users, their budgets, site settings and the audit log.

use server_fn::codec::Json;

use crate::error::ApiError;
use crate::model::accounts::{AdminView, SiteSettings};
#[cfg(feature = "ssr")]
use crate::server::{accounts::Admin, db::accounts as store, identity, AppState};

/// How many audit entries the page shows.
#[cfg(feature = "ssr")]
const AUDIT_SHOWN: u32 = 200;

#[leptos::server(prefix = "/api", endpoint = "admin_overview", input = Json)]
pub async fn admin_overview() -> Result<AdminView, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    Admin::new(&state, &principal, None)?;
    Ok(AdminView {
        users: store::list_users(&state.db).await?,
        settings: store::site_settings(&state.db).await?,
        audit: store::recent_audit(&state.db, AUDIT_SHOWN).await?,
    })
}

#[leptos::server(prefix = "/api", endpoint = "create_user", input = Json)]
pub async fn create_user(
    username: String,
    password: String,
    is_admin: bool,
    monthly_budget_usd: Option<f64>,
) -> Result<(), ApiError> {
    let (state, principal, address) = identity::acting()?;
    Admin::new(&state, &principal, address)?
        .create_user(&username, &password, is_admin, monthly_budget_usd)
        .await?;
    Ok(())
}

#[leptos::server(prefix = "/api", endpoint = "set_user_disabled", input = Json)]
pub async fn set_user_disabled(user_id: String, disabled: bool) -> Result<(), ApiError> {
    let (state, principal, address) = identity::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .set_disabled(&user_id, disabled)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "reset_password", input = Json)]
pub async fn reset_password(user_id: String, password: String) -> Result<(), ApiError> {
    let (state, principal, address) = identity::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .reset_password(&user_id, &password)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "set_user_budget", input = Json)]
pub async fn set_user_budget(
    user_id: String,
    monthly_budget_usd: Option<f64>,
) -> Result<(), ApiError> {
    let (state, principal, address) = identity::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .set_budget(&user_id, monthly_budget_usd)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "set_site_settings", input = Json)]
pub async fn set_site_settings(settings: SiteSettings) -> Result<(), ApiError> {
    let (state, principal, address) = identity::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .set_site_settings(&settings)
        .await?)
}
