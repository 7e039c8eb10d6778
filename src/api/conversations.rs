use server_fn::codec::Json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::model::{ConversationCursor, ConversationSummary, ConversationView};
#[cfg(feature = "ssr")]
use crate::server::{db, input, quota, render, AppState};

/// The conversations, most recently changed first: the first page
/// ([`crate::model::CONVERSATIONS_PAGE`]), or with `after` (the last one listed) the next
/// ([`crate::model::OLDER_CONVERSATIONS_PAGE`]), or with `through` all of them down to that one
/// (the list read again as long as it was, [`crate::model::CONVERSATIONS_MAX`] at most).
#[leptos::server(prefix = "/api", endpoint = "list_conversations", input = Json)]
pub async fn list_conversations(
    #[server(default)] after: Option<ConversationCursor>,
    #[server(default)] through: Option<ConversationCursor>,
) -> Result<Vec<ConversationSummary>, ApiError> {
    use crate::model::{CONVERSATIONS_MAX, CONVERSATIONS_PAGE, OLDER_CONVERSATIONS_PAGE};
    let (state, owner) = AppState::from_context()?;
    let limit = match (after, through) {
        (_, Some(_)) => CONVERSATIONS_MAX,
        (Some(_), None) => OLDER_CONVERSATIONS_PAGE,
        (None, None) => CONVERSATIONS_PAGE,
    };
    Ok(db::conversations_between(&state.db, &owner, after, through, limit).await?)
}

/// The pinned conversations, most recently pinned first (not in `list_conversations`).
#[leptos::server(prefix = "/api", endpoint = "list_pinned", input = Json)]
pub async fn list_pinned() -> Result<Vec<ConversationSummary>, ApiError> {
    let (state, owner) = AppState::from_context()?;
    Ok(db::pinned_conversations(&state.db, &owner).await?)
}

/// Pins a conversation above the others, or unpins it.
#[leptos::server(prefix = "/api", endpoint = "pin_conversation", input = Json)]
pub async fn pin_conversation(id: Uuid, pinned: bool) -> Result<(), ApiError> {
    let (state, owner) = AppState::from_context()?;
    match db::set_pinned(&state.db, &owner, id, pinned).await? {
        true => Ok(()),
        false => Err(no_such_conversation()),
    }
}

/// The conversation as the page shows it: its newest messages (a window of at most
/// `db::WINDOW_MESSAGES`, about 1 MB unless one turn alone is more), or with `before` (a
/// position the page was given as `older_before`) the window of messages before it.
#[leptos::server(prefix = "/api", endpoint = "get_conversation", input = Json)]
pub async fn get_conversation(
    id: Uuid,
    #[server(default)] before: Option<u32>,
) -> Result<ConversationView, ApiError> {
    let (state, principal) = AppState::with_principal()?;
    let view = db::get_conversation(&state.db, &principal.owner, id, before)
        .await?
        .ok_or_else(no_such_conversation)?;
    as_shown(&state, &principal, view).await
}

/// A conversation's view as the page gets it: every reply rendered, and for admins the details
/// of what failed.
#[cfg(feature = "ssr")]
pub(crate) async fn as_shown(
    state: &AppState,
    principal: &crate::server::principal::Principal,
    mut view: ConversationView,
) -> Result<ConversationView, ApiError> {
    let id = view.id;
    // Replies come rendered from storage; one rendered by an older renderer (or still being
    // written) is rendered now if a renderer is free (else the page renders it), and a
    // finished one kept.
    for message in view
        .messages
        .iter_mut()
        .filter(|m| m.role == crate::model::Role::Assistant && m.html.is_empty())
    {
        message.html = render::html_unless_busy(message.content.clone()).await;
        if !message.html.is_empty()
            && message.outcome.status != crate::model::MessageStatus::Streaming
        {
            if let Err(e) = db::store_html(&state.db, message.id, message.run, &message.html).await
            {
                tracing::warn!("could not keep a reply's rendering: {e}");
            }
        }
    }
    // Questions show the files they carried.
    crate::server::attachments::show(&state.db, &principal.owner, &mut view.messages).await?;
    // Admins see what failed in full; everyone sees the message in words.
    if principal.is_admin {
        let shown: Vec<Uuid> = view.messages.iter().map(|m| m.id).collect();
        for (message_id, detail) in
            db::error_details(&state.db, &principal.owner, id, &shown).await?
        {
            if let Some(message) = view.messages.iter_mut().find(|m| m.id == message_id) {
                message.outcome.error_detail = Some(detail);
            }
        }
    }
    Ok(view)
}

