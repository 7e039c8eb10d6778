//! `LlmError`: what went wrong talking to a provider. `Display` is a short sentence for the person
//! in the chat page (no URLs, paths, backtraces or raw bodies); [`LlmError::detail`] is for the
//! server log.

use std::time::Duration;

use crate::retry::RetryAdvice;

/// The longest provider message shown to a person.
const MAX_MESSAGE_CHARS: usize = 300;
/// The most of a response body that goes into a log line.
const MAX_EXCERPT_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// 401 or 403: the key is wrong, revoked or lacks access.
    #[error("the provider rejected the API key ({status}){}", said(.message))]
    Unauthorized {
        status: u16,
        message: Option<String>,
        advice: RetryAdvice,
        detail: String,
    },
    /// 429, or a rate-limit error event mid-stream (`status: None`).
    #[error("rate limited by the provider{}{}", wait_hint(.advice), said(.message))]
    RateLimited {
        status: Option<u16>,
        message: Option<String>,
        advice: RetryAdvice,
        detail: String,
    },
    /// 5xx (Anthropic's 529 included), or an overload error event mid-stream.
    #[error("the provider is overloaded or failing{}{}{}", status_hint(.status), wait_hint(.advice), said(.message))]
    Unavailable {
        status: Option<u16>,
        message: Option<String>,
        advice: RetryAdvice,
        detail: String,
    },
    /// Any other 4xx.
    #[error("the provider refused the request ({status}){}{}", wait_hint(.advice), said(.message))]
    Rejected {
        status: u16,
        message: Option<String>,
        advice: RetryAdvice,
        detail: String,
    },
    /// A 3xx answer. Never followed: the API key would travel to wherever it points.
    /// The target host is in `host` and `detail`, for admins and the log, not in the message.
    #[error("the provider answered with a redirect ({status}); Rill does not follow redirects, so check the provider's base URL")]
    Redirected {
        status: u16,
        host: Option<String>,
        detail: String,
    },
    #[error("could not reach the provider")]
    Connect { detail: String },
    /// No byte arrived for `after`, waiting for the answer or inside it.
    #[error("the provider sent nothing for {}", seconds(*.after))]
    Idle { after: Duration },
    #[error("the connection to the provider was lost mid-reply")]
    StreamBroken { detail: String },
    #[error("the provider sent a malformed response")]
    Malformed { detail: String },
    /// A bound on what Rill reads from a provider was exceeded.
    #[error("{}", .what.describe(*.limit))]
    TooLarge {
        what: Oversized,
        limit: usize,
        detail: String,
    },
    /// An error event mid-stream that is not a known transient fault.
    #[error("the provider reported an error: {message}")]
    Provider { message: String, detail: String },
    /// The in-process model failed; the engine's message (which may carry a backtrace) is in
    /// `detail`.
    #[error("the local model failed")]
    Local { detail: String },
    /// The in-process model has more requests waiting than it queues, or this one waited past
    /// its deadline.
    #[error("the built-in model is busy with other replies; try again in a minute")]
    Busy { detail: String },
    /// The person already has a reply generating and one waiting on the in-process model.
    #[error(
        "you already have a reply being written and one waiting for the built-in model; wait for \
         one to finish, or stop one"
    )]
    OwnShareUsed { detail: String },
}

/// Which bound [`LlmError::TooLarge`] hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversized {
    /// One SSE line or event.
    Event,
    /// The body of `GET /models`.
    ModelList,
}

impl Oversized {
    fn describe(self, limit: usize) -> String {
        let size = byte_size(limit);
        match self {
            Self::Event => format!("an event from the provider was larger than {size}"),
            Self::ModelList => format!("the provider's model list was larger than {size}"),
        }
    }
}

/// What an error event in the middle of a stream amounts to, whatever the protocol calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamFault {
    /// The same fault as a 5xx before the stream (transient).
    Overloaded,
    /// The same fault as a 429 before the stream (transient).
    RateLimited,
    /// The provider's own error.
    Other,
}

