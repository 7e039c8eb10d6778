//! Share links: a person pins the branch on screen of a conversation as a read-only page at an
//! unguessable address, `/s/<token>`, that anyone may open signed out; they list and revoke
//! their links, and an admin can turn sharing off for the whole server.
//!
//! The token is 244 random bits (two v4 uuids, from the system's random source). The page looks
//! its link up by the token's SHA-256, never by the token: an index compares stored keys byte by
//! byte, and timing a lookup by the token itself could tell a guesser how much of a stored one
//! they had right; the hash of a guess says nothing of any token, so no constant-time compare is
//! needed. Every failure (bad form, no such link, revoked, conversation deleted, sharing off)
//! is the same 404.
//!
//! The page is plain HTML with no script at all (its policy allows none), the replies as the
//! chat's own safe markdown renderer wrote them, marked as shared, `noindex` in a meta tag and
//! `X-Robots-Tag`, and nothing else of its owner: no list, no account, no model settings.
//!
//! A shared question's files (issue 26) show as on the chat's page (images as thumbnails that
//! open full size, other files as chips that download), each at `/s/<token>/files/<id>`: served
//! through the link alone, and only if a question the page shows carries it. Any other id (the
//! owner's other files included), a revoked link or a bad token is the same 404 as an id that
//! does not exist.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use leptos::config::LeptosOptions;
use uuid::Uuid;

use super::db::shares::{self as store, CannotShare, NewShare, SharedSnapshot};
use super::db::{self, Owner};
use super::error_response::api_error;
use super::{attachments, preferences, render, sessions, AppState};
use crate::error::ApiError;
use crate::format::byte_size;
use crate::model::attachments::{AttachmentKind, AttachmentView};
use crate::model::shares::{SharedLink, MAX_SHARES};
use crate::model::{MessageStatus, Role};

/// Characters of a token: 64 lowercase hex digits.
const TOKEN_CHARS: usize = 64;

