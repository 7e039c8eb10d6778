//! How figures read: in the page, and in the messages the server writes for people.

/// Dollars with enough digits to show sub-cent amounts.
pub fn format_cost(usd: f64) -> String {
    if usd == 0.0 {
        "$0".into()
    } else if usd < 0.0001 {
        "<$0.0001".into()
    } else if usd < 0.01 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.2}")
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
    format!("{size:.1} {}", UNITS[unit])
}

/// `openai/gpt-4o-mini` → `gpt-4o-mini`: how a model is named in the picker and under a reply.
pub fn model_name(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_show_sub_cent_amounts_without_rounding_to_zero() {
        assert_eq!(format_cost(0.0), "$0");
        assert_eq!(format_cost(0.000_003), "<$0.0001");
        assert_eq!(format_cost(0.000_312), "$0.0003");
        assert_eq!(format_cost(1.234), "$1.23");
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
