//! How figures read: in the page, and in the messages the server writes for people.

/// Dollars with enough digits to show sub-cent amounts.
pub fn format_cost(usd: f64) -> String {
    if usd == 0.0 {
        "$0".into()
    } else if usd < 0.0001 {
        "<$0.0001".into()
    } else if usd < 0.01 {
        format!("${}", fixed(usd, 4))
    } else {
        format!("${}", fixed(usd, 2))
    }
}

/// `x` with `decimals` digits after the point (at most 9), as `format!("{x:.2}")` writes the
/// figures the page shows (halves round away from zero). Integer arithmetic: core's float
/// formatting is about 5 KB of the browser's module after compression, for these few figures.
pub fn fixed(x: f64, decimals: u32) -> String {
    let scale = 10_u64.pow(decimals.min(9));
    // `as` saturates (and maps NaN to 0): no figure the page shows comes near the limit.
    let scaled = (x.abs() * scale as f64).round() as u64;
    let sign = if x < 0.0 && scaled > 0 { "-" } else { "" };
    let (whole, fraction) = (scaled / scale, scaled % scale);
    if decimals == 0 {
        format!("{sign}{whole}")
    } else {
        format!(
            "{sign}{whole}.{fraction:0width$}",
            width = decimals.min(9) as usize
        )
    }
}

/// `32000` → `32,000`: a whole number, of any unsigned integer type, as people read counts.
pub fn thousands(n: impl std::fmt::Display) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1536` → `1.5 KB`, `1073741824` → `1.0 GB` (powers of 1,024, as storage is counted).
pub fn byte_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{} {}", fixed(size, 1), UNITS[unit])
}

/// `openai/gpt-4o-mini` → `gpt-4o-mini`: how a model is named in the picker and under a reply.
pub fn model_name(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, name)| name)
}

/// `2026-12-06`, the day (UTC) of a unix time in milliseconds.
pub fn date_of(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A budget as typed: empty is "no limit".
pub fn parse_budget(text: &str) -> Result<Option<f64>, String> {
    let text = text.trim().trim_start_matches('$');
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(b) if b.is_finite() && b >= 0.0 => Ok(Some(b)),
        // Quoted by hand, not with `{:?}`: the release WASM writes no Debug text
        // (`-Zfmt-debug=none`, scripts/release-build.sh).
        _ => Err(format!("“{text}” is not an amount in dollars")),
    }
}

/// A budget as the input shows it: exactly as stored (0.0002 stays 0.0002, 5 is 5).
pub fn budget_text(budget: Option<f64>) -> String {
    budget.map(|b| b.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_as_dollars_and_empty_is_no_limit() {
        assert_eq!(parse_budget(""), Ok(None));
        assert_eq!(parse_budget(" $12.5 "), Ok(Some(12.5)));
        assert_eq!(parse_budget("0"), Ok(Some(0.0)));
        assert!(parse_budget("-1").is_err());
        assert_eq!(
            parse_budget(" ten "),
            Err("“ten” is not an amount in dollars".to_owned())
        );
        assert!(parse_budget("NaN").is_err());
        for budget in [Some(0.0002), Some(5.0), Some(12.5), None] {
            assert_eq!(parse_budget(&budget_text(budget)), Ok(budget), "{budget:?}");
        }
    }

    #[test]
    fn dates_are_days_of_the_calendar() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(1_796_515_200_000), "2026-12-06");
        assert_eq!(date_of(951_782_400_000), "2000-02-29");
    }

    #[test]
    fn costs_show_sub_cent_amounts_without_rounding_to_zero() {
        assert_eq!(format_cost(0.0), "$0");
        assert_eq!(format_cost(0.000_003), "<$0.0001");
        assert_eq!(format_cost(0.000_312), "$0.0003");
        assert_eq!(format_cost(1.234), "$1.23");
        assert_eq!(format_cost(12.5), "$12.50");
    }

    #[test]
    fn fixed_point_figures_read_as_format_writes_them() {
        for (x, decimals) in [
            (0.0, 2),
            (1.234, 2),
            (0.000_312, 4),
            (1.5, 1),
            (1024.0, 1),
            (2.5, 3),
            (0.15, 3),
            (-3.26, 1),
            (123_456.789, 2),
            (7.0, 0),
        ] {
            assert_eq!(
                fixed(x, decimals),
                format!("{x:.*}", decimals as usize),
                "{x} to {decimals}"
            );
        }
        assert_eq!(fixed(-0.000_01, 2), "0.00");
        assert_eq!(fixed(f64::NAN, 2), "0.00");
    }

    #[test]
    fn numbers_and_model_names_read_as_people_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(32_000), "32,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(2_387_745_u64), "2,387,745");
        assert_eq!(thousands(u32::MAX), "4,294,967,295");
        assert_eq!(model_name("openai/gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(model_name("compat/org/model"), "org/model");
        assert_eq!(model_name("bare"), "bare");
        assert_eq!(byte_size(0), "0 bytes");
        assert_eq!(byte_size(1536), "1.5 KB");
        assert_eq!(byte_size(1 << 30), "1.0 GB");
    }
}
