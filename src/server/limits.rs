//! What one person may start: replies running at once, turns per minute, and event streams held
//! open. Turns are checked when a turn is claimed, before anything is stored or sent, and streams
//! before one is opened, so a refusal costs nothing.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::config::LimitSettings;
use super::db::Owner;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("you have {0} replies being written already; wait for one to finish, or stop one")]
    TooManyRunning(usize),
    #[error("too many messages in a short time; try again in {} s", .0.as_secs().max(1))]
    TooFast(Duration),
    #[error(
        "you have {0} live connections open (tabs, devices, replies being read); close some and try again"
    )]
    TooManyStreams(usize),
    #[error("too many changes in a short time; try again in {} s", .0.as_secs().max(1))]
    TooManyChanges(Duration),
}

pub struct TurnLimits {
    running: Counts,
    rate: DefaultKeyedRateLimiter<Owner>,
    streams: Counts,
    /// The quota the rate enforces, for the count replicas share (`db::limits`).
    per_minute: u32,
}

/// How many of something each owner holds, each under a cap.
#[derive(Clone)]
struct Counts {
    max: usize,
    held: Arc<Mutex<HashMap<Owner, usize>>>,
}

impl Counts {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            held: Arc::default(),
        }
    }

    /// One more for `owner`, or `Err` with how many they hold.
    fn take(&self, owner: &Owner) -> Result<Slot, usize> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(owner.clone()).or_insert(0);
        if *n >= self.max {
            return Err(*n);
        }
        *n += 1;
        Ok(Slot {
            owner: owner.clone(),
            counts: self.clone(),
        })
    }
}

/// One thing an owner holds (a running reply, an open stream), counted until dropped.
pub struct Slot {
    owner: Owner,
    counts: Counts,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.owner);
            }
        }
    }
}

/// A running reply, held until the turn's task ends.
pub type RunningSlot = Slot;

impl TurnLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        let per_minute = NonZeroU32::new(settings.turns_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            running: Counts::new(settings.running_per_user),
            rate: RateLimiter::keyed(Quota::per_minute(per_minute)),
            streams: Counts::new(settings.streams_per_user),
            per_minute: per_minute.get(),
        }
    }

    /// Replies one person may have running at once.
    pub fn max_running(&self) -> usize {
        self.running.max
    }

    /// Turns one person may start a minute.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// One more open event stream of `owner`, held until the stream is dropped.
    pub fn open_stream(&self, owner: &Owner) -> Result<Slot, LimitError> {
        self.streams.take(owner).map_err(LimitError::TooManyStreams)
    }

    /// Admits one more turn of `owner`, or says why not and when to try again.
    pub fn admit(&self, owner: &Owner) -> Result<RunningSlot, LimitError> {
        // Counted before the rate check so two sends cannot both take the last slot; given back
        // (dropped) if the rate refuses.
        let slot = self
            .running
            .take(owner)
            .map_err(LimitError::TooManyRunning)?;
        if let Err(not_until) = self.rate.check_key(owner) {
            drop(slot);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(LimitError::TooFast(wait));
        }
        self.rate.retain_recent();
        Ok(slot)
    }
}

/// Server functions the writes per minute do not count: those that change nothing (or, for
/// `stop_turn`, only ever save money), and those limited otherwise (sign-in and sign-up by
/// their throttles, sends and Continues by the turns per minute). Every other server function
/// writes, and counts: a new one is limited unless named here.
pub const UNCOUNTED_CALLS: &[&str] = &[
    "current_user",
    "sign_in_options",
    "sign_in",
    "sign_up",
    "send_message",
    "continue_reply",
    "admin_overview",
    "audit_log",
    "list_users",
    "list_conversations",
    "get_conversation",
    "search",
    "list_pinned",
    "default_system_prompt",
    "list_models",
    "turn_events",
    "conversation_events",
    "stop_turn",
    "monthly_usage",
    "list_shares",
    "list_api_keys",
];

