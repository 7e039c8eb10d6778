use leptos::prelude::*;

use super::reply_text::ReplyText;
use super::state::{ChatEntry, ChatState};
use crate::format::{format_cost, model_name};
use crate::model::{MessageStatus, Outcome, Role};

#[component]
pub fn Message(entry: ChatEntry, state: ChatState) -> impl IntoView {
    let role = match entry.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let status = move || entry.outcome.with(|o| o.status);
    let thinking =
        move || status() == MessageStatus::Streaming && entry.content.with(String::is_empty);
    view! {
        <li class=format!("message {role}") data-status=move || status().as_str()>
            <Show when=thinking>
                <div class="thinking" aria-live="polite">
                    <span class="dot"></span><span class="dot"></span><span class="dot"></span>
                    {move || match entry.queued.get() {
                        Some(ahead) => view! {
                            <span class="queued">{format!("Waiting for the model: {ahead} {} ahead", if ahead == 1 { "reply" } else { "replies" })}</span>
                        }.into_any(),
                        None => view! { <span class="sr-only">"Thinking…"</span> }.into_any(),
                    }}
                </div>
            </Show>
            {match entry.role {
                Role::User => view! { <UserText entry /> }.into_any(),
                Role::Assistant => view! { <ReplyText entry state /> }.into_any(),
            }}
            {(entry.role == Role::Assistant).then(|| view! { <TurnInfo entry state /> })}
        </li>
    }
}

/// A person's message, line breaks kept; a long one shows its start with "Show more".
#[component]
fn UserText(entry: ChatEntry) -> impl IntoView {
    let long = move || entry.content.with(|text| is_long(text));
    let expanded = RwSignal::new(false);
    view! {
        <div class="content" class:collapsed=move || long() && !expanded.get()>
            {move || entry.content.get()}
        </div>
        <Show when=long>
            <button
                type="button"
                class="show-more"
                aria-expanded=move || expanded.get().to_string()
                on:click=move |_| expanded.update(|e| *e = !*e)
            >
                {move || if expanded.get() { "Show less" } else { "Show more" }}
            </button>
        </Show>
    }
}

/// Longer than about a screen: collapsed until asked.
fn is_long(text: &str) -> bool {
    const LINES: usize = 24;
    const CHARS: usize = 2_000;
    text.len() > CHARS * 4 || text.chars().nth(CHARS).is_some() || text.lines().nth(LINES).is_some()
}

/// The small row under a reply: how it ended, what was left out, tokens, cost, and Continue.
#[component]
fn TurnInfo(entry: ChatEntry, state: ChatState) -> impl IntoView {
    let status = move || entry.outcome.with(status_text);
    let left_out = move || entry.outcome.with(|o| o.left_out);
    let can_continue = move || {
        entry.outcome.with(|o| o.status.can_continue())
            && !state.is_streaming()
            && state.is_last_reply(&entry)
    };
    view! {
        <div class="turn-info">
            {move || entry.model.get().map(|m| view! { <span class="turn-model" title=m.clone()>{model_name(&m).to_owned()}</span> })}
            {move || status().map(|s| view! { <span class="turn-status">{s}</span> })}
            {move || entry.outcome.with(|o| o.error_detail.clone()).map(|detail| view! {
                <details class="error-detail">
                    <summary>"Details"</summary>
                    <code>{detail}</code>
                </details>
            })}
            {move || (left_out() > 0).then(|| view! {
                <span class="left-out" title="The model's context window cannot hold the whole conversation; the oldest messages were left out of the prompt.">
                    {left_out_text(left_out())}
                </span>
            })}
            {move || entry.outcome.with(|o| o.usage.is_some().then(|| view! {
                <span class="usage" title=usage_breakdown(o)>{usage_summary(o)}</span>
            }))}
            <Show when=can_continue>
                <button type="button" class="continue" on:click=move |_| state.continue_reply(entry)>
                    "Continue"
                </button>
            </Show>
        </div>
    }
}

