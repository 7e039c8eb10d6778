//! The rules for what a person may send, next to their limits.

use uuid::Uuid;

use crate::error::ApiError;
use crate::model::SendRequest;

pub use crate::model::{MAX_MESSAGE_CHARS, MAX_SYSTEM_PROMPT_CHARS, MAX_TITLE_CHARS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the message is empty")]
    EmptyMessage,
    #[error("the title is empty")]
    EmptyTitle,
    #[error("the {what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("unknown model {0}")]
    UnknownModel(String),
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

/// A message as it will be stored: trimmed, not empty (nothing but spaces, control or format
/// characters is empty), not too long.
pub fn message_text(text: &str) -> Result<&str, InputError> {
    let text = text.trim();
    if text.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err(InputError::EmptyMessage);
    }
    within(text, "message", MAX_MESSAGE_CHARS)
}

/// A send that passed every check: its text is a message, its model is in the catalog, its
/// system prompt is within bounds. Only [`ValidSend::new`] makes one, so whatever takes a
/// `ValidSend` (the turn engine, storage) never checks again.
#[derive(Clone, Debug)]
pub struct ValidSend {
    turn_id: Uuid,
    conversation_id: Option<Uuid>,
    text: String,
    model: Option<String>,
    system_prompt: String,
    alternative_to: Option<Uuid>,
}

impl ValidSend {
    /// Checks `request`; `is_model` says which model ids the catalog has. A new conversation
    /// without a system prompt of its own gets `default_system_prompt`.
    pub fn new(
        request: SendRequest,
        is_model: impl Fn(&str) -> bool,
        default_system_prompt: &str,
    ) -> Result<Self, InputError> {
        if let Some(model) = request.model.as_deref().filter(|m| !is_model(m)) {
            return Err(InputError::UnknownModel(shown(model, 80)));
        }
        let text = message_text(&request.text)?.to_owned();
        let system_prompt = system_prompt(
            request
                .system_prompt
                .as_deref()
                .unwrap_or(default_system_prompt),
        )?
        .to_owned();
        Ok(Self {
            turn_id: request.turn_id,
            conversation_id: request.conversation_id,
            text,
            model: request.model,
            system_prompt,
            alternative_to: request.alternative_to,
        })
    }

    pub fn turn_id(&self) -> Uuid {
        self.turn_id
    }

    /// `None` starts a new conversation.
    pub fn conversation_id(&self) -> Option<Uuid> {
        self.conversation_id
    }

    /// Trimmed, not empty, within [`MAX_MESSAGE_CHARS`].
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A catalog id, or `None` for the conversation's model.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The system prompt a new conversation starts with (ignored for an existing one).
    pub fn system_prompt(&self) -> &str {
        &self.system_prompt
    }

    /// An edit or a regeneration: the turn this one replaces on the branch.
    pub fn alternative_to(&self) -> Option<Uuid> {
        self.alternative_to
    }
}

/// Control characters (NUL, escapes) and Unicode format characters (bidirectional overrides and
/// isolates, zero-width spaces, the byte-order mark, soft hyphens…): invisible, and able to make
/// a title read differently than it is or look empty when it is not. Zero-width joiners are
/// kept: emoji sequences need them.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}'
            | '\u{200B}' | '\u{200E}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// `text` for a message to a person: at most `max` characters (then an ellipsis), so that an
/// echoed name (a model id someone sent) cannot make an answer huge.
pub fn shown(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A system prompt as it will be stored: trimmed (empty means none), not too long.
pub fn system_prompt(text: &str) -> Result<&str, InputError> {
    within(text.trim(), "system prompt", MAX_SYSTEM_PROMPT_CHARS)
}

/// A conversation title as it will be stored: one line, without invisible characters
/// ([`is_invisible`]), trimmed, not empty, not too long.
pub fn title(text: &str) -> Result<String, InputError> {
    let visible: String = text
        .chars()
        .filter(|c| !is_invisible(*c) || c.is_whitespace())
        .collect();
    let line = visible.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return Err(InputError::EmptyTitle);
    }
    within(&line, "title", MAX_TITLE_CHARS)?;
    Ok(line)
}

