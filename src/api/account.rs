//! Signing in and out, sign-up, one's own password.

use server_fn::codec::Json;

use crate::error::ApiError;
use crate::model::accounts::{Me, SignInInfo, Theme};
#[cfg(feature = "ssr")]
use crate::server::{accounts, context, AppState};

/// Who is signed in (in single-user mode: the owner, who is the admin).
#[leptos::server(prefix = "/api", endpoint = "current_user", input = Json)]
pub async fn current_user() -> Result<Me, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    Ok(accounts::me(&state, &principal))
}

/// What the sign-in page offers before anyone is signed in.
#[leptos::server(prefix = "/api", endpoint = "sign_in_options", input = Json)]
pub async fn sign_in_options() -> Result<SignInInfo, ApiError> {
    let state = context::state()?;
    let oidc = state.config.oidc.as_ref();
    let passwords = oidc.is_none_or(|o| o.password_sign_in);
    Ok(SignInInfo {
        open_signup: passwords
            && crate::server::db::accounts::site_settings(&state.db)
                .await?
                .signup_is_open(),
        single_sign_on: oidc.map(|o| o.name.clone()),
        passwords,
    })
}

#[leptos::server(prefix = "/api", endpoint = "sign_in", input = Json)]
pub async fn sign_in(username: String, password: String) -> Result<Me, ApiError> {
    let (state, request) = context::anonymous()?;
    let user = accounts::sign_in(&state, &request, &username, &password).await?;
    Ok(accounts::me_as(&state, &user))
}

#[leptos::server(prefix = "/api", endpoint = "sign_up", input = Json)]
pub async fn sign_up(username: String, password: String) -> Result<Me, ApiError> {
    let (state, request) = context::anonymous()?;
    let user = accounts::sign_up(&state, &request, &username, &password).await?;
    Ok(accounts::me_as(&state, &user))
}

#[leptos::server(prefix = "/api", endpoint = "sign_out", input = Json)]
pub async fn sign_out() -> Result<(), ApiError> {
    let (state, principal) = AppState::with_principal()?;
    let request = context::anonymous()?.1;
    Ok(accounts::sign_out(&state, &request.session, &principal, request.address).await?)
}

#[leptos::server(prefix = "/api", endpoint = "change_password", input = Json)]
pub async fn change_password(current: String, new: String) -> Result<(), ApiError> {
    let (state, principal) = AppState::with_principal()?;
    let request = context::anonymous()?.1;
    Ok(accounts::change_password(&state, &request, &principal, &current, &new).await?)
}

/// The page's colours: remembered by this browser (a cookie the server renders pages with) and,
/// with accounts, by the account.
#[leptos::server(prefix = "/api", endpoint = "set_theme", input = Json)]
pub async fn set_theme(theme: Theme) -> Result<(), ApiError> {
    let (state, principal) = AppState::with_principal()?;
    let request = context::anonymous()?.1;
    crate::server::preferences::choose_theme(&state, &principal, &request.cookies, theme).await?;
    Ok(())
}