/// How a reply ended, when that is worth saying.
fn status_text(outcome: &Outcome) -> Option<String> {
    let because = |prefix: &str| match &outcome.error {
        Some(error) => format!("{prefix}: {error}"),
        None => prefix.to_owned(),
    };
    match outcome.status {
        MessageStatus::Stopped => Some("Stopped".to_owned()),
        MessageStatus::Failed => Some(because("Failed")),
        MessageStatus::Interrupted => Some(because("Interrupted")),
        MessageStatus::Streaming | MessageStatus::Complete => None,
    }
}

fn left_out_text(n: u32) -> String {
    match n {
        1 => "1 earlier message not sent (context window)".to_owned(),
        n => format!("{n} earlier messages not sent (context window)"),
    }
}

fn usage_summary(info: &Outcome) -> String {
    let u = info.usage.unwrap_or_default();
    let approx = if info.usage_estimated { "≈ " } else { "" };
    let mut text = format!("{approx}{} in · {} out", u.input_tokens, u.output_tokens);
    match info.cost_usd {
        Some(cost) => text.push_str(&format!(" · {}", format_cost(cost))),
        None => text.push_str(" · price unknown"),
    }
    if info.usage_estimated {
        text.push_str(" · estimated");
    }
    text
}

fn usage_breakdown(info: &Outcome) -> String {
    let u = &info.usage.unwrap_or_default();
    let mut lines = vec![
        format!(
            "Input: {} tokens ({} from cache, {} written to cache)",
            u.input_tokens, u.cached_input_tokens, u.cache_write_tokens
        ),
        format!(
            "Output: {} tokens ({} reasoning)",
            u.output_tokens, u.reasoning_tokens
        ),
    ];
    lines.push(match info.cost_usd {
        Some(cost) => format!(
            "Cost: {} (approximate, from Rill's price table)",
            format_cost(cost)
        ),
        None => "Cost: unknown (this model is not in Rill's price table)".to_owned(),
    });
    if info.usage_estimated {
        lines.push(
            "Estimated: the provider reported no usage for this reply (stopped or failed); about 4 characters a token.".into(),
        );
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Usage;

    #[test]
    fn the_row_reads_tokens_then_cost_and_says_when_it_is_estimated() {
        let mut info = Outcome {
            usage: Some(Usage {
                input_tokens: 412,
                output_tokens: 138,
                ..Usage::default()
            }),
            cost_usd: Some(0.000_3),
            ..Outcome::complete()
        };
        assert_eq!(usage_summary(&info), "412 in · 138 out · $0.0003");
        info.usage_estimated = true;
        assert_eq!(
            usage_summary(&info),
            "≈ 412 in · 138 out · $0.0003 · estimated"
        );
        assert!(usage_breakdown(&info).contains("Estimated"));
    }

    #[test]
    fn long_messages_are_those_past_a_screen() {
        assert!(!is_long("a short question"));
        assert!(!is_long(&"line\n".repeat(24)));
        assert!(is_long(&"line\n".repeat(26)));
        assert!(is_long(&"x".repeat(2_001)));
        assert!(!is_long(&"é".repeat(2_000)));
    }

    #[test]
    fn endings_are_said_in_words() {
        assert_eq!(status_text(&Outcome::complete()), None);
        assert_eq!(
            status_text(&Outcome::failed("the provider sent nothing for 120 s")).as_deref(),
            Some("Failed: the provider sent nothing for 120 s")
        );
        let interrupted = Outcome {
            status: MessageStatus::Interrupted,
            error: Some("the server shut down during this reply".into()),
            ..Outcome::complete()
        };
        assert_eq!(
            status_text(&interrupted).as_deref(),
            Some("Interrupted: the server shut down during this reply")
        );
        assert_eq!(
            left_out_text(1),
            "1 earlier message not sent (context window)"
        );
        assert_eq!(
            left_out_text(12),
            "12 earlier messages not sent (context window)"
        );
    }
}