/// Whether `token` has a token's form (checked before any lookup, and by `public_paths`).
pub fn is_token(token: &str) -> bool {
    token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn new_token() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

async fn sharing_on(state: &AppState) -> Result<bool, ApiError> {
    Ok(db::accounts::site_settings(&state.db).await?.sharing)
}

/// Shares the owner's conversation as it is on screen now.
pub async fn share(
    state: &AppState,
    owner: &Owner,
    conversation_id: Uuid,
) -> Result<SharedLink, ApiError> {
    if !sharing_on(state).await? {
        return Err(ApiError::Forbidden(
            "sharing by link is turned off on this server".into(),
        ));
    }
    let token = new_token();
    let key_hash = sessions::token_digest(&token);
    let new = NewShare {
        id: Uuid::new_v4(),
        token: &token,
        key_hash: &key_hash,
    };
    match store::create_share(&state.db, owner, conversation_id, &new).await? {
        Ok(link) => Ok(link),
        Err(CannotShare::NoSuchConversation) => {
            Err(ApiError::NotFound("no such conversation".into()))
        }
        Err(CannotShare::Empty) => Err(ApiError::BadRequest(
            "this conversation has no messages to share yet".into(),
        )),
        Err(CannotShare::Busy) => Err(ApiError::Conflict(
            "a reply is being written; share when it has finished".into(),
        )),
        Err(CannotShare::TooMany) => Err(ApiError::Conflict(format!(
            "you have {MAX_SHARES} shared links, the most this server keeps; revoke some first"
        ))),
    }
}

/// The owner's links (of one conversation, or all).
pub async fn list(
    state: &AppState,
    owner: &Owner,
    conversation_id: Option<Uuid>,
) -> Result<Vec<SharedLink>, ApiError> {
    Ok(store::list_shares(&state.db, owner, conversation_id).await?)
}

/// Revokes one of the owner's links: from now on it answers 404.
pub async fn revoke(state: &AppState, owner: &Owner, id: Uuid) -> Result<(), ApiError> {
    match store::revoke_share(&state.db, owner, id).await? {
        true => Ok(()),
        false => Err(ApiError::NotFound("no such link".into())),
    }
}

/// What the shared page needs besides the state: the stylesheet's address.
#[derive(Clone)]
struct PageAssets {
    stylesheet: String,
}

/// `GET /s/<token>`, and its files at `GET /s/<token>/files/<id>`.
pub fn routes(state: AppState, options: &LeptosOptions) -> Router {
    let assets = PageAssets {
        stylesheet: stylesheet_href(options),
    };
    Router::new()
        .route("/s/{token}", get(shared_page))
        .route("/s/{token}/files/{id}", get(shared_file))
        .with_state((state, assets))
}

/// The address of a shared question's file.
fn file_path(token: &str, id: Uuid) -> String {
    format!("/s/{token}/files/{id}")
}

/// `GET /s/<token>/files/<id>`: a file a question of the snapshot carries, as its owner gets
/// it (`attachments::download`).
async fn shared_file(
    State((state, _)): State<(AppState, PageAssets)>,
    Path((token, id)): Path<(String, String)>,
) -> Response<Body> {
    let not_found = || api_error(&ApiError::NotFound("no such file".into()));
    let Ok(id) = Uuid::parse_str(&id) else {
        return not_found();
    };
    let found = match snapshot(&state, &token).await {
        Ok(Some(snapshot)) => {
            let shown: Vec<Uuid> = snapshot
                .messages
                .iter()
                .filter(|m| m.role == Role::User)
                .map(|m| m.turn_id)
                .collect();
            db::attachments::carried_by(&state.db, &snapshot.owner, id, &shown)
                .await
                .map(|stored| stored.map(|stored| (snapshot.owner, stored)))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    match found {
        Ok(Some((owner, stored))) => attachments::download::serve(&state, owner, stored),
        Ok(None) => not_found(),
        Err(e) => api_error(&e.into()),
    }
}

/// The files each question of `snapshot` carries, by its turn.
async fn files_of(
    state: &AppState,
    snapshot: &SharedSnapshot,
) -> Result<HashMap<Uuid, Vec<AttachmentView>>, db::DbError> {
    let questions: Vec<Uuid> = snapshot
        .messages
        .iter()
        .filter(|m| m.role == Role::User)
        .map(|m| m.turn_id)
        .collect();
    let carried =
        db::attachments::turns_attachments(&state.db, &snapshot.owner, &questions).await?;
    Ok(carried
        .into_iter()
        .map(|(turn, stored)| (turn, stored.into_iter().map(|s| s.view).collect()))
        .collect())
}

/// The address of the site's stylesheet, with the build's hash in its name when the build has
/// one (as `leptos_meta::HashedStylesheet` writes it for the app's pages).
fn stylesheet_href(options: &LeptosOptions) -> String {
    let mut name = options.output_name.to_string();
    if options.hash_files {
        let hashes = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(options.hash_file.as_ref())))
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default();
        if let Some(hash) = hashes
            .lines()
            .filter_map(|line| line.trim().split_once(':'))
            .find(|(file, _)| *file == "css")
            .map(|(_, hash)| hash.trim())
        {
            name.push('.');
            name.push_str(hash);
        }
    }
    format!("/{}/{name}.css", options.site_pkg_dir.trim_matches('/'))
}

/// The page allows no script, no frame and nothing from elsewhere: the site's stylesheet and
/// icon only.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn shared_page(
    State((state, assets)): State<(AppState, PageAssets)>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = match snapshot(&state, &token).await {
        Ok(Some(snapshot)) => match files_of(&state, &snapshot).await {
            Ok(files) => Ok(Some((snapshot, files))),
            Err(e) => Err(e),
        },
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    match found {
        Ok(Some((snapshot, files))) => {
            let theme = preferences::theme_of(&headers);
            let shown = Shown {
                token: &token,
                files: &files,
            };
            let html = page(&snapshot, &shown, &assets.stylesheet, theme.attribute()).await;
            with_page_headers(StatusCode::OK, html)
        }
        Ok(None) => with_page_headers(StatusCode::NOT_FOUND, not_found(&assets.stylesheet)),
        Err(e) => {
            tracing::error!("could not read a shared conversation: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response()
        }
    }
}

async fn snapshot(state: &AppState, token: &str) -> Result<Option<SharedSnapshot>, db::DbError> {
    if !is_token(token) || !db::accounts::site_settings(&state.db).await?.sharing {
        return Ok(None);
    }
    store::shared_snapshot(&state.db, &sessions::token_digest(token)).await
}

fn with_page_headers(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    response
}

/// Text as HTML text or an attribute's value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn head(title: &str, stylesheet: &str, theme: Option<&str>) -> String {
    let theme = theme.map_or_else(String::new, |t| format!(" data-theme=\"{}\"", escape(t)));
    format!(
        "<!DOCTYPE html><html lang=\"en\"{theme}><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <meta name=\"robots\" content=\"noindex, nofollow\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{}</title>\
         <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"{}\"></head>",
        escape(title),
        escape(stylesheet)
    )
}

/// What the page links to besides its text: its token and its questions' files.
struct Shown<'a> {
    token: &'a str,
    files: &'a HashMap<Uuid, Vec<AttachmentView>>,
}

