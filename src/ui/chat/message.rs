use leptos::prelude::*;

use super::attachments::MessageFiles;
use super::on_demand::{on_demand, preload_thinking, thinking_text};
use super::reply_text::ReplyText;
use super::state::{ChatEntry, ChatState};
use crate::format::{format_cost, model_name, thousands};
use crate::model::{MessageStatus, Outcome, Role};
use crate::ui::phone::is_touch_first;

#[component]
pub fn Message(entry: ChatEntry, state: ChatState) -> impl IntoView {
    let role = match entry.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let status = move || entry.status().unwrap_or(MessageStatus::Complete);
    // Before the first token of text or thinking.
    let waiting = move || {
        status() == MessageStatus::Streaming
            && entry.content.try_with(String::is_empty).unwrap_or(false)
            && entry.thinking.try_with(String::is_empty).unwrap_or(false)
    };
    view! {
        // Its id, for a search result to land on (none until the server named it).
        <li
            class=format!("message {role}")
            data-status=move || status().as_str()
            data-message-id=move || entry.message_id.try_get_value().flatten().map(|id| id.to_string())
        >
            // Who wrote it, for screen readers (and a heading to move between messages by).
            <h2 class="sr-only">{move || author(&entry)}</h2>
            <Show when=waiting>
                <div class="pending" aria-live="polite">
                    <span class="dot"></span><span class="dot"></span><span class="dot"></span>
                    {move || match entry.queued.try_get().flatten() {
                        Some(ahead) => view! {
                            <span class="queued">{format!("Waiting for the model: {ahead} {} ahead", if ahead == 1 { "reply" } else { "replies" })}</span>
                        }.into_any(),
                        None => view! { <span class="sr-only">"Thinking…"</span> }.into_any(),
                    }}
                </div>
            </Show>
            {match entry.role {
                Role::User => view! { <UserText entry state /> }.into_any(),
                Role::Assistant => view! { <Thinking entry /><ReplyText entry state /> }.into_any(),
            }}
            {(entry.role == Role::Assistant).then(|| view! { <TurnInfo entry state /> })}
        </li>
    }
}

/// A reply's thinking, collapsed: "Thinking…" while the model thinks, then "Thinking". Its text
/// is plain (line breaks kept) and is put in the page only while the section is open, so a long
/// stream of thinking costs nothing until someone reads it.
#[component]
fn Thinking(entry: ChatEntry) -> impl IntoView {
    let has_thinking = move || entry.thinking.try_with(|t| !t.is_empty()).unwrap_or(false);
    let live =
        move || entry.is_streaming() && entry.content.try_with(String::is_empty).unwrap_or(false);
    let open = RwSignal::new(false);
    view! {
        <Show when=has_thinking>
            <details
                class="reasoning"
                class:live=live
                on:toggle:target=move |ev| open.set(ev.target().open())
            >
                <summary on:pointerenter=|_| preload_thinking() on:focus=|_| preload_thinking()>{move || if live() { "Thinking…" } else { "Thinking" }}</summary>
                <Show when=move || open.try_get().unwrap_or(false)>
                    {on_demand(move || thinking_text(entry))}
                </Show>
            </details>
        </Show>
    }
}

/// A person's message, line breaks kept; a long one shows its start with "Show more". Below it:
/// Copy, Edit, and `‹ 2/3 ›` when it has alternatives.
#[component]
fn UserText(entry: ChatEntry, state: ChatState) -> impl IntoView {
    let long = move || {
        entry
            .content
            .try_with(|text| is_long(text))
            .unwrap_or(false)
    };
    let expanded = RwSignal::new(false);
    let editing = move || state.editing.try_get().flatten() == Some(entry.key);
    view! {
        <Show
            when=editing
            fallback=move || view! {
                <div class="content" class:collapsed=move || long() && !expanded.try_get().unwrap_or(false)>
                    {move || entry.content.try_get().unwrap_or_default()}
                </div>
                <MessageFiles entry />
                <Show when=long>
                    <button
                        type="button"
                        class="show-more"
                        aria-expanded=move || expanded.try_get().unwrap_or(false).to_string()
                        on:click=move |_| expanded.update(|e| *e = !*e)
                    >
                        {move || if expanded.try_get().unwrap_or(false) { "Show less" } else { "Show more" }}
                    </button>
                </Show>
                <div class="message-actions">
                    <CopyMessage entry />
                    <button
                        type="button"
                        disabled=move || state.is_streaming() || entry.turn_id.try_get_value().flatten().is_none()
                        on:click=move |_| state.editing.set(Some(entry.key))
                    >"Edit"</button>
                    <Alternatives entry state />
                </div>
            }
        >
            <EditQuestion entry state />
        </Show>
    }
}

