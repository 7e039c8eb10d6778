//! A conversation's title from its first exchange, asked once its first reply is complete: of the
//! conversation's model, with a short instruction and a small token cap, reserved against the
//! budgets and recorded in the ledger like a reply's run (as a title); of the built-in local
//! model when that fails (no key, an error, over the budget); and if both fail the first words
//! stay. The title is stored only over the first words, so a rename always wins, even one made
//! while the model was still answering. Pages following the conversation are told.

use std::time::Duration;

use futures::StreamExt;
use llm::{ChatMessage, ChatRequest, ProviderEvent, Role, Usage};
use uuid::Uuid;

use super::deps::{Deps, TitleChange};
use crate::server::catalog::LOCAL_MODEL;
use crate::server::clock;
use crate::server::db::titles::{self as store, FirstExchange};
use crate::server::db::usage::{self as ledger, Charge, Purpose, Reservation, Reserved};
use crate::server::db::TurnRecord;
use crate::server::input;

/// The instruction a title is asked with (the fake provider answers a title when its system
/// text starts with "Write a short title").
pub const TITLE_INSTRUCTION: &str = "Write a short title (at most six words) for the \
     conversation below, in its language. Answer with the title only: no quotes, no \
     punctuation at the end.";
/// Tokens a title may take.
pub const TITLE_TOKENS: u32 = 24;
/// Characters of the question and of the reply the title is asked from (their start).
const EXCERPT_CHARS: usize = 1_000;
/// Characters of a title kept (as the first words are cut).
const TITLE_CHARS: usize = 60;
/// A title that takes longer is given up.
const TITLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a finished run is the one a title is asked after: a complete first reply.
pub(super) fn wanted_after(record: &TurnRecord, status: crate::model::MessageStatus) -> bool {
    status == crate::model::MessageStatus::Complete
        && record.user.parent_turn_id.is_none()
        && record.reply.run == 1
}

/// Asks for the title of the record's conversation, stores it and tells its pages.
pub(super) async fn name_conversation(deps: &Deps, record: &TurnRecord) {
    let first = match store::title_wanted(
        &deps.db,
        &record.owner,
        record.conversation_id,
        record.turn_id(),
    )
    .await
    {
        Ok(Some(first)) => first,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("could not read the first exchange for a title: {e}");
            return;
        }
    };
    let mut models = vec![record.model()];
    if record.model() != LOCAL_MODEL {
        models.push(LOCAL_MODEL);
    }
    for (run, model) in (1u32..).zip(models) {
        let Some((title, charge)) = ask(deps, record, &first, model, run).await else {
            continue;
        };
        let finished = store::finish_title(
            &deps.db,
            &record.owner,
            record.conversation_id,
            title.as_deref(),
            (first.question_id, run),
            &charge,
        )
        .await;
        match (finished, &title) {
            (Ok(true), Some(title)) => {
                // No page following it is fine: they read the title when they load.
                let _ = deps.titles.send(TitleChange {
                    conversation_id: record.conversation_id,
                    title: title.clone(),
                });
            }
            (Ok(false), Some(_)) => {
                tracing::debug!("a title arrived after a rename; the rename stays");
            }
            (Ok(_), None) => {}
            (Err(e), _) => tracing::error!("could not store a title or settle its spending: {e}"),
        }
        if title.is_some() {
            return;
        }
    }
}

/// One model's title (`None` if its answer holds none) and what its run `run` cost; `None` if
/// it was not asked (no such model, over a budget).
async fn ask(
    deps: &Deps,
    record: &TurnRecord,
    first: &FirstExchange,
    model_id: &str,
    run: u32,
) -> Option<(Option<String>, Charge)> {
    let model = deps.catalog.resolve(model_id)?;
    let request = ChatRequest {
        model: model.model.clone(),
        system: Some(TITLE_INSTRUCTION.to_owned()),
        messages: vec![ChatMessage::text(
            Role::User,
            format!(
                "Question:\n{}\n\nAnswer:\n{}",
                excerpt(&first.question),
                excerpt(&first.reply)
            ),
        )],
        max_output_tokens: Some(TITLE_TOKENS.min(model.limits.max_output_tokens)),
        thinking_budget: None,
        requester: Some(record.owner.0.clone()),
    };
    let worst = Usage {
        input_tokens: request
            .system
            .iter()
            .chain(request.messages.iter().map(|m| &m.content))
            .map(|text| u32::try_from(text.len()).unwrap_or(u32::MAX))
            .fold(0, u32::saturating_add),
        output_tokens: TITLE_TOKENS,
        ..Usage::default()
    };
    if !reserve(deps, record, first.question_id, model_id, run, worst).await {
        return None;
    }
    let (text, usage, failed) = stream(model.provider.as_ref(), request.clone()).await;
    let (usage, estimated) = match usage {
        Some(usage) => (usage, false),
        None => (
            Usage::estimate(
                request
                    .system
                    .iter()
                    .map(String::as_str)
                    .chain(request.messages.iter().map(|m| m.content.as_str())),
                &text,
            ),
            true,
        ),
    };
    let charge = Charge {
        status: if failed {
            crate::model::MessageStatus::Failed
        } else {
            crate::model::MessageStatus::Complete
        },
        cost_usd: deps.prices.cost(model_id, &usage),
        usage: Some(usage),
        estimated,
    };
    let title = if failed { None } else { clean(&text) };
    Some((title, charge))
}

