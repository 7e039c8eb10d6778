//! When to try a failed provider call again, after the official OpenAI and Anthropic SDKs: retry
//! connection errors, 408, 409, 429 and 5xx (an `x-should-retry` header overrides that), wait as
//! long as the server asks if it asks sanely, else back off exponentially with jitter. The loop
//! itself is the caller's (it knows whether text was already shown).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::LlmError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// The first backoff; each retry doubles it, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A server asking for a longer wait than this is not retried; the error says when to try.
    pub max_server_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_server_wait: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Try again after this wait.
    After(Duration),
    No,
}

/// What a provider's answer said about retrying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryAdvice {
    /// From `retry-after-ms` or `retry-after`; `Duration::MAX` for a value too large to hold.
    pub retry_after: Option<Duration>,
    /// `x-should-retry: true|false`, which overrides the decision by status.
    pub should_retry: Option<bool>,
}

impl RetryPolicy {
    /// Whether to retry after `error`, given `retries_done` retries so far.
    pub fn decide(&self, error: &LlmError, retries_done: u32) -> Retry {
        if retries_done >= self.max_retries || !retryable(error) {
            return Retry::No;
        }
        match error.retry_after() {
            Some(wait) if wait > self.max_server_wait => Retry::No,
            Some(wait) if !wait.is_zero() => Retry::After(wait),
            // No wait asked (or "0", which the SDKs treat the same): back off.
            _ => Retry::After(self.backoff(retries_done, fastrand::f64())),
        }
    }

    /// `initial · 2^n`, capped, times a jitter factor in (0.75, 1] (`unit` is uniform in [0, 1)).
    fn backoff(&self, retries_done: u32, unit: f64) -> Duration {
        let base = 2u32
            .checked_pow(retries_done)
            .and_then(|factor| self.initial_backoff.checked_mul(factor))
            .map_or(self.max_backoff, |d| d.min(self.max_backoff));
        let factor = 1.0 - 0.25 * unit.clamp(0.0, 1.0);
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base)
    }
}

/// The SDKs' rule: transport failures and 408, 409, 429, 5xx, unless the server says otherwise.
fn retryable(error: &LlmError) -> bool {
    let by_status = match error {
        LlmError::Connect { .. } => return true,
        LlmError::RateLimited { .. } | LlmError::Unavailable { .. } => true,
        LlmError::Rejected { status, .. } => matches!(status, 408 | 409),
        LlmError::Unauthorized { .. } => false,
        // A timeout is not a transient refusal; the rest are faults a retry would repeat.
        LlmError::Redirected { .. }
        | LlmError::Idle { .. }
        | LlmError::StreamBroken { .. }
        | LlmError::Malformed { .. }
        | LlmError::TooLarge { .. }
        | LlmError::Provider { .. }
        | LlmError::Local { .. }
        | LlmError::Busy { .. }
        | LlmError::OwnShareUsed { .. } => return false,
    };
    error
        .advice()
        .and_then(|a| a.should_retry)
        .unwrap_or(by_status)
}

impl RetryAdvice {
    /// Reads `retry-after-ms` (milliseconds), `retry-after` (seconds or an HTTP date, relative to
    /// `now`) and `x-should-retry`. Hostile values never panic: negative or NaN ones are ignored,
    /// huge ones become `Duration::MAX`.
    pub(crate) fn from_headers(headers: &HeaderMap, now: SystemTime) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let from_ms = text("retry-after-ms")
            .and_then(|v| v.parse::<f64>().ok())
            .and_then(|ms| duration_from_secs(ms / 1000.0));
        let retry_after = from_ms.or_else(|| {
            let value = text(RETRY_AFTER.as_str())?;
            match value.parse::<f64>() {
                Ok(secs) => duration_from_secs(secs),
                Err(_) => httpdate::parse_http_date(value)
                    .ok()
                    // A date in the past means "now".
                    .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO)),
            }
        });
        let should_retry = text("x-should-retry").and_then(|v| match v {
            v if v.eq_ignore_ascii_case("true") => Some(true),
            v if v.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        });
        Self {
            retry_after,
            should_retry,
        }
    }
}