/// A question edited in place: Enter (or Send) asks it again as a new branch (on a touch screen,
/// Send); Esc cancels.
#[component]
fn EditQuestion(entry: ChatEntry, state: ChatState) -> impl IntoView {
    let text = RwSignal::new(entry.content.get_untracked());
    let field = NodeRef::<leptos::html::Textarea>::new();
    let send = move || {
        let wanted = text.get_untracked();
        if let Some(turn_id) = entry.turn_id.get_value() {
            if !wanted.trim().is_empty() && !state.is_streaming() {
                state.resend(turn_id, wanted);
            }
        }
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        // As in the composer: on a touch screen Enter adds a line, and Send sends.
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() && !is_touch_first() {
            ev.prevent_default();
            send();
        } else if ev.key() == "Escape" {
            ev.prevent_default();
            state.editing.set(None);
            state.focus_composer();
        }
    };
    Effect::new(move || {
        if let Some(el) = field.get() {
            let _ = el.focus();
            let end = u32::try_from(el.value().encode_utf16().count()).unwrap_or(0);
            let _ = el.set_selection_range(end, end);
        }
    });
    view! {
        <form class="edit-question" on:submit=move |ev| { ev.prevent_default(); send(); }>
            <textarea
                node_ref=field
                aria-label="Edit message"
                prop:value=move || text.try_get().unwrap_or_default()
                on:input:target=move |ev| text.set(ev.target().value())
                on:keydown=on_keydown
            ></textarea>
            <div class="message-actions">
                <button type="submit" class="primary" disabled=move || state.is_streaming()>"Send"</button>
                <button type="button" on:click=move |_| { state.editing.set(None); state.focus_composer(); }>"Cancel"</button>
            </div>
        </form>
    }
}

/// `‹ 2/3 ›`: the versions of a question (edits and regenerations), each with its own answers.
#[component]
fn Alternatives(entry: ChatEntry, state: ChatState) -> impl IntoView {
    let place = move || {
        let turn_id = entry.turn_id.try_get_value().flatten()?;
        entry
            .alternatives
            .try_with(|all| {
                let index = all.iter().position(|t| *t == turn_id)?;
                (all.len() > 1).then_some((index, all.len()))
            })
            .flatten()
    };
    let go = move |step: isize| {
        let Some((index, count)) = place() else {
            return;
        };
        let Some(target) = index.checked_add_signed(step).filter(|i| *i < count) else {
            return;
        };
        if let Some(turn_id) = entry
            .alternatives
            .with_untracked(|all| all.get(target).copied())
        {
            state.switch_to(turn_id);
        }
    };
    move || {
        place().map(|(index, count)| {
            view! {
                <span class="alternatives" role="group" aria-label="Versions of this message">
                    <button
                        type="button"
                        aria-label="Previous version"
                        disabled=move || index == 0 || state.is_streaming()
                        on:click=move |_| go(-1)
                    >"‹"</button>
                    <span class="alternative-place">{format!("{}/{count}", index + 1)}</span>
                    <button
                        type="button"
                        aria-label="Next version"
                        // Braces: a bare `>=` would end the tag inside `view!`.
                        disabled=move || { index + 1 >= count || state.is_streaming() }
                        on:click=move |_| go(1)
                    >"›"</button>
                </span>
            }
        })
    }
}

