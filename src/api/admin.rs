//! The admin page: users, their budgets, groups, site settings and the audit log.

use server_fn::codec::Json;

use crate::error::ApiError;
use uuid::Uuid;

use crate::model::accounts::{AdminView, AuditEntry, SiteSettings, UserView};
use crate::model::groups::AdminGroups;
#[cfg(feature = "ssr")]
use crate::server::{accounts::Admin, context, db::accounts as store, AppState};

/// Audit entries per page.
pub const AUDIT_PAGE: u32 = 50;
/// Users per page, by name (searchable, and more on request).
pub const USERS_PAGE: u32 = 100;
/// Models one group may be limited to (more than any catalog here holds).
#[cfg(feature = "ssr")]
const MAX_GROUP_MODELS: usize = 1_000;

#[leptos::server(prefix = "/api", endpoint = "admin_overview", input = Json)]
pub async fn admin_overview() -> Result<AdminView, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    let admin = Admin::new(&state, &principal, None)?;
    let month = state.month();
    let (lockouts, lockouts_total) = admin.lockouts().await?;
    Ok(AdminView {
        users: store::list_users(&state.db, &month, "", None, USERS_PAGE).await?,
        settings: store::site_settings(&state.db).await?,
        site_month_cost_usd: crate::server::db::usage::site_month_spent(&state.db, &month).await?,
        lockouts,
        lockouts_total: u32::try_from(lockouts_total).unwrap_or(u32::MAX),
        audit: store::audit_page(&state.db, "", None, AUDIT_PAGE).await?,
    })
}

/// A page of users by name: those after the name `after` whose name holds `filter`.
#[leptos::server(prefix = "/api", endpoint = "list_users", input = Json)]
pub async fn list_users(filter: String, after: Option<String>) -> Result<Vec<UserView>, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    Admin::new(&state, &principal, None)?;
    let filter: String = filter.chars().take(200).collect();
    let after: Option<String> = after.map(|name| name.chars().take(200).collect());
    let month = state.month();
    Ok(store::list_users(&state.db, &month, &filter, after.as_deref(), USERS_PAGE).await?)
}

/// A page of the audit log, newest first: entries older than `before` (an entry's id), those
/// mentioning `filter` in who, what, whom, address or detail.
#[leptos::server(prefix = "/api", endpoint = "audit_log", input = Json)]
pub async fn audit_log(filter: String, before: Option<i64>) -> Result<Vec<AuditEntry>, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    Admin::new(&state, &principal, None)?;
    let filter: String = filter.chars().take(200).collect();
    Ok(store::audit_page(&state.db, &filter, before, AUDIT_PAGE).await?)
}

/// Lifts the sign-in lockout of an account (its failed attempts are forgotten).
#[leptos::server(prefix = "/api", endpoint = "clear_lockout", input = Json)]
pub async fn clear_lockout(username: String) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .clear_lockout(&username)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "create_user", input = Json)]
pub async fn create_user(
    username: String,
    password: String,
    is_admin: bool,
    monthly_budget_usd: Option<f64>,
    // A service account: no password, API keys only.
    #[server(default)] service: bool,
) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    let admin = Admin::new(&state, &principal, address)?;
    if service {
        admin
            .create_service_account(&username, is_admin, monthly_budget_usd)
            .await?;
    } else {
        admin
            .create_user(&username, &password, is_admin, monthly_budget_usd)
            .await?;
    }
    Ok(())
}

#[leptos::server(prefix = "/api", endpoint = "set_user_disabled", input = Json)]
pub async fn set_user_disabled(user_id: String, disabled: bool) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .set_disabled(&user_id, disabled)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "reset_password", input = Json)]
pub async fn reset_password(user_id: String, password: String) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .reset_password(&user_id, &password)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "set_user_budget", input = Json)]
pub async fn set_user_budget(
    user_id: String,
    monthly_budget_usd: Option<f64>,
) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .set_budget(&user_id, monthly_budget_usd)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "set_site_settings", input = Json)]
pub async fn set_site_settings(settings: SiteSettings) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .set_site_settings(&settings)
        .await?)
}

/// Every group, with members, models, budget and this month's spending, and every model an
/// admin may limit a group to.
#[leptos::server(prefix = "/api", endpoint = "admin_groups", input = Json)]
pub async fn group_overview() -> Result<AdminGroups, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    Admin::new(&state, &principal, None)?;
    let month = state.month();
    Ok(AdminGroups {
        groups: crate::server::db::groups::list_groups(&state.db, &month).await?,
        models: state.catalog.ids().map(str::to_owned).collect(),
        month,
    })
}

#[leptos::server(prefix = "/api", endpoint = "create_group", input = Json)]
pub async fn create_group(name: String, monthly_budget_usd: Option<f64>) -> Result<Uuid, ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .create_group(&name, monthly_budget_usd)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "rename_group", input = Json)]
pub async fn rename_group(id: Uuid, name: String) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .rename_group(id, &name)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "delete_group", input = Json)]
pub async fn delete_group(id: Uuid) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .delete_group(id)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "set_group_budget", input = Json)]
pub async fn set_group_budget(id: Uuid, monthly_budget_usd: Option<f64>) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .set_group_budget(id, monthly_budget_usd)
        .await?)
}

/// Links a group to the identity provider's group of that name (blank: unlinks it).
#[leptos::server(prefix = "/api", endpoint = "set_group_idp", input = Json)]
pub async fn set_group_idp(id: Uuid, idp_group: String) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .set_group_idp(id, &idp_group)
        .await?)
}

/// The models a group's members may use (none: every model).
#[leptos::server(prefix = "/api", endpoint = "set_group_models", input = Json)]
pub async fn set_group_models(id: Uuid, models: Vec<String>) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    let models: Vec<String> = models.into_iter().take(MAX_GROUP_MODELS).collect();
    Ok(Admin::new(&state, &principal, address)?
        .set_group_models(id, &models)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "add_group_member", input = Json)]
pub async fn add_group_member(id: Uuid, username: String) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    let username: String = username.chars().take(200).collect();
    Ok(Admin::new(&state, &principal, address)?
        .add_group_member(id, &username)
        .await?)
}

#[leptos::server(prefix = "/api", endpoint = "remove_group_member", input = Json)]
pub async fn remove_group_member(id: Uuid, user_id: String) -> Result<(), ApiError> {
    let (state, principal, address) = context::acting()?;
    Ok(Admin::new(&state, &principal, address)?
        .remove_group_member(id, &user_id)
        .await?)
}