/// `Duration::from_secs_f64` panics on overflow; here overflow (and infinity) means "very long".
fn duration_from_secs(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Oversized;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.insert(*name, value);
            }
        }
        map
    }

    fn advice(pairs: &[(&'static str, &str)]) -> RetryAdvice {
        RetryAdvice::from_headers(&headers(pairs), SystemTime::UNIX_EPOCH)
    }

    fn status(status: u16, advice: RetryAdvice) -> LlmError {
        LlmError::from_status(status, b"", advice)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    fn is_retried(error: &LlmError) -> bool {
        matches!(policy().decide(error, 0), Retry::After(_))
    }

    #[test]
    fn the_sdks_statuses_are_retried_and_others_not() {
        for code in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(is_retried(&status(code, RetryAdvice::default())), "{code}");
        }
        for code in [400, 401, 403, 404, 413, 422] {
            assert!(!is_retried(&status(code, RetryAdvice::default())), "{code}");
        }
        assert!(is_retried(&LlmError::Connect {
            detail: String::new()
        }));
        let never = [
            LlmError::Idle {
                after: Duration::from_secs(1),
            },
            LlmError::Redirected {
                status: 307,
                host: None,
                detail: String::new(),
            },
            LlmError::StreamBroken {
                detail: String::new(),
            },
            LlmError::Malformed {
                detail: String::new(),
            },
            LlmError::TooLarge {
                what: Oversized::Event,
                limit: 1,
                detail: String::new(),
            },
            LlmError::Provider {
                message: "x".into(),
                detail: String::new(),
            },
            LlmError::Local {
                detail: String::new(),
            },
        ];
        for error in never {
            assert!(!is_retried(&error), "{error:?}");
        }
    }

    #[test]
    fn mid_stream_overloads_are_retried() {
        let overloaded = LlmError::Unavailable {
            status: None,
            message: Some("Overloaded".into()),
            advice: RetryAdvice::default(),
            detail: String::new(),
        };
        assert!(is_retried(&overloaded));
    }

    #[test]
    fn x_should_retry_overrides_the_status() {
        let yes = advice(&[("x-should-retry", "true")]);
        let no = advice(&[("x-should-retry", "false")]);
        assert!(is_retried(&status(400, yes)));
        assert!(is_retried(&status(401, yes)));
        assert!(!is_retried(&status(503, no)));
        assert!(!is_retried(&status(429, no)));
        assert!(is_retried(&status(
            503,
            advice(&[("x-should-retry", "maybe")])
        )));
    }

    #[test]
    fn retries_stop_at_the_limit() {
        let error = status(503, RetryAdvice::default());
        assert!(matches!(policy().decide(&error, 1), Retry::After(_)));
        assert_eq!(policy().decide(&error, 2), Retry::No);
        assert_eq!(policy().decide(&error, u32::MAX), Retry::No);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = policy();
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(500));
        assert_eq!(p.backoff(0, 1.0), Duration::from_millis(375));
        assert_eq!(p.backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(p.backoff(4, 0.0), Duration::from_secs(8));
        assert_eq!(p.backoff(5, 0.0), Duration::from_secs(8));
        assert_eq!(p.backoff(u32::MAX, 0.0), Duration::from_secs(8));
        for _ in 0..1000 {
            let Retry::After(wait) = p.decide(&status(500, RetryAdvice::default()), 1) else {
                panic!("expected a retry");
            };
            assert!(wait > Duration::from_millis(750) && wait <= Duration::from_secs(1));
        }
        let huge = RetryPolicy {
            max_retries: u32::MAX,
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            max_server_wait: Duration::MAX,
        };
        assert!(huge.backoff(3, 0.5) > Duration::from_secs(1 << 40));
    }

    #[test]
    fn the_server_wait_wins_when_sane() {
        let error = status(429, advice(&[("retry-after", "3")]));
        assert_eq!(
            policy().decide(&error, 0),
            Retry::After(Duration::from_secs(3))
        );
        let error = status(
            503,
            advice(&[("retry-after-ms", "62.5"), ("retry-after", "30")]),
        );
        assert_eq!(
            policy().decide(&error, 0),
            Retry::After(Duration::from_micros(62_500))
        );
        // "0" means no wait of its own: the backoff applies.
        let error = status(429, advice(&[("retry-after", "0")]));
        assert!(
            matches!(policy().decide(&error, 0), Retry::After(w) if w <= Duration::from_millis(500))
        );
    }

    #[test]
    fn a_wait_longer_than_allowed_is_not_retried_and_the_error_says_when() {
        let error = status(429, advice(&[("retry-after", "300")]));
        assert_eq!(policy().decide(&error, 0), Retry::No);
        assert_eq!(
            error.to_string(),
            "rate limited by the provider; try again in about 5 minutes"
        );
    }

    #[test]
    fn http_dates_are_relative_to_now() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").expect("date");
        let read = |value: &str| {
            RetryAdvice::from_headers(&headers(&[("retry-after", value)]), now).retry_after
        };
        assert_eq!(
            read("Wed, 21 Oct 2015 07:28:42 GMT"),
            Some(Duration::from_secs(42))
        );
        assert_eq!(read("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
    }

    #[test]
    fn hostile_header_values_never_panic() {
        let read = |name: &'static str, value: &str| advice(&[(name, value)]).retry_after;
        assert_eq!(read("retry-after", "1e20"), Some(Duration::MAX));
        assert_eq!(read("retry-after", "inf"), Some(Duration::MAX));
        assert_eq!(read("retry-after", "1e308"), Some(Duration::MAX));
        assert_eq!(read("retry-after", "-5"), None);
        assert_eq!(read("retry-after", "NaN"), None);
        assert_eq!(read("retry-after", "soon"), None);
        assert_eq!(read("retry-after", ""), None);
        assert_eq!(read("retry-after-ms", "1e300"), Some(Duration::MAX));
        assert_eq!(read("retry-after-ms", "-1"), None);
        assert_eq!(
            read("retry-after-ms", "18446744073709551615000"),
            Some(Duration::MAX)
        );
        assert_eq!(read("retry-after", "Mon, 99 Foo 99999 99:99:99 GMT"), None);
        // A negative or broken `retry-after-ms` falls back to `retry-after`.
        assert_eq!(
            advice(&[("retry-after-ms", "nan"), ("retry-after", "2")]).retry_after,
            Some(Duration::from_secs(2))
        );
        for value in ["1e20", "inf", "1e308"] {
            let error = status(429, advice(&[("retry-after", value)]));
            assert_eq!(policy().decide(&error, 0), Retry::No);
            assert_eq!(
                error.to_string(),
                "rate limited by the provider; try again much later"
            );
        }
        let generous = RetryPolicy {
            max_server_wait: Duration::MAX,
            ..policy()
        };
        let error = status(429, advice(&[("retry-after", "1e20")]));
        assert_eq!(generous.decide(&error, 0), Retry::After(Duration::MAX));
    }
}
