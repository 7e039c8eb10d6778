//! What one turn sends: the history rebuilt from storage, fitted to the model's context window.
//!
//! The rule, the same for every model: the system prompt is always kept, and so is the newest
//! question (with the text being continued, for a Continue); older messages are left out, oldest
//! first, until the rest fits beside room for the reply. A failed reply is never sent back as if it
//! were an answer. Messages that end up next to one of the same role are joined, because some
//! providers require turns to alternate.

use llm::{ChatMessage, ChatRequest, Provider};

use super::error::RunError;
use crate::model::{MessageStatus, MessageView, Role};
use crate::server::catalog::ModelLimits;
use crate::server::db::TurnRecord;

/// A prompt ready to send.
#[derive(Debug)]
pub struct Prompt {
    pub request: ChatRequest,
    /// Earlier messages that did not fit.
    pub left_out: u32,
}

impl Prompt {
    /// The most this prompt can use: a token for every byte of every message (a byte-level
    /// tokenizer's worst, on text it has never seen) and the whole output cap written, thinking
    /// included. What a budget reserves before sending.
    pub fn worst_case(&self) -> llm::Usage {
        let request = &self.request;
        let input = request
            .system
            .iter()
            .map(String::as_str)
            .chain(request.messages.iter().map(|m| m.content.as_str()))
            .map(|text| {
                u32::try_from(text.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(MESSAGE_OVERHEAD)
            })
            .chain(
                request
                    .messages
                    .iter()
                    .map(|m| image_tokens(m.images.len())),
            )
            .fold(0, u32::saturating_add);
        llm::Usage {
            input_tokens: input,
            output_tokens: request
                .max_output_tokens
                .unwrap_or(0)
                .saturating_add(request.thinking_budget.unwrap_or(0)),
            ..llm::Usage::default()
        }
    }
}

/// Framing tokens each message costs on top of its text (role markers and separators).
const MESSAGE_OVERHEAD: u32 = 4;

/// The most tokens one image (long side at most 2,048 px) can cost with any provider: Gemini
/// tiles it into at most 9 tiles of 258 tokens (2,322), Anthropic about 1,600, OpenAI's high
/// detail 765. Counted for fitting and for the budget's worst case alike.
pub const IMAGE_TOKENS: u32 = 2_400;

/// Tokens `count` images may cost.
pub fn image_tokens(count: usize) -> u32 {
    u32::try_from(count)
        .unwrap_or(u32::MAX)
        .saturating_mul(IMAGE_TOKENS)
}

/// A deliberately high token count for `text`, so that a prompt judged to fit does fit: one token
/// per three bytes (English runs about four characters a token; CJK about one a character, i.e.
/// three bytes) plus the framing.
pub fn token_bound(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(3))
        .unwrap_or(u32::MAX)
        .saturating_add(MESSAGE_OVERHEAD)
}

/// How one model's prompt is measured: its provider's exact count where it has one (the local
/// model), else [`token_bound`].
pub struct Measure<'a>(pub Option<&'a dyn Provider>);

impl Measure<'_> {
    pub(super) fn message(&self, text: &str) -> u32 {
        self.0
            .and_then(|p| p.message_tokens(text))
            .unwrap_or_else(|| token_bound(text))
    }

    /// A message as sent: its text and its images.
    fn chat_message(&self, message: &ChatMessage) -> u32 {
        self.message(&message.content)
            .saturating_add(image_tokens(message.images.len()))
    }

    /// Everything but the messages: the system prompt and the provider's framing.
    pub(super) fn framing(&self, system: Option<&str>) -> u32 {
        self.0
            .and_then(|p| p.framing_tokens(system))
            .unwrap_or_else(|| system.map_or(0, token_bound))
    }
}

/// A prompt's candidates as read (`turns::history`).
#[derive(Debug, Default)]
pub struct History {
    /// Oldest first.
    pub messages: Vec<MessageView>,
    /// Messages before the oldest read that a prompt could have sent: left out unread.
    pub unread: u32,
    /// The images questions carry, by message id (`files::add_files`).
    pub images: std::collections::HashMap<uuid::Uuid, Vec<llm::Image>>,
}