/// Holds the title's worst case against the owner's month and the site's, as a reply's run is.
async fn reserve(
    deps: &Deps,
    record: &TurnRecord,
    question_id: Uuid,
    model: &str,
    run: u32,
    worst: Usage,
) -> bool {
    let limits = match ledger::run_limits(&deps.db, &record.owner).await {
        // A model the person's groups do not allow writes no title for them either.
        Ok(stored) if !stored.allows(model) => return false,
        Ok(stored) => stored.limits(),
        Err(e) => {
            tracing::warn!("could not check the budget for a title: {e}");
            return false;
        }
    };
    let reserved = match deps.prices.cost(model, &worst) {
        Some(cost) => cost,
        None if limits.any() && !deps.allow_unpriced_models => {
            return false;
        }
        None => 0.0,
    };
    let now = deps.clock.now_ms();
    let reservation = Reservation {
        owner: &record.owner,
        message_id: question_id,
        run,
        model,
        month: &clock::month_of(now),
        at_ms: now,
        reserved_usd: reserved,
        input_tokens: worst.input_tokens,
        // A crash's estimate counts nothing written (the question is not the title).
        chars_before: u64::try_from(record.user.content.chars().count()).unwrap_or(u64::MAX),
        purpose: Purpose::Title,
        api_key: None,
    };
    match ledger::reserve(&deps.db, &reservation, limits).await {
        Ok(Reserved::Held) => true,
        Ok(refused) => {
            tracing::info!(model, ?refused, "no title: over a budget");
            false
        }
        Err(e) => {
            tracing::warn!("could not reserve a title's spending: {e}");
            false
        }
    }
}

/// The title's text and the provider's figures; `true` if it failed (an error or too slow).
async fn stream(
    provider: &dyn llm::Provider,
    request: ChatRequest,
) -> (String, Option<Usage>, bool) {
    let mut text = String::new();
    let mut usage = None;
    let mut events = provider.stream_chat(request);
    let read = async {
        while let Some(event) = events.next().await {
            match event {
                Ok(ProviderEvent::TextDelta(delta)) => {
                    // A title needs a line; a model that rambles is cut, not waited for.
                    if text.chars().count() < EXCERPT_CHARS {
                        text.push_str(&delta);
                    }
                }
                Ok(ProviderEvent::Usage(u)) => usage = Some(u),
                Ok(_) => {}
                Err(e) => {
                    tracing::info!(kind = e.kind(), "no title from the model: {}", e.detail());
                    return true;
                }
            }
        }
        false
    };
    let failed = tokio::time::timeout(TITLE_TIMEOUT, read)
        .await
        .unwrap_or(true);
    (text, usage, failed)
}

/// The start of `text`, at most [`EXCERPT_CHARS`] characters.
fn excerpt(text: &str) -> &str {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// A model's answer as a title: its first line, without a "Title:" label, quotes, markdown
/// marks or a closing full stop, by the title rules (no invisible characters), cut as first
/// words are. `None` if nothing is left.
fn clean(answer: &str) -> Option<String> {
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line
        .strip_prefix("Title:")
        .or_else(|| line.strip_prefix("title:"))
        .unwrap_or(line);
    let line = line
        .trim()
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '“' | '”' | '«' | '»' | '*' | '#' | '`'))
        .trim_end_matches(['.', '。'])
        .trim();
    let title = input::title(line).ok()?;
    let mut cut: String = title.chars().take(TITLE_CHARS).collect();
    if title.chars().count() > TITLE_CHARS {
        cut.push('…');
    }
    Some(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_one_clean_line() {
        assert_eq!(
            clean("Rivers and the sea").as_deref(),
            Some("Rivers and the sea")
        );
        assert_eq!(
            clean("\n  \"Rivers to the sea.\"\nMore").as_deref(),
            Some("Rivers to the sea")
        );
        assert_eq!(clean("Title: **Lakes**").as_deref(), Some("Lakes"));
        assert_eq!(clean("  \u{200B}\n"), None);
        assert_eq!(clean(""), None);
        let long = clean(&"word ".repeat(40)).expect("a title");
        assert_eq!(long.chars().count(), TITLE_CHARS + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn excerpts_are_cut_at_a_character() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(EXCERPT_CHARS + 5);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS);
    }
}
