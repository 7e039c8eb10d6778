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

/// `32000` → `32,000`.
pub fn thousands(n: usize) -> String {
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
        assert_eq!(model_name("openai/gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(model_name("compat/org/model"), "org/model");
        assert_eq!(model_name("bare"), "bare");
    }
}
