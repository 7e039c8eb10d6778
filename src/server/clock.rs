//! The time budgets are counted by: which calendar month (UTC) a run belongs to. A trait, so
//! tests can cross a month boundary without waiting for one.

use std::sync::Arc;

use tower_sessions::cookie::time::OffsetDateTime;

pub trait Clock: Send + Sync + 'static {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        super::db::now_ms()
    }
}

pub type SharedClock = Arc<dyn Clock>;

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

fn utc(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-12`: the calendar month (UTC) of a moment.
pub fn month_of(ms: i64) -> String {
    let t = utc(ms);
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        // 2026-01-31T23:59:59.999Z and one millisecond later.
        assert_eq!(month_of(1_769_903_999_999), "2026-01");
        assert_eq!(month_of(1_769_904_000_000), "2026-02");
        assert_eq!(month_of(0), "1970-01");
        assert_eq!(month_of(i64::MAX), "1970-01", "out of range is not a panic");
    }
}
