//! Which conversation's tokens each sequence of the model's key/value cache holds.
//!
//! The cache is one block of `capacity` token cells shared by a few sequences (slots). A new prompt
//! goes to the slot that already holds its longest prefix, so only the rest is computed: in a
//! conversation that is the last reply and the new question. Room is made by forgetting whole
//! slots, least recently used first. A Stop, an edit or another conversation needs no special
//! case: the prefix match simply finds less.
//!
//! This is bookkeeping only; the caller applies each [`Plan`] to the model's cache.

/// Other conversations may keep at most this fraction of the cells. llama.cpp's attention spans
/// every occupied cell of the shared cache, so cells kept for others slow the conversation being
/// served (measured: a fresh 727-token prefill went from 94 to 73 tokens/s as 3,000 cells of other
/// conversations built up). An eighth keeps a few recent conversations fast at a bounded cost.
const OTHERS_SHARE: usize = 8;

pub struct CacheSlots<T> {
    slots: Vec<Slot<T>>,
    capacity: usize,
    clock: u64,
}

struct Slot<T> {
    /// The tokens whose keys and values are in this sequence, from position 0.
    tokens: Vec<T>,
    last_used: u64,
}

/// What to do to the cache before computing a prompt.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// The sequence that will hold the prompt.
    pub slot: usize,
    /// Messages the prompt left out, to cut from that sequence first.
    pub shift: Option<Shift>,
    /// Prompt tokens then in that sequence: keep them, drop what follows, compute the rest.
    pub reuse: usize,
    /// Sequences to empty to make room.
    pub evict: Vec<usize>,
}

/// Cut `gap` cached tokens at position `at` and move the ones after them back by `gap`. This is
/// how a conversation longer than the context keeps its cache once its oldest turns are left out:
/// the prompt is the system prompt, then a later stretch of what is cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shift {
    pub at: usize,
    pub gap: usize,
}

/// A stretch shorter than this is not worth moving: computing it is cheap anyway.
const MIN_SHIFTED_RUN: usize = 32;

/// How much of a prompt one sequence can serve.
#[derive(Clone, Copy, Debug, Default)]
struct Match {
    /// The common prefix.
    common: usize,
    /// Cached tokens after the prefix that the prompt no longer has.
    gap: usize,
    /// Tokens after the gap that continue the prompt.
    run: usize,
}

impl Match {
    fn usable(&self) -> usize {
        self.common + self.run
    }
}

/// Matches `prompt` against cached `tokens`, at most `limit` tokens in all.
fn matching<T: PartialEq>(tokens: &[T], prompt: &[T], limit: usize) -> Match {
    let run_at = |cached: &[T], wanted: &[T]| {
        cached
            .iter()
            .zip(wanted)
            .take_while(|(a, b)| a == b)
            .count()
    };
    let common = run_at(tokens, prompt).min(limit);
    let mut best = Match {
        common,
        ..Match::default()
    };
    let (Some(next), Some(rest)) = (prompt.get(common), prompt.get(common..limit)) else {
        return best;
    };
    if rest.is_empty() {
        return best;
    }
    for start in common.saturating_add(1)..tokens.len() {
        if tokens[start] != *next {
            continue;
        }
        let run = run_at(&tokens[start..], rest);
        if run > best.run {
            best.gap = start - common;
            best.run = run;
        }
    }
    if best.run < MIN_SHIFTED_RUN {
        best.gap = 0;
        best.run = 0;
    }
    best
}

impl<T: Copy + PartialEq> CacheSlots<T> {
    pub fn new(slots: usize, capacity: usize) -> Self {
        Self {
            slots: (0..slots.max(1))
                .map(|_| Slot {
                    tokens: Vec::new(),
                    last_used: 0,
                })
                .collect(),
            capacity,
            clock: 0,
        }
    }