/// Whether a stored message is worth sending back: every question, and a reply with text that
/// did not fail. (`db/totals.rs` counts by the same rule in SQL.)
pub fn is_sendable(message: &MessageView) -> bool {
    message.role == Role::User
        || (!message.content.is_empty() && message.outcome.status != MessageStatus::Failed)
}

/// Builds the request for `record` from the messages read before its reply, for the model the
/// provider calls `provider_model`.
pub fn build(
    record: &TurnRecord,
    history: History,
    provider_model: &str,
    limits: ModelLimits,
    measure: &Measure,
) -> Result<Prompt, RunError> {
    let model = record.model();
    let system = Some(record.system_prompt.clone()).filter(|s| !s.trim().is_empty());
    let History {
        messages,
        unread,
        mut images,
    } = history;
    let mut candidates: Vec<ChatMessage> = messages
        .into_iter()
        .filter(is_sendable)
        .map(|m| ChatMessage {
            images: images.remove(&m.id).unwrap_or_default(),
            role: match m.role {
                Role::User => llm::Role::User,
                Role::Assistant => llm::Role::Assistant,
            },
            content: m.content,
        })
        .collect();
    see_or_refuse(&mut candidates, model, limits.sees_images)?;
    // The text being continued is the last message: the model goes on from it.
    let continuing = !record.reply.content.is_empty();
    if continuing {
        candidates.push(ChatMessage::text(
            llm::Role::Assistant,
            record.reply.content.clone(),
        ));
    }
    // The newest question (and the continued text) are always sent.
    let required = candidates
        .iter()
        .rposition(|m| m.role == llm::Role::User)
        .unwrap_or(0);

    // Room for the reply, but never more than half the window.
    let max_output = limits
        .max_output_tokens
        .min(limits.context_tokens / 2)
        .max(1);
    let budget = limits
        .context_tokens
        .saturating_sub(max_output)
        .saturating_sub(measure.framing(system.as_deref()));
    let required_tokens: u32 = candidates[required..]
        .iter()
        .map(|m| measure.chat_message(m))
        .fold(0, u32::saturating_add);
    if required_tokens > budget {
        return Err(RunError::TooLong {
            model: model.to_owned(),
            tokens: required_tokens,
            fits: budget,
            window: limits.context_tokens,
        });
    }
    let mut used = required_tokens;
    let mut first_kept = required;
    while first_kept > 0 {
        let cost = measure.chat_message(&candidates[first_kept - 1]);
        if used.saturating_add(cost) > budget {
            break;
        }
        used += cost;
        first_kept -= 1;
    }
    // A conversation sent to a provider starts with a question.
    while first_kept < required && candidates[first_kept].role == llm::Role::Assistant {
        first_kept += 1;
    }
    let left_out = u32::try_from(first_kept)
        .unwrap_or(u32::MAX)
        .saturating_add(unread);
    let messages = join_same_roles(candidates.split_off(first_kept));
    Ok(Prompt {
        request: ChatRequest {
            model: provider_model.to_owned(),
            system,
            messages,
            max_output_tokens: Some(max_output),
            thinking_budget: limits.thinking_tokens,
            requester: Some(record.owner.0.clone()),
        },
        left_out,
    })
}

/// For a model that cannot see: the newest question's images are refused (before any request,
/// in words); an earlier question's are left out with a note, so that switching to such a model
/// mid-conversation goes on.
fn see_or_refuse(
    candidates: &mut [ChatMessage],
    model: &str,
    sees_images: bool,
) -> Result<(), RunError> {
    if sees_images {
        return Ok(());
    }
    let newest_question = candidates.iter().rposition(|m| m.role == llm::Role::User);
    for (at, message) in candidates.iter_mut().enumerate() {
        if message.images.is_empty() {
            continue;
        }
        if Some(at) == newest_question {
            return Err(RunError::CannotSee {
                model: model.to_owned(),
            });
        }
        let count = message.images.len();
        message.images.clear();
        message.content.push_str(&format!(
            "\n\n[{count} image(s) attached here are not shown: this model cannot see images]"
        ));
    }
    Ok(())
}

