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
}