impl LlmError {
    /// An error event a provider sent mid-stream: `status` if the event carries one, its
    /// message (shown if it reads as one), and the raw event for the log.
    pub(crate) fn mid_stream(
        fault: StreamFault,
        status: Option<u16>,
        message: Option<String>,
        event: &str,
    ) -> Self {
        let detail = format!("error event: {}", excerpt(event.as_bytes()));
        let advice = RetryAdvice::default();
        match fault {
            StreamFault::Overloaded => Self::Unavailable {
                status,
                message,
                advice,
                detail,
            },
            StreamFault::RateLimited => Self::RateLimited {
                status,
                message,
                advice,
                detail,
            },
            StreamFault::Other => Self::Provider {
                message: message.unwrap_or_else(|| "no details given".to_owned()),
                detail,
            },
        }
    }

    /// A short, stable name for the kind of failure (a metrics label, a log field).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Rejected { .. } => "rejected",
            Self::Redirected { .. } => "redirected",
            Self::Connect { .. } => "connect",
            Self::Idle { .. } => "idle",
            Self::StreamBroken { .. } => "stream_broken",
            Self::Malformed { .. } => "malformed",
            Self::TooLarge { .. } => "too_large",
            Self::Provider { .. } => "provider",
            Self::Local { .. } => "local",
            Self::Busy { .. } => "busy",
            Self::OwnShareUsed { .. } => "own_share_used",
        }
    }

    /// Everything useful for the server log: the person-facing text plus the error chain, the
    /// URL, an excerpt of the body, retry headers. Never shown in the page.
    pub fn detail(&self) -> String {
        let extra = match self {
            Self::Unauthorized { detail, .. }
            | Self::RateLimited { detail, .. }
            | Self::Unavailable { detail, .. }
            | Self::Rejected { detail, .. }
            | Self::Redirected { detail, .. }
            | Self::Connect { detail }
            | Self::StreamBroken { detail }
            | Self::Malformed { detail }
            | Self::TooLarge { detail, .. }
            | Self::Provider { detail, .. }
            | Self::Local { detail }
            | Self::Busy { detail }
            | Self::OwnShareUsed { detail } => detail.as_str(),
            Self::Idle { .. } => "",
        };
        if extra.is_empty() {
            self.to_string()
        } else {
            format!("{self} [{extra}]")
        }
    }

    /// Maps a non-success, non-redirect HTTP status and its (possibly cut) body to an error. The
    /// body's text is shown only when it parses as a known provider error shape.
    pub fn from_status(status: u16, body: &[u8], advice: RetryAdvice) -> Self {
        Self::from_http(status, body, advice, "")
    }

    /// [`Self::from_status`] with a note for the log (the request line, how the body was read).
    pub(crate) fn from_http(status: u16, body: &[u8], advice: RetryAdvice, context: &str) -> Self {
        let message = provider_message(body);
        let detail = http_detail(status, body, &advice, context);
        match status {
            401 | 403 => Self::Unauthorized {
                status,
                message,
                advice,
                detail,
            },
            429 => Self::RateLimited {
                status: Some(status),
                message,
                advice,
                detail,
            },
            500..=599 => Self::Unavailable {
                status: Some(status),
                message,
                advice,
                detail,
            },
            _ => Self::Rejected {
                status,
                message,
                advice,
                detail,
            },
        }
    }

    /// What the provider said about retrying, for the errors that come with an HTTP answer.
    pub(crate) fn advice(&self) -> Option<&RetryAdvice> {
        match self {
            Self::Unauthorized { advice, .. }
            | Self::RateLimited { advice, .. }
            | Self::Unavailable { advice, .. }
            | Self::Rejected { advice, .. } => Some(advice),
            _ => None,
        }
    }

    /// How long the provider asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.advice().and_then(|a| a.retry_after)
    }
}

/// A provider's own error message, from the shapes providers document; `None` for anything else
/// (an HTML page from a proxy, a cut body), which goes to the log only.
pub(crate) fn provider_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = value
        // OpenAI, Anthropic, Gemini, llama.cpp, vLLM.
        .pointer("/error/message")
        // Gemini's streaming endpoint answers errors as a one-element array.
        .or_else(|| value.pointer("/0/error/message"))
        // Ollama: {"error": "model 'x' not found"}.
        .or_else(|| value.get("error").filter(|e| e.is_string()))
        // Older vLLM: {"object": "error", "message": ...}.
        .or_else(|| {
            (value.get("object").and_then(|o| o.as_str()) == Some("error"))
                .then(|| value.get("message"))
                .flatten()
        })?
        .as_str()?;
    shown_message(text)
}