fn within<'a>(text: &'a str, what: &'static str, max: usize) -> Result<&'a str, InputError> {
    // Counting stops early: a huge paste is refused without walking all of it.
    if text.chars().nth(max).is_some() {
        return Err(InputError::TooLong { what, max });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> SendRequest {
        SendRequest {
            turn_id: Uuid::from_u128(1),
            conversation_id: None,
            text: text.into(),
            model: None,
            system_prompt: None,
            alternative_to: None,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn a_send_is_checked_once_into_a_valid_send() {
        let known = |id: &str| id == "openai/gpt-4o-mini";
        let send = ValidSend::new(request("  hello \n"), known, " Be brief. ").expect("valid");
        assert_eq!(send.text(), "hello");
        // A new conversation without a prompt of its own gets the server's default, trimmed.
        assert_eq!(send.system_prompt(), "Be brief.");
        assert_eq!(send.model(), None);

        let own_prompt = SendRequest {
            system_prompt: Some("Answer in French.".into()),
            model: Some("openai/gpt-4o-mini".into()),
            ..request("bonjour")
        };
        let send = ValidSend::new(own_prompt, known, "Be brief.").expect("valid");
        assert_eq!(send.system_prompt(), "Answer in French.");
        assert_eq!(send.model(), Some("openai/gpt-4o-mini"));

        let unknown = SendRequest {
            model: Some(format!("x/{}", "y".repeat(500))),
            ..request("hi")
        };
        match ValidSend::new(unknown, known, "") {
            // The echoed id is cut short, so a huge one cannot make the answer huge.
            Err(InputError::UnknownModel(shown)) => assert_eq!(shown.chars().count(), 81),
            other => panic!("expected an unknown model, got {other:?}"),
        }
        assert_eq!(
            ValidSend::new(request(" \u{200B} "), known, "").map(|s| s.text().to_owned()),
            Err(InputError::EmptyMessage)
        );
        let long_prompt = SendRequest {
            system_prompt: Some("x".repeat(MAX_SYSTEM_PROMPT_CHARS + 1)),
            ..request("hi")
        };
        assert!(matches!(
            ValidSend::new(long_prompt, known, ""),
            Err(InputError::TooLong {
                what: "system prompt",
                ..
            })
        ));
    }

    #[test]
    fn messages_are_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(message_text("  hi \n"), Ok("hi"));
        assert_eq!(message_text(" \n\t"), Err(InputError::EmptyMessage));
        assert!(message_text(&"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert_eq!(
            message_text(&"x".repeat(MAX_MESSAGE_CHARS + 1)),
            Err(InputError::TooLong {
                what: "message",
                max: MAX_MESSAGE_CHARS
            })
        );
        assert_eq!(system_prompt("  "), Ok(""));
        // Invisible characters neither make a message nor survive in a title.
        assert_eq!(
            message_text("\u{200B}\u{202E}\u{FEFF}\u{0}\n"),
            Err(InputError::EmptyMessage)
        );
        assert_eq!(message_text("a\u{0}b"), Ok("a\u{0}b"));
        assert_eq!(
            title("\u{202E}Invoice\u{2066}.exe\u{200B} \u{0}"),
            Ok("Invoice.exe".to_owned())
        );
        assert_eq!(title("\u{200B}\u{202E}"), Err(InputError::EmptyTitle));
        assert_eq!(
            title("👨\u{200D}👩\u{200D}👧 trip"),
            Ok("👨\u{200D}👩\u{200D}👧 trip".to_owned())
        );
        assert_eq!(shown(&"x".repeat(100_000), 80).chars().count(), 81);
        assert_eq!(title("  Trip\n plans  "), Ok("Trip plans".to_owned()));
        assert_eq!(title(" \n "), Err(InputError::EmptyTitle));
        assert!(matches!(
            title(&"x".repeat(MAX_TITLE_CHARS + 1)),
            Err(InputError::TooLong { what: "title", .. })
        ));
        assert!(system_prompt(&"x".repeat(MAX_SYSTEM_PROMPT_CHARS + 1))
            .expect_err("too long")
            .to_string()
            .contains("system prompt is longer than 16000"));
    }
}