/// Sets the conversation's system prompt from its next reply on (metadata sent with every turn,
/// never a message). Returns the revision now in effect.
#[leptos::server(prefix = "/api", endpoint = "set_system_prompt", input = Json)]
pub async fn set_system_prompt(id: Uuid, system_prompt: String) -> Result<u32, ApiError> {
    let system_prompt = input::system_prompt(&system_prompt)?;
    let (state, owner) = AppState::from_context()?;
    quota::room_for(
        &state.db,
        state.config.limits.storage_quota_bytes,
        &owner,
        system_prompt.len(),
    )
    .await?;
    db::set_system_prompt(&state.db, &owner, id, system_prompt)
        .await?
        .ok_or_else(no_such_conversation)
}

/// The system prompt new conversations start with (the server's configured default).
#[leptos::server(prefix = "/api", endpoint = "default_system_prompt", input = Json)]
pub async fn default_system_prompt() -> Result<String, ApiError> {
    let (state, _) = AppState::from_context()?;
    Ok(state.config.conversations.default_system_prompt.clone())
}

#[leptos::server(prefix = "/api", endpoint = "rename_conversation", input = Json)]
pub async fn rename_conversation(id: Uuid, title: String) -> Result<String, ApiError> {
    let title = input::title(&title)?;
    let (state, owner) = AppState::from_context()?;
    quota::room_for(
        &state.db,
        state.config.limits.storage_quota_bytes,
        &owner,
        title.len(),
    )
    .await?;
    match db::rename_conversation(&state.db, &owner, id, &title).await? {
        true => Ok(title),
        false => Err(no_such_conversation()),
    }
}

/// Deletes a conversation (a reply still being written is stopped first). It can be restored for
/// [`crate::model::UNDO_DELETE_SECS`]; its text is purged later (`RILL_PURGE_DELETED_AFTER_SECS`).
#[leptos::server(prefix = "/api", endpoint = "delete_conversation", input = Json)]
pub async fn delete_conversation(id: Uuid) -> Result<(), ApiError> {
    let (state, owner) = AppState::from_context()?;
    if let Some(reply) = db::streaming_reply_of(&state.db, &owner, id).await? {
        // Stopping stores the text so far; a reply that ended meanwhile is as good.
        let _ = state.turns.stop(&owner, reply.turn_id).await;
    }
    match db::delete_conversation(&state.db, &owner, id).await? {
        true => Ok(()),
        false => Err(no_such_conversation()),
    }
}

/// Undoes a delete, shortly after it (the page offers Undo for a few seconds).
#[leptos::server(prefix = "/api", endpoint = "restore_conversation", input = Json)]
pub async fn restore_conversation(id: Uuid) -> Result<(), ApiError> {
    let (state, owner) = AppState::from_context()?;
    // The server allows a little more than the page shows, for a slow network.
    let within = std::time::Duration::from_secs(crate::model::UNDO_DELETE_SECS * 3);
    match db::restore_conversation(&state.db, &owner, id, within).await? {
        true => Ok(()),
        false => Err(ApiError::NotFound(
            "that conversation can no longer be restored".into(),
        )),
    }
}

/// Shows another branch: the one through `turn_id` (an alternative of a question on screen), to
/// its newest end. Returns the conversation as it now reads.
#[leptos::server(prefix = "/api", endpoint = "switch_branch", input = Json)]
pub async fn switch_branch(
    conversation_id: Uuid,
    turn_id: Uuid,
) -> Result<ConversationView, ApiError> {
    use crate::server::db::branches::{self, SwitchBranch};
    let (state, owner) = AppState::from_context()?;
    match branches::switch_branch(&state.db, &owner, conversation_id, turn_id).await? {
        SwitchBranch::Switched => get_conversation(conversation_id, None).await,
        SwitchBranch::NoSuchTurn => Err(ApiError::NotFound("no such message".into())),
        SwitchBranch::Busy => Err(ApiError::Conflict(
            "a reply is being written; switch when it has finished".into(),
        )),
    }
}

#[cfg(feature = "ssr")]
fn no_such_conversation() -> ApiError {
    ApiError::NotFound("no such conversation".into())
}