/// A provider message fit for the page: one line with no links (an upstream URL is for the
/// log) and no key-shaped words ([`redact_keys`]), at most [`MAX_MESSAGE_CHARS`], `None` if empty.
pub(crate) fn shown_message(text: &str) -> Option<String> {
    let line: String = redact_keys(text)
        .split_whitespace()
        .map(|word| if word.contains("://") { "[link]" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.is_empty() {
        return None;
    }
    match line.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => Some(format!("{}…", &line[..cut])),
        None => Some(line),
    }
}

/// `text` with every word that looks like a credential replaced by `[key]`: OpenAI and
/// Anthropic keys (`sk-…`, `sk-ant-…`, `sk-proj-…`), Google's (`AIza…`), the word after
/// `Bearer`, and any long run of letters and digits mixed (a token of another shape). A provider
/// that echoes a key in an error must not show it to people or write it to the log.
pub fn redact_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_bearer = false;
    let mut rest = text;
    while !rest.is_empty() {
        // Words are runs of the characters keys are made of; everything else is kept as is.
        let key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        let start = rest.find(key_char).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !key_char(c)).unwrap_or(rest.len());
        // A full stop after a word ends the sentence; it is not part of the key.
        let word = rest[..end].trim_end_matches('.');
        if word.is_empty() {
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let secret = after_bearer || looks_like_key(word);
        after_bearer = word.eq_ignore_ascii_case("bearer");
        out.push_str(if secret { "[key]" } else { word });
        out.push_str(&rest[word.len()..end]);
        rest = &rest[end..];
    }
    out
}

fn looks_like_key(word: &str) -> bool {
    let prefixed = ["sk-", "sk_", "AIza", "xai-", "gsk_", "hf_"]
        .iter()
        .any(|p| word.starts_with(p) && word.len() >= p.len() + 12);
    let letters = word.chars().filter(char::is_ascii_alphabetic).count();
    let digits = word.chars().filter(char::is_ascii_digit).count();
    prefixed || (word.len() >= 32 && letters >= 8 && digits >= 4)
}

/// Up to [`MAX_EXCERPT_BYTES`] of a body, on one line, for the log, with keys redacted.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let cut = body.len().min(MAX_EXCERPT_BYTES);
    let mut text: String = redact_keys(&String::from_utf8_lossy(&body[..cut]))
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cut < body.len() {
        text.push('…');
    }
    text
}

fn http_detail(status: u16, body: &[u8], advice: &RetryAdvice, context: &str) -> String {
    let mut detail = format!("HTTP {status}");
    if !context.is_empty() {
        detail = format!("{context}: {detail}");
    }
    if let Some(wait) = advice.retry_after {
        detail.push_str(&format!("; asked to wait {wait:?}"));
    }
    if let Some(retry) = advice.should_retry {
        detail.push_str(&format!("; x-should-retry {retry}"));
    }
    detail.push_str(&format!("; body: {}", excerpt(body)));
    detail
}

fn said(message: &Option<String>) -> String {
    message
        .as_deref()
        .map_or_else(String::new, |m| format!(": {m}"))
}

fn status_hint(status: &Option<u16>) -> String {
    status.map_or_else(String::new, |s| format!(" ({s})"))
}

fn wait_hint(advice: &RetryAdvice) -> String {
    match advice.retry_after {
        Some(wait) if !wait.is_zero() => format!("; try again {}", in_words(wait)),
        _ => String::new(),
    }
}

/// "in about 45 seconds" under 90 s, minutes under 90 min, hours beyond; rounded.
pub(crate) fn in_words(wait: Duration) -> String {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_millis() >= 500));
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("in about 1 {unit}")
        } else {
            format!("in about {n} {unit}s")
        }
    };
    if secs < 90 {
        plural(secs.max(1), "second")
    } else if secs < 90 * 60 {
        plural(secs.saturating_add(30) / 60, "minute")
    } else if secs < 1000 * 3600 {
        plural(secs.saturating_add(1800) / 3600, "hour")
    } else {
        // Weeks away, or an absurd header: a number would only confuse.
        "much later".to_owned()
    }
}