/// Copies a whole message, as the markdown it was written in.
#[component]
fn CopyMessage(entry: ChatEntry) -> impl IntoView {
    let label = RwSignal::new("Copy");
    let copy = move |_| {
        let text = entry.content.get_untracked();
        let written = wasm_bindgen_futures::JsFuture::from(
            window().navigator().clipboard().write_text(&text),
        );
        leptos::task::spawn_local(async move {
            label.try_set(if written.await.is_ok() {
                "Copied"
            } else {
                "Copy failed"
            });
            set_timeout(
                move || {
                    label.try_set("Copy");
                },
                std::time::Duration::from_millis(1500),
            );
        });
    };
    view! { <button type="button" class="copy-message" on:click=copy>{move || label.try_get().unwrap_or("Copy")}</button> }
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
    let status = move || entry.outcome.try_with(status_text).flatten();
    let left_out = move || entry.outcome.try_with(|o| o.left_out).unwrap_or(0);
    let can_continue = move || {
        entry
            .outcome
            .try_with(Outcome::can_continue)
            .unwrap_or(false)
            && !state.is_streaming()
            && state.is_last_reply(&entry)
    };
    // The last answer can be asked for again: "Retry" when it failed.
    let can_regenerate =
        move || !entry.is_streaming() && !state.is_streaming() && state.is_last_reply(&entry);
    let finished = move || !entry.is_streaming();
    view! {
        <div class="turn-info">
            {move || entry.model.try_get().flatten().map(|m| view! { <span class="turn-model" title=m.clone()>{model_name(&m).to_owned()}</span> })}
            {move || status().map(|s| view! { <span class="turn-status">{s}</span> })}
            {move || entry.prompt_revision.try_get().flatten().filter(|r| *r > 0).map(|revision| {
                let text = state.prompt_text(revision).unwrap_or_default();
                let text = if text.is_empty() { "None.".to_owned() } else { text };
                // What it was, on request: a disclosure, as the usage below (not a tooltip).
                view! {
                    <details class="prompt-details">
                        <summary class="turn-prompt" aria-label=format!("System prompt: revision {revision}")>
                            {format!("prompt v{revision}")}
                        </summary>
                        <p class="prompt-text">{text}</p>
                    </details>
                }
            })}
            {move || entry.outcome.try_with(|o| o.error_detail.clone()).flatten().map(|detail| view! {
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
            // The figures, and their breakdown on request: a disclosure reachable by keyboard and
            // touch (a `title` tooltip is neither).
            {move || entry.outcome.try_with(|o| o.usage.is_some().then(|| view! {
                <details class="usage-details">
                    <summary class="usage" aria-label=format!("Usage: {}", usage_summary(o))>{usage_summary(o)}</summary>
                    <p class="usage-breakdown">{usage_breakdown(o)}</p>
                </details>
            })).flatten()}
            // An import without figures still says where its reply came from.
            {move || entry.outcome.try_with(|o| (o.imported && o.usage.is_none()).then(|| view! {
                <span class="usage imported" title="Brought in by an import: written elsewhere, not counted in this server's spending">"imported"</span>
            })).flatten()}
            <Show when=can_continue>
                <button type="button" class="continue" on:click=move |_| state.continue_reply(entry)>
                    "Continue"
                </button>
            </Show>
            <Show when=finished>
                <span class="message-actions">
                    <CopyMessage entry />
                    <Show when=can_regenerate>
                        <button type="button" class="regenerate" on:click=move |_| state.regenerate(entry)>
                            {move || if matches!(entry.status(), Some(MessageStatus::Failed | MessageStatus::Interrupted)) { "Retry" } else { "Regenerate" }}
                        </button>
                    </Show>
                </span>
            </Show>
        </div>
    }
}

/// Who wrote a message, as its heading says to screen readers.
fn author(entry: &ChatEntry) -> String {
    match entry.role {
        Role::User => "You said:".to_owned(),
        Role::Assistant => match entry.model.try_get().flatten() {
            Some(model) => format!("{} said:", model_name(&model)),
            None => "The assistant said:".to_owned(),
        },
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
        MessageStatus::Complete if outcome.cut_at_limit => {
            Some("Cut at the length limit".to_owned())
        }
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
    let mut text = format!(
        "{approx}{} in · {} out",
        thousands(u.input_tokens),
        thousands(u.output_tokens)
    );
    match info.cost_usd {
        // Brought in by an import: whatever it cost was not spent here.
        _ if info.imported => text.push_str(" · imported"),
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
            thousands(u.input_tokens),
            thousands(u.cached_input_tokens),
            thousands(u.cache_write_tokens)
        ),
        format!(
            "Output: {} tokens ({} reasoning)",
            thousands(u.output_tokens),
            thousands(u.reasoning_tokens)
        ),
    ];
    lines.push(match info.cost_usd {
        _ if info.imported => {
            "Cost: imported (written elsewhere; not counted in this server's spending)".to_owned()
        }
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
        // Long conversations run into millions of tokens: they read with separators.
        info.usage_estimated = false;
        info.usage = Some(Usage {
            input_tokens: 2_387_745,
            output_tokens: 12_034,
            ..Usage::default()
        });
        assert_eq!(usage_summary(&info), "2,387,745 in · 12,034 out · $0.0003");
    }

    #[test]
    fn an_imported_reply_reads_imported_where_its_cost_would_be() {
        let info = Outcome {
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 20,
                ..Usage::default()
            }),
            cost_usd: Some(0.5),
            imported: true,
            ..Outcome::complete()
        };
        assert_eq!(usage_summary(&info), "10 in · 20 out · imported");
        assert!(usage_breakdown(&info).contains("Cost: imported"));
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
        let cut = Outcome {
            cut_at_limit: true,
            ..Outcome::complete()
        };
        assert_eq!(
            status_text(&cut).as_deref(),
            Some("Cut at the length limit")
        );
        assert!(cut.can_continue());
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
