//! The dated model table shipped with the app (`prices.toml`), overridable per model in the
//! config file: each model's price, so a turn's normalised token counts (`llm::Usage`) give its
//! approximate cost, and where known its context window and longest reply.

use std::collections::HashMap;

use serde::Deserialize;

use crate::model::{Price, Usage};

const SHIPPED: &str = include_str!("prices.toml");

#[derive(Clone, Debug, Deserialize)]
pub struct PriceTable {
    pub as_of: String,
    pub source: String,
    prices: HashMap<String, PriceEntry>,
}

/// One model's row: its price, and what the provider documents of its limits.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PriceEntry {
    #[serde(flatten)]
    pub price: Price,
    /// Tokens of prompt and reply together the model reads at most.
    #[serde(default)]
    pub context_tokens: Option<u32>,
    /// The most tokens the model writes in one reply.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// Ask the model to think, in at most this many tokens, and show its thinking (Anthropic's
    /// extended thinking, Gemini's thought summaries). Unset: not asked.
    #[serde(default)]
    pub thinking_tokens: Option<u32>,
    /// Whether the model reads images; unset: a hosted model does.
    #[serde(default)]
    pub images: Option<bool>,
}

impl From<Price> for PriceEntry {
    fn from(price: Price) -> Self {
        Self {
            price,
            context_tokens: None,
            max_output_tokens: None,
            thinking_tokens: None,
            images: None,
        }
    }
}

impl PriceTable {
    /// The shipped table with `overrides` (from the config file) laid over it.
    pub fn shipped_with(overrides: &HashMap<String, PriceEntry>) -> Result<Self, toml::de::Error> {
        let mut table: PriceTable = toml::from_str(SHIPPED)?;
        table
            .prices
            .extend(overrides.iter().map(|(id, p)| (id.clone(), p.clone())));
        Ok(table)
    }

    pub fn price(&self, model_id: &str) -> Option<&Price> {
        self.prices.get(model_id).map(|e| &e.price)
    }

    pub fn entry(&self, model_id: &str) -> Option<&PriceEntry> {
        self.prices.get(model_id)
    }

    /// Dollars for `usage` on `model_id`, or `None` when the model has no known price.
    pub fn cost(&self, model_id: &str, usage: &Usage) -> Option<f64> {
        self.price(model_id).map(|p| cost(p, usage))
    }
}

/// Cached and cache-write tokens are parts of `input_tokens` and priced at their own rates (the
/// input rate when the provider has none); the rest of the input at the input rate. Reasoning
/// tokens are part of `output_tokens`, billed as output, so they are not added again.
pub fn cost(price: &Price, usage: &Usage) -> f64 {
    let per_token = |per_million: f64| per_million / 1_000_000.0;
    let cached = u64::from(usage.cached_input_tokens);
    let written = u64::from(usage.cache_write_tokens);
    let plain_input = u64::from(usage.input_tokens).saturating_sub(cached + written);
    plain_input as f64 * per_token(price.input)
        + cached as f64 * per_token(price.cached_input.unwrap_or(price.input))
        + written as f64 * per_token(price.cache_write.unwrap_or(price.input))
        + f64::from(usage.output_tokens) * per_token(price.output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn the_shipped_table_parses_and_is_dated() {
        let table = PriceTable::shipped_with(&HashMap::new()).expect("prices.toml parses");
        assert!(!table.as_of.is_empty() && !table.source.is_empty());
        assert!(table.price("openai/gpt-4o-mini").is_some());
        assert_eq!(
            table.cost(
                "local/smollm2-135m",
                &Usage {
                    input_tokens: 500,
                    output_tokens: 90,
                    ..Usage::default()
                }
            ),
            Some(0.0)
        );
        assert_eq!(table.cost("someone/unknown", &Usage::default()), None);
        // Every hosted model the shipped table names has its documented window and reply cap (the
        // local and development models have their own).
        for (id, entry) in &table.prices {
            if !id.starts_with("local/") && !id.starts_with("dev/") {
                assert!(
                    entry.context_tokens.is_some() && entry.max_output_tokens.is_some(),
                    "{id} lacks its limits"
                );
            }
        }
    }

    #[test]
    fn plain_usage() {
        let p = Price {
            input: 0.15,
            cached_input: Some(0.075),
            cache_write: None,
            output: 0.60,
        };
        let u = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            ..Usage::default()
        };
        assert!(close(cost(&p, &u), 0.75));
    }

    #[test]
    fn openai_cached_tokens_are_a_cheaper_part_of_the_input() {
        // prompt_tokens 2,000 of which 1,500 cached; 100 output.
        let p = Price {
            input: 2.50,
            cached_input: Some(1.25),
            cache_write: None,
            output: 10.0,
        };
        let u = Usage {
            input_tokens: 2_000,
            cached_input_tokens: 1_500,
            output_tokens: 100,
            ..Usage::default()
        };
        let expected = 500.0 * 2.5e-6 + 1_500.0 * 1.25e-6 + 100.0 * 10e-6;
        assert!(close(cost(&p, &u), expected));
    }

    #[test]
    fn reasoning_tokens_are_billed_once_as_output() {
        let p = Price {
            input: 1.10,
            cached_input: Some(0.275),
            cache_write: None,
            output: 4.40,
        };
        let u = Usage {
            input_tokens: 100,
            output_tokens: 1_000,
            reasoning_tokens: 800,
            ..Usage::default()
        };
        assert!(close(cost(&p, &u), 100.0 * 1.1e-6 + 1_000.0 * 4.4e-6));
    }

    #[test]
    fn anthropic_cache_reads_and_writes_each_have_their_rate() {
        // Normalised from Anthropic's input_tokens 50 + cache_read 1,000 + cache_creation 200.
        let p = Price {
            input: 3.0,
            cached_input: Some(0.30),
            cache_write: Some(3.75),
            output: 15.0,
        };
        let u = Usage {
            input_tokens: 1_250,
            cached_input_tokens: 1_000,
            cache_write_tokens: 200,
            output_tokens: 300,
            reasoning_tokens: 0,
        };
        let expected = 50.0 * 3e-6 + 1_000.0 * 0.3e-6 + 200.0 * 3.75e-6 + 300.0 * 15e-6;
        assert!(close(cost(&p, &u), expected));
    }

    #[test]
    fn overrides_replace_and_add_prices() {
        let overrides = HashMap::from([
            (
                "openai/gpt-4o-mini".to_owned(),
                PriceEntry::from(Price {
                    input: 1.0,
                    cached_input: None,
                    cache_write: None,
                    output: 2.0,
                }),
            ),
            (
                "ollama/llama3.2".to_owned(),
                PriceEntry {
                    price: Price {
                        input: 0.0,
                        cached_input: None,
                        cache_write: None,
                        output: 0.0,
                    },
                    context_tokens: Some(32_768),
                    max_output_tokens: None,
                    thinking_tokens: None,
                    images: None,
                },
            ),
        ]);
        let table = PriceTable::shipped_with(&overrides).expect("table");
        assert_eq!(
            table.price("openai/gpt-4o-mini").map(|p| p.input),
            Some(1.0)
        );
        assert_eq!(
            table
                .entry("ollama/llama3.2")
                .and_then(|e| e.context_tokens),
            Some(32_768)
        );
        // Without a cached rate, cached tokens cost the input rate.
        let u = Usage {
            input_tokens: 1_000_000,
            cached_input_tokens: 400_000,
            ..Usage::default()
        };
        assert!(close(
            table.cost("openai/gpt-4o-mini", &u).unwrap_or_default(),
            1.0
        ));
    }
}
