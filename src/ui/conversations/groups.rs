//! The sidebar's groups by last activity, as the chat apps people know have them: Today,
//! Yesterday, Previous 7 days, Previous 30 days, then each month ("November 2026"). Days are the
//! person's own (the browser's time zone), so the groups are added once the page is live: the
//! server does not know the zone.

/// A group of the list: conversations last changed in it are listed under its heading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Group {
    Today,
    Yesterday,
    Previous7Days,
    Previous30Days,
    /// A calendar month, as (year, month 1–12).
    Month(i64, u32),
}

impl Group {
    pub fn heading(&self) -> String {
        match self {
            Group::Today => "Today".into(),
            Group::Yesterday => "Yesterday".into(),
            Group::Previous7Days => "Previous 7 days".into(),
            Group::Previous30Days => "Previous 30 days".into(),
            Group::Month(year, month) => format!("{} {year}", month_name(*month)),
        }
    }
}

/// The person's clock: now, and their zone's offset from UTC (minutes east, so UTC+1 is 60).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub now_ms: i64,
    pub offset_minutes: i64,
}

const DAY_MS: i64 = 86_400_000;

impl Clock {
    /// The group of a conversation last changed at `at_ms` (unix milliseconds). A time after now
    /// (another device's clock ahead) is today.
    pub fn group_of(&self, at_ms: i64) -> Group {
        let local_day = |ms: i64| {
            ms.saturating_add(self.offset_minutes.saturating_mul(60_000))
                .div_euclid(DAY_MS)
        };
        let today = local_day(self.now_ms);
        let day = local_day(at_ms);
        match today.saturating_sub(day) {
            ..=0 => Group::Today,
            1 => Group::Yesterday,
            2..=7 => Group::Previous7Days,
            8..=30 => Group::Previous30Days,
            _ => {
                let (year, month, _) = civil_from_days(day);
                Group::Month(year, month)
            }
        }
    }
}

/// The person's clock as the browser tells it (called from effects: only in the browser).
pub fn browser_clock() -> Clock {
    let date = web_sys::js_sys::Date::new_0();
    // JavaScript counts the offset the other way (minutes west).
    #[allow(clippy::cast_possible_truncation)]
    Clock {
        now_ms: date.get_time() as i64,
        offset_minutes: -(date.get_timezone_offset() as i64),
    }
}

/// (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn month_name(month: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    usize::try_from(month)
        .ok()
        .and_then(|m| m.checked_sub(1))
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06 10:00 UTC.
    const NOW: i64 = 1_796_551_200_000;
    const HOUR: i64 = 3_600_000;

    fn utc() -> Clock {
        Clock {
            now_ms: NOW,
            offset_minutes: 0,
        }
    }

    #[test]
    fn days_are_counted_from_local_midnight() {
        let clock = utc();
        assert_eq!(clock.group_of(NOW), Group::Today);
        assert_eq!(clock.group_of(NOW - 10 * HOUR), Group::Today);
        assert_eq!(clock.group_of(NOW - 11 * HOUR), Group::Yesterday);
        assert_eq!(clock.group_of(NOW + HOUR), Group::Today);
        // In UTC-11 it is 23:00 of the 5th: 11 hours ago was noon of the same day there.
        let west = Clock {
            offset_minutes: -11 * 60,
            ..clock
        };
        assert_eq!(west.group_of(NOW - 11 * HOUR), Group::Today);
        assert_eq!(west.group_of(NOW - 24 * HOUR), Group::Yesterday);
        // In UTC+14 it is midnight of the 7th: an hour ago was yesterday there.
        let east = Clock {
            offset_minutes: 14 * 60,
            ..clock
        };
        assert_eq!(east.group_of(NOW - HOUR), Group::Yesterday);
    }

    #[test]
    fn then_a_week_a_month_and_calendar_months() {
        let clock = utc();
        let days = |n: i64| NOW - n * 24 * HOUR;
        assert_eq!(clock.group_of(days(2)), Group::Previous7Days);
        assert_eq!(clock.group_of(days(7)), Group::Previous7Days);
        assert_eq!(clock.group_of(days(8)), Group::Previous30Days);
        assert_eq!(clock.group_of(days(30)), Group::Previous30Days);
        assert_eq!(clock.group_of(days(31)), Group::Month(2026, 11));
        assert_eq!(clock.group_of(days(31)).heading(), "November 2026");
        assert_eq!(clock.group_of(days(339)).heading(), "January 2026");
        assert_eq!(clock.group_of(days(340)).heading(), "December 2025");
        assert_eq!(clock.group_of(0).heading(), "January 1970");
    }

    #[test]
    fn headings() {
        assert_eq!(Group::Today.heading(), "Today");
        assert_eq!(Group::Previous30Days.heading(), "Previous 30 days");
        assert_eq!(Group::Month(2024, 2).heading(), "February 2024");
    }
}