/// Changes per minute, per person, through the API.
pub struct WriteLimits {
    rate: DefaultKeyedRateLimiter<Owner>,
}

impl WriteLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        let per_minute = NonZeroU32::new(settings.writes_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            rate: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Counts one call of `endpoint` (a server function's name) by `owner`; `Err` says when to
    /// try again. The calls [`UNCOUNTED_CALLS`] names are not counted.
    pub fn check(&self, owner: &Owner, endpoint: &str) -> Result<(), LimitError> {
        if UNCOUNTED_CALLS.contains(&endpoint) {
            return Ok(());
        }
        let checked = self.rate.check_key(owner);
        self.rate.retain_recent();
        checked.map_err(|not_until| {
            LimitError::TooManyChanges(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(name: &str) -> Owner {
        Owner(name.into())
    }

    #[test]
    fn running_replies_are_bounded_per_owner_and_freed_when_they_end() {
        let limits = TurnLimits::new(&LimitSettings {
            running_per_user: 2,
            turns_per_minute: 100,
            ..LimitSettings::default()
        });
        let a1 = limits.admit(&owner("a")).expect("first");
        let _a2 = limits.admit(&owner("a")).expect("second");
        assert_eq!(
            limits.admit(&owner("a")).err(),
            Some(LimitError::TooManyRunning(2))
        );
        // Another person is not affected.
        assert!(limits.admit(&owner("b")).is_ok());
        drop(a1);
        assert!(limits.admit(&owner("a")).is_ok());
    }

    #[test]
    fn the_rate_says_when_to_try_again_and_gives_the_slot_back() {
        let limits = TurnLimits::new(&LimitSettings {
            running_per_user: 10,
            turns_per_minute: 2,
            ..LimitSettings::default()
        });
        drop(limits.admit(&owner("a")).expect("first"));
        drop(limits.admit(&owner("a")).expect("second"));
        match limits.admit(&owner("a")) {
            Err(LimitError::TooFast(wait)) => {
                assert!(
                    wait > Duration::ZERO && wait <= Duration::from_secs(30),
                    "{wait:?}"
                );
            }
            other => panic!("expected a rate refusal, got {:?}", other.err()),
        }
        assert!(limits.running.held.lock().expect("lock").is_empty());
        assert!(limits.admit(&owner("b")).is_ok());
    }

    #[test]
    fn writes_are_limited_per_person_and_reads_are_not() {
        let limits = WriteLimits::new(&LimitSettings {
            writes_per_minute: 3,
            ..LimitSettings::default()
        });
        for _ in 0..3 {
            assert!(limits.check(&owner("a"), "rename_conversation").is_ok());
        }
        assert!(matches!(
            limits.check(&owner("a"), "set_system_prompt"),
            Err(LimitError::TooManyChanges(_))
        ));
        assert!(limits.check(&owner("a"), "get_conversation").is_ok());
        assert!(
            limits.check(&owner("a"), "send_message").is_ok(),
            "turns have their own"
        );
        assert!(limits.check(&owner("b"), "rename_conversation").is_ok());
    }

    /// Every name in [`UNCOUNTED_CALLS`] is a server function's (a renamed one would otherwise start
    /// counting, or a stale name hide nothing).
    #[test]
    fn the_reads_named_are_server_functions() {
        let api = [
            include_str!("../api/account.rs"),
            include_str!("../api/admin.rs"),
            include_str!("../api/api_keys.rs"),
            include_str!("../api/conversations.rs"),
            include_str!("../api/catalog.rs"),
            include_str!("../api/search.rs"),
            include_str!("../api/shares.rs"),
            include_str!("../api/turns.rs"),
            include_str!("../api/usage.rs"),
        ]
        .concat();
        for name in UNCOUNTED_CALLS {
            assert!(
                api.contains(&format!("endpoint = \"{name}\"")),
                "{name} is not a server function"
            );
        }
    }
}
