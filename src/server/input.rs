//! The rules for what a person may send, next to their limits.

use crate::error::ApiError;

pub use crate::model::{MAX_MESSAGE_CHARS, MAX_SYSTEM_PROMPT_CHARS, MAX_TITLE_CHARS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the message is empty")]
    EmptyMessage,
    #[error("the title is empty")]
    EmptyTitle,
    #[error("the {what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

/// A message as it will be stored: trimmed, not empty, not too long.
pub fn message_text(text: &str) -> Result<&str, InputError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(InputError::EmptyMessage);
    }
    within(text, "message", MAX_MESSAGE_CHARS)
}

/// A system prompt as it will be stored: trimmed (empty means none), not too long.
pub fn system_prompt(text: &str) -> Result<&str, InputError> {
    within(text.trim(), "system prompt", MAX_SYSTEM_PROMPT_CHARS)
}

/// A conversation title as it will be stored: one line, trimmed, not empty, not too long.
pub fn title(text: &str) -> Result<String, InputError> {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
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