/// "120 s", "0.5 s".
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn byte_size(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// reqwest's top-level messages are terse ("error sending request"); the causes say what happened.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advice(secs: u64) -> RetryAdvice {
        RetryAdvice {
            retry_after: Some(Duration::from_secs(secs)),
            ..RetryAdvice::default()
        }
    }

    #[test]
    fn keys_a_provider_echoes_are_shown_and_logged_as_key() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-proj-abcDEF1234567890xyz. Also AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv, sk-ant-api03-AbCdEf0123456789 and Bearer eyJhbGciOi.payload.sig"}}"#;
        let error = LlmError::from_status(401, body, RetryAdvice::default());
        let shown = error.to_string();
        for secret in ["sk-proj", "AIzaSy", "sk-ant", "eyJhbGci"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
            assert!(!error.detail().contains(secret), "{secret} in the log line");
        }
        assert!(
            shown.contains("Incorrect API key provided: [key]."),
            "{shown}"
        );
        // Ordinary words, ids and numbers stay.
        assert_eq!(
            redact_keys("model gpt-4o-mini at 2026-12-06, request req_123 failed (429)"),
            "model gpt-4o-mini at 2026-12-06, request req_123 failed (429)"
        );
    }

    #[test]
    fn statuses_map_to_specific_errors() {
        let body = br#"{"error":{"message":"Incorrect API key provided"}}"#;
        let error = LlmError::from_status(401, body, RetryAdvice::default());
        assert!(matches!(
            &error,
            LlmError::Unauthorized { status: 401, message: Some(m), .. } if m == "Incorrect API key provided"
        ));
        assert_eq!(
            error.to_string(),
            "the provider rejected the API key (401): Incorrect API key provided"
        );
        assert!(matches!(
            LlmError::from_status(529, b"", RetryAdvice::default()),
            LlmError::Unavailable {
                status: Some(529),
                ..
            }
        ));
        assert!(matches!(
            LlmError::from_status(429, b"", advice(3)),
            LlmError::RateLimited { .. }
        ));
        assert!(matches!(
            LlmError::from_status(408, b"", RetryAdvice::default()),
            LlmError::Rejected { status: 408, .. }
        ));
    }

    #[test]
    fn every_known_error_shape_is_shown() {
        let shapes: [&[u8]; 5] = [
            br#"{"error":{"message":"openai says","type":"invalid_request_error"}}"#,
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"anthropic says"}}"#,
            br#"[{"error":{"code":400,"message":"gemini says","status":"INVALID_ARGUMENT"}}]"#,
            br#"{"error":"ollama says"}"#,
            br#"{"object":"error","message":"vllm says","type":"BadRequestError","code":400}"#,
        ];
        for body in shapes {
            let shown = LlmError::from_status(400, body, RetryAdvice::default()).to_string();
            assert!(shown.ends_with(" says"), "{shown}");
        }
    }

    #[test]
    fn an_unknown_body_is_logged_not_shown() {
        let body = b"<html><body>502 Bad Gateway at http://10.0.0.7/internal</body></html>";
        let error = LlmError::from_status(400, body, RetryAdvice::default());
        assert_eq!(error.to_string(), "the provider refused the request (400)");
        assert!(error.detail().contains("Bad Gateway at http://10.0.0.7"));
        let cut = br#"{"error":{"message":"cut off"#;
        let error = LlmError::from_status(500, cut, RetryAdvice::default());
        assert_eq!(
            error.to_string(),
            "the provider is overloaded or failing (500)"
        );
    }

    #[test]
    fn links_in_provider_messages_stay_in_the_log() {
        let body = br#"{"error":{"message":"You exceeded your quota. Read https://platform.example.com/docs/errors?key=abc for more."}}"#;
        let error = LlmError::from_status(429, body, RetryAdvice::default());
        let shown = error.to_string();
        assert!(
            shown.contains("You exceeded your quota. Read [link] for more."),
            "{shown}"
        );
        assert!(!shown.contains("platform.example.com"), "{shown}");
        assert!(error
            .detail()
            .contains("https://platform.example.com/docs/errors"));
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary_and_kept_on_one_line() {
        let body = format!(
            r#"{{"error":{{"message":"line\nbreak {}"}}}}"#,
            "é".repeat(400)
        );
        let error = LlmError::from_status(400, body.as_bytes(), RetryAdvice::default());
        let LlmError::Rejected {
            message: Some(message),
            ..
        } = &error
        else {
            panic!("expected Rejected, got {error:?}");
        };
        assert!(message.ends_with('…'));
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(!message.contains('\n'));
    }

    #[test]
    fn detail_holds_an_excerpt_of_at_most_2_kib() {
        let body = vec![b'x'; 100_000];
        let error = LlmError::from_http(500, &body, RetryAdvice::default(), "POST http://h/v1");
        let detail = error.detail();
        assert!(detail.contains("POST http://h/v1: HTTP 500"));
        assert!(detail.len() < MAX_EXCERPT_BYTES + 200, "{}", detail.len());
        assert!(!error.to_string().contains("xxx"));
    }

    #[test]
    fn a_rate_limit_says_when_to_try_again_in_words() {
        let error = LlmError::from_status(429, b"", advice(300));
        assert_eq!(
            error.to_string(),
            "rate limited by the provider; try again in about 5 minutes"
        );
        let error = LlmError::from_status(429, br#"{"error":{"message":"slow down"}}"#, advice(1));
        assert_eq!(
            error.to_string(),
            "rate limited by the provider; try again in about 1 second: slow down"
        );
        let error = LlmError::from_status(503, b"", advice(7200));
        assert_eq!(
            error.to_string(),
            "the provider is overloaded or failing (503); try again in about 2 hours"
        );
    }

    #[test]
    fn waits_in_words() {
        let words = |secs: u64| in_words(Duration::from_secs(secs));
        assert_eq!(in_words(Duration::from_millis(200)), "in about 1 second");
        assert_eq!(words(45), "in about 45 seconds");
        assert_eq!(words(89), "in about 89 seconds");
        assert_eq!(words(90), "in about 2 minutes");
        assert_eq!(words(300), "in about 5 minutes");
        assert_eq!(words(89 * 60), "in about 89 minutes");
        assert_eq!(words(90 * 60), "in about 2 hours");
        assert_eq!(words(5 * 3600), "in about 5 hours");
        assert_eq!(in_words(Duration::MAX), "much later");
    }

    #[test]
    fn person_facing_texts_name_no_url_or_backtrace() {
        let errors = [
            LlmError::Redirected {
                status: 307,
                host: Some("evil.example".into()),
                detail: "Location: https://evil.example/steal?k=1".into(),
            },
            LlmError::Connect {
                detail: "error sending request for url (http://127.0.0.1:9/v1/chat/completions)"
                    .into(),
            },
            LlmError::Local {
                detail:
                    "narrow invalid args\n   0: candle_core::error::Error::bt\n at /root/.cargo/…"
                        .into(),
            },
            LlmError::Idle {
                after: Duration::from_secs(120),
            },
            LlmError::TooLarge {
                what: Oversized::Event,
                limit: 1 << 20,
                detail: String::new(),
            },
        ];
        for error in &errors {
            let shown = error.to_string();
            assert!(
                !shown.contains("http") && !shown.contains('/') && !shown.contains('\n'),
                "{shown}"
            );
        }
        assert_eq!(
            errors[0].to_string(),
            "the provider answered with a redirect (307); Rill does not follow redirects, so check the provider's base URL"
        );
        assert!(errors[0].detail().contains("https://evil.example/steal"));
        assert_eq!(errors[2].to_string(), "the local model failed");
        assert!(errors[2].detail().contains("candle_core"));
        assert_eq!(errors[3].to_string(), "the provider sent nothing for 120 s");
        assert_eq!(
            errors[4].to_string(),
            "an event from the provider was larger than 1 MiB"
        );
        assert_eq!(
            LlmError::TooLarge {
                what: Oversized::ModelList,
                limit: 8 * 1024 * 1024,
                detail: String::new()
            }
            .to_string(),
            "the provider's model list was larger than 8 MiB"
        );
        assert_eq!(
            LlmError::Idle {
                after: Duration::from_millis(500)
            }
            .to_string(),
            "the provider sent nothing for 0.5 s"
        );
    }
}