    /// Chooses where `prompt` goes and what to forget so that it and `reply_room` more tokens fit,
    /// and records the choice. The last prompt token is always computed again (its logits are
    /// what the reply starts from), so `reuse < prompt.len()` for a non-empty prompt.
    pub fn plan(&mut self, prompt: &[T], reply_room: usize) -> Plan {
        self.clock = self.clock.saturating_add(1);
        let limit = prompt.len().saturating_sub(1);
        let matches: Vec<Match> = self
            .slots
            .iter()
            .map(|slot| matching(&slot.tokens, prompt, limit))
            .collect();
        // A slot continues this prompt when it can serve at least half of what it holds: the same
        // conversation, grown (or trimmed at its start). The largest such match wins. Anything
        // else (another conversation that only shares the system prompt, or an early edit) goes to
        // an empty slot, else the least recently used, so that it does not wipe a conversation
        // still in use.
        let slot = (0..self.slots.len())
            .max_by_key(|&i| {
                let s = &self.slots[i];
                let usable = matches[i].usable();
                // (Or the whole prompt is there: the same turn again, as in Retry.)
                let continues =
                    usable > 0 && (usable.saturating_mul(2) >= s.tokens.len() || usable == limit);
                (
                    if continues { usable } else { 0 },
                    s.tokens.is_empty(),
                    std::cmp::Reverse(s.last_used),
                )
            })
            .unwrap_or(0);
        let found = matches[slot];
        let tokens = &mut self.slots[slot].tokens;
        let shift = (found.gap > 0).then(|| {
            tokens.drain(found.common..found.common + found.gap);
            Shift {
                at: found.common,
                gap: found.gap,
            }
        });
        let reuse = found.usable();
        tokens.truncate(reuse);
        self.slots[slot].last_used = self.clock;

        let needed = prompt
            .len()
            .saturating_sub(reuse)
            .saturating_add(reply_room);
        let mut evict = Vec::new();
        let others_limit = self.capacity / OTHERS_SHARE;
        while self.used().saturating_add(needed) > self.capacity
            || self.used().saturating_sub(reuse) > others_limit
        {
            let stalest = (0..self.slots.len())
                .filter(|&i| i != slot && !self.slots[i].tokens.is_empty())
                .min_by_key(|&i| self.slots[i].last_used);
            let Some(stalest) = stalest else { break };
            self.slots[stalest].tokens.clear();
            evict.push(stalest);
        }
        Plan {
            slot,
            shift,
            reuse,
            evict,
        }
    }