async fn page(
    snapshot: &SharedSnapshot,
    shown: &Shown<'_>,
    stylesheet: &str,
    theme: Option<&str>,
) -> String {
    let title = if snapshot.title.is_empty() {
        "Shared conversation"
    } else {
        snapshot.title.as_str()
    };
    let mut html = head(&format!("{title} · shared"), stylesheet, theme);
    html.push_str(
        "<body class=\"shared-page\"><main class=\"shared\" aria-labelledby=\"shared-title\">",
    );
    html.push_str(&format!(
        "<header class=\"shared-banner\"><p class=\"shared-mark\">Shared conversation \
         <span>· a read-only snapshot, made {}</span></p><h1 id=\"shared-title\">{}</h1></header>",
        crate::format::date_of(snapshot.created_at),
        escape(title)
    ));
    if snapshot.turns_left_out {
        html.push_str(
            "<p class=\"shared-note\">Earlier messages of this conversation are not shown.</p>",
        );
    }
    html.push_str("<ol class=\"message-list\" aria-label=\"Messages\">");
    for message in &snapshot.messages {
        message_html(&mut html, message, shown).await;
    }
    html.push_str("</ol></main></body></html>");
    html
}

async fn message_html(html: &mut String, message: &store::SharedMessage, shown: &Shown<'_>) {
    match message.role {
        Role::User => {
            html.push_str(
                "<li class=\"message user\"><h2 class=\"sr-only\">They asked:</h2><div class=\"content\">",
            );
            html.push_str(&escape(&message.content));
            html.push_str("</div>");
            if let Some(files) = shown.files.get(&message.turn_id) {
                files_html(html, shown.token, files);
            }
            html.push_str("</li>");
        }
        Role::Assistant => {
            html.push_str(&format!(
                "<li class=\"message assistant\" data-status=\"{}\"><h2 class=\"sr-only\">The assistant answered:</h2>",
                message.status.as_str()
            ));
            // The stored rendering, else rendered now if a renderer is free (anyone may open
            // this page as often as they like: it never queues ahead of replies being
            // stored), else the text as text.
            let rendered = match &message.html {
                Some(stored) if !stored.is_empty() => stored.clone(),
                _ if message.content.is_empty() => String::new(),
                _ => render::html_unless_busy(message.content.clone()).await,
            };
            if rendered.is_empty() {
                html.push_str("<div class=\"content plain\">");
                html.push_str(&escape(&message.content));
            } else {
                html.push_str("<div class=\"content markdown\">");
                html.push_str(&rendered);
            }
            html.push_str("</div>");
            if let Some(error) = &message.error {
                html.push_str("<p class=\"shared-error\">");
                html.push_str(&escape(error));
                html.push_str("</p>");
            } else if message.status == MessageStatus::Stopped {
                html.push_str("<p class=\"shared-error\">Stopped before the end.</p>");
            }
            html.push_str("</li>");
        }
    }
}

/// A question's files as the chat shows them: images as thumbnails that open the image full
/// size (a link: the page runs no script), other files as chips that download.
fn files_html(html: &mut String, token: &str, files: &[AttachmentView]) {
    html.push_str("<ul class=\"message-files\" aria-label=\"Attached files\">");
    for file in files {
        let url = escape(&file_path(token, file.id));
        let name = escape(&file.name);
        if file.kind == AttachmentKind::Image {
            html.push_str(&format!(
                "<li><a class=\"file-thumb-button\" href=\"{url}\" aria-label=\"Open {name}\">\
                 <img class=\"file-thumb\" src=\"{url}\" alt=\"{name}\" loading=\"lazy\"></a></li>"
            ));
        } else {
            html.push_str(&format!(
                "<li><a class=\"file-chip\" href=\"{url}\" download=\"{name}\">\
                 <span class=\"file-name\">{name}</span>\
                 <span class=\"file-size\">{}</span></a></li>",
                byte_size(file.size)
            ));
        }
    }
    html.push_str("</ul>");
}

fn not_found(stylesheet: &str) -> String {
    let mut html = head("Not found", stylesheet, None);
    html.push_str(
        "<body class=\"shared-page\"><main class=\"shared\"><h1>Not found</h1>\
         <p>This link does not exist, or its owner stopped sharing it.</p></main></body></html>",
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_lowercase_hex_digits_and_fresh_each_time() {
        let token = new_token();
        assert!(is_token(&token), "{token}");
        assert_ne!(token, new_token());
        assert!(!is_token(&token.to_uppercase()));
        assert!(!is_token(&token[1..]));
        assert!(!is_token(&format!("{}/", &token[1..])));
        assert!(!is_token(""));
    }

    #[test]
    fn text_is_escaped_for_text_and_attributes() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
