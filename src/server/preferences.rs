//! A person's page preferences (the theme): a cookie the server reads when it renders a page, so
//! the first paint has the chosen colours, and with accounts a copy on the account, which a new
//! browser is given at sign-in.

use axum::http::{header, HeaderMap};
use tower_sessions::cookie::Cookie;

use super::db::accounts::{self as store, User};
use super::db::DbError;
use super::principal::Principal;
use super::AppState;
use crate::model::accounts::Theme;

/// Not HTTP-only: it holds nothing secret, only which colours to draw.
pub const THEME_COOKIE: &str = "rill_theme";

/// How long a browser keeps the choice.
const THEME_DAYS: i64 = 400;

/// The theme a request's cookie asks for (`System` when none).
pub fn theme_of(headers: &HeaderMap) -> Theme {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == THEME_COOKIE)
        .map_or(Theme::System, |cookie| Theme::parse(cookie.value()))
}

/// Sets this browser's cookie to `theme`.
pub fn set_cookie(cookies: &tower_cookies::Cookies, theme: Theme) {
    let cookie = Cookie::build((THEME_COOKIE, theme.as_str()))
        .path("/")
        .same_site(tower_sessions::cookie::SameSite::Lax)
        .max_age(tower_sessions::cookie::time::Duration::days(THEME_DAYS))
        .build();
    cookies.add(cookie);
}

/// The person chose `theme`: this browser remembers it, and so does their account if they have one.
pub async fn choose_theme(
    state: &AppState,
    principal: &Principal,
    cookies: &tower_cookies::Cookies,
    theme: Theme,
) -> Result<(), DbError> {
    set_cookie(cookies, theme);
    if let Some(id) = &principal.user_id {
        store::set_theme(&state.db, id, theme).await?;
    }
    Ok(())
}

/// At sign-in: the browser takes the account's theme.
pub fn adopt_account_theme(cookies: &tower_cookies::Cookies, user: &User) {
    set_cookie(cookies, Theme::parse(&user.theme));
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_theme_is_read_from_the_cookie_and_anything_else_is_the_system_s() {
        let mut headers = HeaderMap::new();
        assert_eq!(theme_of(&headers), Theme::System);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("rill_session=abc; rill_theme=dark; other=1"),
        );
        assert_eq!(theme_of(&headers), Theme::Dark);
        headers.insert(header::COOKIE, HeaderValue::from_static("rill_theme=neon"));
        assert_eq!(theme_of(&headers), Theme::System);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("xrill_theme=light"),
        );
        assert_eq!(theme_of(&headers), Theme::System);
    }
}
