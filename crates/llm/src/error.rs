use std::time::Duration;

/// What can go wrong talking to a provider, phrased for the person who will read it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("the provider rejected the API key ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    #[error("rate limited by the provider{}: {message}", retry_hint(.retry_after))]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("the provider is overloaded or failing ({status}): {message}")]
    Unavailable { status: u16, message: String },
    #[error("the provider refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("could not reach the provider: {0}")]
    Connect(String),
    #[error("the connection to the provider was lost mid-reply: {0}")]
    StreamBroken(String),
    #[error("the provider sent a malformed stream: {0}")]
    Malformed(String),
    #[error("the provider reported an error: {0}")]
    Provider(String),
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!(" (retry after {}s)", after.as_secs().max(1)),
        None => String::new(),
    }
}

impl LlmError {
    /// Maps a non-success HTTP status and its body to an error.
    pub fn from_status(status: u16, body: &str, retry_after: Option<Duration>) -> Self {
        let message = error_message_from_body(body);
        match status {
            401 | 403 => Self::Unauthorized { status, message },
            429 => Self::RateLimited {
                retry_after,
                message,
            },
            500..=599 => Self::Unavailable { status, message },
            _ => Self::Rejected { status, message },
        }
    }

    /// Worth trying again (before any text was shown): the fault is transient.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Connect(_)
        )
    }

    /// How long the provider asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Providers wrap errors as `{"error": {"message": ...}}` (OpenAI, Anthropic); fall back to the raw body.
fn error_message_from_body(body: &str) -> String {
    let parsed: Option<String> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        });
    let message = parsed.unwrap_or_else(|| body.trim().to_owned());
    const MAX: usize = 300;
    if message.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}…", &message[..cut])
    } else if message.is_empty() {
        "no details given".to_owned()
    } else {
        message
    }
}

/// Parses a `retry-after` header given in seconds (the form providers use).
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_specific_errors() {
        let body = r#"{"error":{"message":"Incorrect API key provided"}}"#;
        assert_eq!(
            LlmError::from_status(401, body, None),
            LlmError::Unauthorized {
                status: 401,
                message: "Incorrect API key provided".into()
            }
        );
        let limited = LlmError::from_status(429, "slow down", Some(Duration::from_secs(3)));
        assert!(limited.is_transient());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        assert!(limited.to_string().contains("retry after 3s"));
        assert!(matches!(
            LlmError::from_status(529, "", None),
            LlmError::Unavailable { status: 529, .. }
        ));
        assert!(!LlmError::from_status(400, "bad", None).is_transient());
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let body = "é".repeat(400);
        let LlmError::Rejected { message, .. } = LlmError::from_status(400, &body, None) else {
            panic!("expected Rejected");
        };
        assert!(message.ends_with('…'));
        assert!(message.len() <= 304);
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(Some("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }
}
