use serde::{Deserialize, Serialize};

/// Token counts for one completion, normalised across providers.
///
/// `input_tokens` counts *every* prompt token, cached or not, and `output_tokens` every generated
/// token, reasoning included; the other fields are subsets of those two. Providers that report
/// disjoint figures (Anthropic's cache reads sit outside `input_tokens`) are converted on parse, so
/// pricing never double counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u32,
    /// Part of `input_tokens` read from the provider's prompt cache.
    pub cached_input_tokens: u32,
    /// Part of `input_tokens` written to the provider's prompt cache.
    pub cache_write_tokens: u32,
    pub output_tokens: u32,
    /// Part of `output_tokens` spent on hidden reasoning.
    pub reasoning_tokens: u32,
}

impl Usage {
    /// An estimate for turns the provider never reported usage for (stopped or failed):
    /// about four characters a token, the usual rule of thumb for English text.
    pub fn estimate<'a>(prompt: impl IntoIterator<Item = &'a str>, output: &str) -> Self {
        Usage {
            input_tokens: saturating_sum(prompt.into_iter().map(approximate_tokens)),
            output_tokens: approximate_tokens(output),
            ..Usage::default()
        }
    }
}

/// Adds token counts without overflowing (a huge history must not panic a turn).
pub(crate) fn saturating_sum(counts: impl IntoIterator<Item = u32>) -> u32 {
    counts.into_iter().fold(0, u32::saturating_add)
}

/// Roughly four characters a token, counting characters rather than bytes so that accented and
/// CJK text is not overcounted.
pub fn approximate_tokens(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(4)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_count_characters_not_bytes() {
        assert_eq!(approximate_tokens(""), 0);
        assert_eq!(approximate_tokens("abcd"), 1);
        assert_eq!(approximate_tokens("日本語です"), 2);
        let u = Usage::estimate(["Be brief.", "Hello there"], "Hi!");
        assert_eq!((u.input_tokens, u.output_tokens), (3 + 3, 1));
    }

    #[test]
    fn sums_saturate() {
        assert_eq!(saturating_sum([u32::MAX, 1, u32::MAX]), u32::MAX);
        assert_eq!(saturating_sum([1, 2]), 3);
    }
}