/// Joins neighbours of the same role (a question whose reply failed, then the next question).
fn join_same_roles(messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
    let mut joined: Vec<ChatMessage> = Vec::with_capacity(messages.len());
    for message in messages {
        match joined.last_mut() {
            Some(last) if last.role == message.role => {
                last.content.push_str("\n\n");
                last.content.push_str(&message.content);
                last.images.extend(message.images);
            }
            _ => joined.push(message),
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::model::Outcome;
    use crate::server::db::Owner;

    fn message(role: Role, content: &str, status: MessageStatus) -> MessageView {
        MessageView {
            id: Uuid::new_v4(),
            turn_id: Uuid::new_v4(),
            role,
            content: content.into(),
            thinking: String::new(),
            html: String::new(),
            model: None,
            run: 1,
            system_prompt_revision: None,
            parent_turn_id: None,
            alternatives: Vec::new(),
            attachments: Vec::new(),
            outcome: Outcome {
                status,
                ..Outcome::complete()
            },
        }
    }

    fn user(content: &str) -> MessageView {
        message(Role::User, content, MessageStatus::Complete)
    }

    fn reply(content: &str) -> MessageView {
        message(Role::Assistant, content, MessageStatus::Complete)
    }

    fn record(system_prompt: &str, continued: &str) -> TurnRecord {
        TurnRecord {
            owner: Owner("o".into()),
            conversation_id: Uuid::new_v4(),
            user: user("q"),
            reply: MessageView {
                content: continued.into(),
                html: String::new(),
                ..reply("")
            },
            system_prompt: system_prompt.into(),
        }
    }

    /// A history read whole.
    fn read(messages: Vec<MessageView>) -> History {
        History {
            messages,
            ..History::default()
        }
    }

    const ROOMY: ModelLimits = ModelLimits {
        context_tokens: 100_000,
        max_output_tokens: 1_000,
        thinking_tokens: None,
        sees_images: true,
    };

    fn texts(prompt: &Prompt) -> Vec<(llm::Role, &str)> {
        prompt
            .request
            .messages
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect()
    }

    #[test]
    fn everything_is_sent_when_it_fits() {
        let history = vec![user("a"), reply("b"), user("c")];
        let prompt = build(
            &record("Be brief.", ""),
            read(history),
            "m",
            ROOMY,
            &Measure(None),
        )
        .expect("fits");
        assert_eq!(prompt.left_out, 0);
        assert_eq!(prompt.request.system.as_deref(), Some("Be brief."));
        assert_eq!(
            texts(&prompt),
            [
                (llm::Role::User, "a"),
                (llm::Role::Assistant, "b"),
                (llm::Role::User, "c")
            ]
        );
        assert_eq!(prompt.request.max_output_tokens, Some(1_000));
    }

    #[test]
    fn the_oldest_turns_are_left_out_first_and_the_system_prompt_stays() {
        let long = "x".repeat(3_000); // about 1,000 tokens each
        let mut history = Vec::new();
        for _ in 0..10 {
            history.push(user(&long));
            history.push(reply(&long));
        }
        history.push(user("the newest question"));
        let history_tail = history[11..].to_vec();
        let limits = ModelLimits {
            context_tokens: 6_000,
            max_output_tokens: 1_000,
            thinking_tokens: None,
            sees_images: true,
        };
        let prompt = build(
            &record("Stay kind.", ""),
            read(history),
            "m",
            limits,
            &Measure(None),
        )
        .expect("fits");
        assert_eq!(prompt.request.system.as_deref(), Some("Stay kind."));
        let sent = &prompt.request.messages;
        assert_eq!(
            sent.last().map(|m| m.content.as_str()),
            Some("the newest question")
        );
        assert_eq!(
            sent.first().map(|m| m.role),
            Some(llm::Role::User),
            "starts with a question"
        );
        assert_eq!(prompt.left_out as usize + sent.len(), 21);
        assert!(prompt.left_out >= 16, "left out {}", prompt.left_out);
        // Read partly (the messages older than what was read were never measured), it sends the
        // same and counts the unread ones as left out too.
        let partly = build(
            &record("Stay kind.", ""),
            History {
                messages: history_tail.clone(),
                unread: 11,
                ..History::default()
            },
            "m",
            limits,
            &Measure(None),
        )
        .expect("fits");
        assert_eq!(partly.request.messages, prompt.request.messages);
        assert_eq!(partly.left_out, prompt.left_out);
        let total: u32 = sent.iter().map(|m| token_bound(&m.content)).sum();
        assert!(total + token_bound("Stay kind.") + 1_000 <= 6_000);
    }

    /// A provider that counts a token a byte, plus 5 for each message and 30 for the framing.
    struct OneABytes;

    impl Provider for OneABytes {
        fn stream_chat(&self, _request: ChatRequest) -> llm::EventStream {
            Box::pin(futures::stream::empty())
        }

        fn message_tokens(&self, content: &str) -> Option<u32> {
            Some(u32::try_from(content.len()).unwrap_or(u32::MAX) + 5)
        }

        fn framing_tokens(&self, _system: Option<&str>) -> Option<u32> {
            Some(30)
        }
    }

    #[test]
    fn a_provider_that_counts_exactly_is_trimmed_by_its_own_count() {
        // Digits are a token each in SmolLM2: the estimate (a token per three bytes) would
        // think four times as many of these fit.
        let digits = "1234567890".repeat(100);
        let history = vec![
            user(&digits),
            reply(&digits),
            user(&digits),
            reply("ok"),
            user("?"),
        ];
        let limits = ModelLimits {
            context_tokens: 2_600,
            max_output_tokens: 500,
            thinking_tokens: None,
            sees_images: true,
        };
        let estimated = build(
            &record("", ""),
            read(history.clone()),
            "m",
            limits,
            &Measure(None),
        )
        .expect("fits");
        assert_eq!(estimated.left_out, 0);
        let counted = build(
            &record("", ""),
            read(history),
            "m",
            limits,
            &Measure(Some(&OneABytes)),
        )
        .expect("fits");
        assert_eq!(counted.left_out, 2, "the first exchange does not fit");
        let sent: u32 = counted
            .request
            .messages
            .iter()
            .map(|m| OneABytes.message_tokens(&m.content).unwrap_or(0))
            .sum();
        assert!(30 + sent + 500 <= 2_600);
    }

    #[test]
    fn failed_replies_are_not_sent_back_and_their_neighbours_are_joined() {
        let history = vec![
            user("first"),
            message(Role::Assistant, "half an answ", MessageStatus::Failed),
            user("second"),
            message(Role::Assistant, "", MessageStatus::Stopped),
            message(Role::User, "third", MessageStatus::Complete),
        ];
        let prompt =
            build(&record("", ""), read(history), "m", ROOMY, &Measure(None)).expect("fits");
        assert_eq!(
            texts(&prompt),
            [(llm::Role::User, "first\n\nsecond\n\nthird")]
        );
        assert_eq!(prompt.request.system, None);
    }

    #[test]
    fn a_continuation_ends_with_the_text_so_far() {
        let history = vec![user("tell me")];
        let prompt = build(
            &record("", "Once upon"),
            read(history),
            "m",
            ROOMY,
            &Measure(None),
        )
        .expect("fits");
        assert_eq!(
            texts(&prompt),
            [
                (llm::Role::User, "tell me"),
                (llm::Role::Assistant, "Once upon")
            ]
        );
    }

    #[test]
    fn a_question_too_long_for_the_window_is_explained() {
        let limits = ModelLimits {
            context_tokens: 4_096,
            max_output_tokens: 512,
            thinking_tokens: None,
            sees_images: true,
        };
        let mut record = record("", "");
        record.reply.model = Some("local/small".into());
        let error = build(
            &record,
            read(vec![user(&"word ".repeat(4_000))]),
            "small",
            limits,
            &Measure(None),
        )
        .expect_err("too long")
        .to_string();
        assert!(error.contains("too long for local/small"), "{error}");
        assert!(error.contains("4096"), "{error}");
    }

    #[test]
    fn a_small_window_keeps_half_for_the_prompt() {
        let limits = ModelLimits {
            context_tokens: 2_000,
            max_output_tokens: 8_192,
            thinking_tokens: None,
            sees_images: true,
        };
        let prompt = build(
            &record("", ""),
            read(vec![user("hi")]),
            "m",
            limits,
            &Measure(None),
        )
        .expect("fits");
        assert_eq!(prompt.request.max_output_tokens, Some(1_000));
    }
}