    /// Records tokens just computed into `slot`.
    pub fn extend(&mut self, slot: usize, tokens: &[T]) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.tokens.extend_from_slice(tokens);
        }
    }

    /// Forgets a slot whose cache contents are no longer known (after a failed computation).
    pub fn forget(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.tokens.clear();
        }
    }

    /// Token cells in use across all slots.
    pub fn used(&self) -> usize {
        self.slots.iter().map(|s| s.tokens.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(range: std::ops::Range<u32>) -> Vec<u32> {
        range.collect()
    }

    #[test]
    fn a_conversation_reuses_its_prefix_and_computes_only_what_is_new() {
        let mut cache = CacheSlots::new(4, 1000);
        let turn1 = tokens(0..50);
        let plan = cache.plan(&turn1, 20);
        assert_eq!((plan.reuse, plan.evict.len()), (0, 0));
        cache.extend(plan.slot, &turn1);
        cache.extend(plan.slot, &tokens(50..60)); // the reply

        let turn2 = tokens(0..80);
        let again = cache.plan(&turn2, 20);
        assert_eq!(again.slot, plan.slot);
        assert_eq!(again.reuse, 60);
    }

    #[test]
    fn a_diverging_prompt_keeps_only_the_common_part() {
        let mut cache = CacheSlots::new(2, 1000);
        let first = cache.plan(&tokens(0..40), 10);
        cache.extend(first.slot, &tokens(0..40));
        // An edited question: the same system prompt and first turn, then something else.
        let mut edited = tokens(0..25);
        edited.extend(900..930);
        let plan = cache.plan(&edited, 10);
        assert_eq!((plan.slot, plan.reuse), (first.slot, 25));
        assert_eq!(cache.used(), 25);
    }

    #[test]
    fn the_whole_prompt_cached_still_recomputes_its_last_token() {
        let mut cache = CacheSlots::new(1, 100);
        let prompt = tokens(0..10);
        let plan = cache.plan(&prompt, 5);
        cache.extend(plan.slot, &prompt);
        assert_eq!(cache.plan(&prompt, 5).reuse, 9);
        assert_eq!(cache.plan(&[], 5).reuse, 0);
    }

    #[test]
    fn other_conversations_get_other_slots_and_the_stalest_makes_room() {
        // Others may keep 100 of the 800 cells.
        let mut cache = CacheSlots::new(3, 800);
        let mut slots = Vec::new();
        for start in [1000, 2000, 3000] {
            let prompt = tokens(start..start + 30);
            let plan = cache.plan(&prompt, 0);
            assert_eq!(plan.reuse, 0);
            assert!(plan.evict.is_empty(), "others keep 60 of their 100 cells");
            cache.extend(plan.slot, &prompt);
            slots.push(plan.slot);
        }
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), 3, "each conversation has its own slot");

        // Touch the first conversation, so the second is now the least recently used.
        let first = cache.plan(&tokens(1000..1030), 0);
        assert_eq!(first.reuse, 29);
        cache.extend(first.slot, &[1029]);
        // A fourth conversation takes the least recently used slot, the second's.
        let plan = cache.plan(&tokens(4000..4040), 0);
        assert_eq!(plan.reuse, 0);
        assert!(plan.evict.is_empty());
        let third = cache.plan(&tokens(3000..3030), 0);
        assert_eq!(third.reuse, 29, "the third conversation is still cached");
        assert!(cache.plan(&tokens(2000..2030), 0).reuse == 0);
    }

    #[test]
    fn a_prompt_as_large_as_the_cache_evicts_everything_else() {
        let mut cache = CacheSlots::new(2, 100);
        let small = cache.plan(&tokens(0..30), 0);
        cache.extend(small.slot, &tokens(0..30));
        let plan = cache.plan(&tokens(500..590), 10);
        assert_eq!(plan.evict, vec![small.slot]);
        assert_eq!(cache.used(), 0);
    }

    #[test]
    fn a_conversation_sharing_only_the_system_prompt_takes_another_slot() {
        let mut cache = CacheSlots::new(2, 1000);
        let long = tokens(0..100);
        let first = cache.plan(&long, 10);
        cache.extend(first.slot, &long);
        let mut other = tokens(0..5);
        other.extend(500..520);
        let plan = cache.plan(&other, 10);
        assert_ne!(plan.slot, first.slot);
        assert_eq!(plan.reuse, 0);
        cache.extend(plan.slot, &other);
        let mut grown = long.clone();
        grown.extend(100..130);
        assert_eq!(cache.plan(&grown, 10).reuse, 100);
    }

    #[test]
    fn other_conversations_keep_at_most_an_eighth_of_the_cells() {
        let mut cache = CacheSlots::new(4, 800);
        for start in [1000, 2000, 3000, 4000] {
            let prompt = tokens(start..start + 60);
            let plan = cache.plan(&prompt, 0);
            assert!(
                cache.used() - plan.reuse <= 100,
                "others keep at most 100 cells"
            );
            cache.extend(plan.slot, &prompt);
        }
        // Only the newest other conversation fits beside the one being served.
        assert_eq!(cache.plan(&tokens(3000..3060), 0).reuse, 59);
        assert_eq!(cache.plan(&tokens(2000..2060), 0).reuse, 0);
    }

    #[test]
    fn the_same_prompt_again_reuses_it_even_after_a_long_reply() {
        let mut cache = CacheSlots::new(2, 1000);
        let prompt = tokens(0..20);
        let plan = cache.plan(&prompt, 200);
        cache.extend(plan.slot, &prompt);
        cache.extend(plan.slot, &tokens(20..220));
        let again = cache.plan(&prompt, 200);
        assert_eq!((again.slot, again.reuse), (plan.slot, 19));
    }

    #[test]
    fn a_conversation_past_the_context_keeps_its_cache_when_its_oldest_turns_go() {
        let mut cache = CacheSlots::new(2, 1000);
        // System prompt 0..10, then turns 100..400.
        let mut long = tokens(0..10);
        long.extend(100..400);
        let plan = cache.plan(&long, 10);
        cache.extend(plan.slot, &long);
        // The next prompt leaves out the oldest turn (100..150) and adds a question.
        let mut trimmed = tokens(0..10);
        trimmed.extend(150..400);
        trimmed.extend(900..920);
        let next = cache.plan(&trimmed, 10);
        assert_eq!(next.slot, plan.slot);
        assert_eq!(next.shift, Some(Shift { at: 10, gap: 50 }));
        assert_eq!(next.reuse, 260);
        assert_eq!(cache.used(), 260);
        // What the slot now holds is the new prompt's beginning.
        cache.extend(next.slot, &trimmed[260..]);
        assert_eq!(cache.plan(&trimmed, 10).reuse, trimmed.len() - 1);
    }

    #[test]
    fn a_short_stretch_after_a_gap_is_not_moved() {
        let mut cache = CacheSlots::new(1, 1000);
        let mut cached = tokens(0..10);
        cached.extend(100..120);
        let plan = cache.plan(&cached, 0);
        cache.extend(plan.slot, &cached);
        let mut prompt = tokens(0..10);
        prompt.extend(105..125);
        let next = cache.plan(&prompt, 0);
        assert_eq!((next.shift, next.reuse), (None, 10));
    }

    #[test]
    fn a_forgotten_slot_reuses_nothing() {
        let mut cache = CacheSlots::new(1, 100);
        let plan = cache.plan(&tokens(0..20), 0);
        cache.extend(plan.slot, &tokens(0..20));
        cache.forget(plan.slot);
        assert_eq!(cache.plan(&tokens(0..20), 0).reuse, 0);
    }
}
