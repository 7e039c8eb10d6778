use leptos::prelude::*;

use super::state::{ChatEntry, UsageInfo};
use crate::model::{MessageStatus, Role};

#[component]
pub fn Message(entry: ChatEntry) -> impl IntoView {
    let role = match entry.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let thinking = move || {
        entry.status.get() == MessageStatus::Streaming && entry.content.with(String::is_empty)
    };
    view! {
        <li class=format!("message {role}") data-status=move || entry.status.get().as_str()>
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
            <div class="content">{move || entry.content.get()}</div>
            {(entry.role == Role::Assistant).then(|| view! { <TurnInfo entry /> })}
        </li>
    }
}

/// The small row under a reply: how it ended, tokens, cost.
#[component]
fn TurnInfo(entry: ChatEntry) -> impl IntoView {
    let status = move || match entry.status.get() {
        MessageStatus::Stopped => Some("Stopped".to_owned()),
        MessageStatus::Failed => Some(match entry.error.get() {
            Some(error) => format!("Failed: {error}"),
            None => "Failed".to_owned(),
        }),
        MessageStatus::Streaming | MessageStatus::Complete => None,
    };
    view! {
        <div class="turn-info">
            {move || entry.model.get().map(|m| view! { <span class="turn-model">{model_name(&m).to_owned()}</span> })}
            {move || status().map(|s| view! { <span class="turn-status">{s}</span> })}
            {move || entry.usage.get().map(|info| view! {
                <span class="usage" title=usage_breakdown(&info)>{usage_summary(&info)}</span>
            })}
        </div>
    }
}

/// `openai/gpt-4o-mini` → `gpt-4o-mini`; the full id is in the picker.
fn model_name(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, name)| name)
}

fn usage_summary(info: &UsageInfo) -> String {
    let approx = if info.estimated { "≈ " } else { "" };
    let mut text = format!(
        "{approx}{} in · {} out",
        info.usage.input_tokens, info.usage.output_tokens
    );
    if let Some(cost) = info.cost_usd {
        text.push_str(&format!(" · {}", format_cost(cost)));
    }
    if info.estimated {
        text.push_str(" · estimated");
    }
    text
}

fn usage_breakdown(info: &UsageInfo) -> String {
    let u = &info.usage;
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
    if let Some(cost) = info.cost_usd {
        lines.push(format!(
            "Cost: {} (approximate, from Rill's price table)",
            format_cost(cost)
        ));
    }
    if info.estimated {
        lines.push(
            "Estimated: the provider reported no usage for this reply (stopped or failed); about 4 characters a token.".into(),
        );
    }
    lines.join("\n")
}

/// Dollars with enough digits to show sub-cent amounts.
pub fn format_cost(usd: f64) -> String {
    if usd == 0.0 {
        "$0".into()
    } else if usd < 0.0001 {
        "<$0.0001".into()
    } else if usd < 0.01 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Usage;

    #[test]
    fn costs_show_sub_cent_amounts_without_rounding_to_zero() {
        assert_eq!(format_cost(0.0), "$0");
        assert_eq!(format_cost(0.000_003), "<$0.0001");
        assert_eq!(format_cost(0.000_312), "$0.0003");
        assert_eq!(format_cost(1.234), "$1.23");
    }

    #[test]
    fn the_row_reads_tokens_then_cost_and_says_when_it_is_estimated() {
        let mut info = UsageInfo {
            usage: Usage {
                input_tokens: 412,
                output_tokens: 138,
                ..Usage::default()
            },
            estimated: false,
            cost_usd: Some(0.000_3),
        };
        assert_eq!(usage_summary(&info), "412 in · 138 out · $0.0003");
        info.estimated = true;
        assert_eq!(
            usage_summary(&info),
            "≈ 412 in · 138 out · $0.0003 · estimated"
        );
        assert!(usage_breakdown(&info).contains("Estimated"));
    }
}
