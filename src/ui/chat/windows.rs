//! The windows of a long conversation the page holds. The server sends a conversation a window
//! of messages at a time (`get_conversation`): the newest with the page, older ones as the
//! reader scrolls up. The page holds at most [`HELD_WINDOWS`] of them around what the reader
//! sees; a window far from view leaves the page (its entries disposed with their owner) and is
//! asked for again when the reader comes back to it, so a page costs the same at any length.

use leptos::prelude::Owner;
use uuid::Uuid;

use crate::model::{Outcome, Totals};

/// Windows the page holds at most: the one the reader is in and one on each side, so the next
/// one arrives before the reader reaches the end of what is held.
pub const HELD_WINDOWS: usize = 3;

/// One window the page holds.
pub struct Window {
    /// Owns the window's entries: dropping the window disposes them.
    pub owner: Owner,
    /// The `before` it was loaded with (`None`: the conversation's newest window).
    pub key: Option<u32>,
    /// The position before which the window above it lies, and the figures of everything
    /// before it (`ConversationView::older_before`, `older_totals`): what the page says of the
    /// older messages once this window is the oldest it holds.
    pub older_before: Option<u32>,
    pub older_totals: Totals,
    /// The key of its first entry (`None`: the only window of a conversation that had no
    /// messages when shown, which starts at the list's start).
    pub first: Option<Uuid>,
}

/// A newer window the page let go of: how to ask for it again, and its figures (the
/// conversation's totals stay whole without it).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dropped {
    pub key: Option<u32>,
    pub totals: Totals,
}

/// Where the window starting at `first` starts in a list with these entry keys.
pub fn start_of(keys: impl IntoIterator<Item = Uuid>, first: Option<Uuid>) -> Option<usize> {
    match first {
        None => Some(0),
        Some(first) => keys.into_iter().position(|key| key == first),
    }
}

/// Adds one message's figures to `totals`.
pub fn add(totals: &mut Totals, outcome: &Outcome) {
    if let Some(usage) = outcome.usage {
        totals.input_tokens = totals
            .input_tokens
            .saturating_add(u64::from(usage.input_tokens));
        totals.output_tokens = totals
            .output_tokens
            .saturating_add(u64::from(usage.output_tokens));
    }
    if let Some(cost) = outcome.cost_usd {
        totals.cost_usd = Some(totals.cost_usd.unwrap_or(0.0) + cost);
    }
    totals.estimated |= outcome.usage_estimated;
}

/// Two sets of figures together.
pub fn sum(a: Totals, b: Totals) -> Totals {
    Totals {
        input_tokens: a.input_tokens.saturating_add(b.input_tokens),
        output_tokens: a.output_tokens.saturating_add(b.output_tokens),
        cost_usd: match (a.cost_usd, b.cost_usd) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        },
        estimated: a.estimated || b.estimated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Usage;

    fn key(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_window_starts_at_its_first_entry_or_is_gone() {
        let keys = [key(1), key(2), key(3)];
        assert_eq!(start_of(keys, Some(key(2))), Some(1));
        assert_eq!(start_of(keys, Some(key(9))), None);
        assert_eq!(start_of(keys, None), Some(0));
    }

    #[test]
    fn figures_add_up_and_a_known_cost_is_never_lost() {
        let mut totals = Totals::default();
        let mut outcome = Outcome::complete();
        outcome.usage = Some(Usage {
            input_tokens: 10,
            output_tokens: 4,
            ..Usage::default()
        });
        outcome.cost_usd = Some(0.5);
        add(&mut totals, &outcome);
        add(&mut totals, &Outcome::complete());
        assert_eq!((totals.input_tokens, totals.output_tokens), (10, 4));
        assert_eq!(totals.cost_usd, Some(0.5));
        assert!(!totals.estimated);

        let older = Totals {
            input_tokens: 1,
            output_tokens: 2,
            cost_usd: None,
            estimated: true,
        };
        let both = sum(older, totals);
        assert_eq!((both.input_tokens, both.output_tokens), (11, 6));
        assert_eq!(both.cost_usd, Some(0.5));
        assert!(both.estimated);
        assert_eq!(sum(older, older).cost_usd, None);
    }
}
