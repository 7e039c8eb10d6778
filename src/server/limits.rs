//! What one person may start: replies running at once, and turns per minute. Both are checked
//! when a turn is claimed, before anything is stored or sent, so a refusal costs nothing.

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
}

pub struct TurnLimits {
    max_running: usize,
    running: Arc<Mutex<HashMap<Owner, usize>>>,
    rate: DefaultKeyedRateLimiter<Owner>,
}

/// One running reply of an owner, counted until dropped (when the turn's task ends).
pub struct RunningSlot {
    owner: Owner,
    running: Arc<Mutex<HashMap<Owner, usize>>>,
}

impl Drop for RunningSlot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.owner);
            }
        }
    }
}

impl TurnLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        let per_minute = NonZeroU32::new(settings.turns_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            max_running: settings.running_per_user.max(1),
            running: Arc::default(),
            rate: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Admits one more turn of `owner`, or says why not and when to try again.
    pub fn admit(&self, owner: &Owner) -> Result<RunningSlot, LimitError> {
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let n = running.entry(owner.clone()).or_insert(0);
            if *n >= self.max_running {
                return Err(LimitError::TooManyRunning(*n));
            }
            // Counted before the rate check so two sends cannot both take the last slot; given
            // back below if the rate refuses.
            *n += 1;
        }
        let slot = RunningSlot {
            owner: owner.clone(),
            running: self.running.clone(),
        };
        if let Err(not_until) = self.rate.check_key(owner) {
            drop(slot);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(LimitError::TooFast(wait));
        }
        self.rate.retain_recent();
        Ok(slot)
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
        assert!(limits.running.lock().expect("lock").is_empty());
        assert!(limits.admit(&owner("b")).is_ok());
    }
}
