//! Sign-in throttles, keyed three ways. Per account and address (5 a minute), so that guessing
//! from one address cannot lock the owner out from another; per address (20 a minute), an IPv6
//! /64 counting as one address; and per account, failures only (60 an hour), which bounds a
//! guesser with many addresses. That last one never locks out a browser the account has signed
//! in from before (a known device): the rightful person keeps signing in while a guesser is
//! locked out, and an admin can see and clear a lockout. Names with no account are counted the
//! same way, so the lockout does not tell which names exist. Sign-ups are few per address a day.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::connections::address_key;
use super::db::{self, Db};
use crate::model::accounts::Lockout;

/// Sign-in attempts at one account from one address per minute (a burst of this many, then one
/// every 12 s).
const ATTEMPTS_PER_ACCOUNT_AND_ADDRESS: u32 = 5;
/// Failed sign-ins at one account, from browsers it never signed in from, per hour.
const FAILURES_PER_ACCOUNT_HOURLY: usize = FAILURES_HOURLY as usize;
/// Sign-in attempts per client address (an IPv6 /64) per minute.
const ATTEMPTS_PER_ADDRESS: u32 = 20;
/// Accounts created by sign-up per client address (an IPv6 /64) per day: each comes with its
/// own budget and storage quota, so one person must not make many.
const SIGN_UPS_PER_ADDRESS_DAILY: u32 = 3;
/// Names whose failures are remembered at once; past it, the one that failed longest ago is
/// forgotten first.
const MAX_TRACKED_NAMES: usize = 100_000;
const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// [`FAILURES_PER_ACCOUNT_HOURLY`] as the shared count compares it.
const FAILURES_HOURLY: u32 = 60;

/// Why an attempt must wait, and how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait(pub Duration);

pub struct SignInThrottle {
    by_account_and_address: DefaultKeyedRateLimiter<(String, Option<IpAddr>)>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    sign_ups: DefaultKeyedRateLimiter<IpAddr>,
    /// Recent failures per name (lower case), oldest first, at most the hourly limit. An
    /// attempt counts as a failure from the moment it is let through until it succeeds, so
    /// guesses sent at once cannot pass the limit together.
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        let n = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            by_account_and_address: RateLimiter::keyed(Quota::per_minute(n(
                ATTEMPTS_PER_ACCOUNT_AND_ADDRESS,
            ))),
            by_address: RateLimiter::keyed(Quota::per_minute(n(ATTEMPTS_PER_ADDRESS))),
            sign_ups: RateLimiter::keyed(
                Quota::with_period(Duration::from_secs(
                    24 * 3600 / u64::from(SIGN_UPS_PER_ADDRESS_DAILY),
                ))
                .map_or_else(
                    || Quota::per_hour(NonZeroU32::MIN),
                    |q| q.allow_burst(n(SIGN_UPS_PER_ADDRESS_DAILY)),
                ),
            ),
            failures: Mutex::default(),
        }
    }
}

fn account_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

impl SignInThrottle {
    /// Counts one attempt at `username` from `address`. `known_device`: the browser has signed
    /// in to this account before, so the account's lockout does not apply to it.
    pub fn attempt(
        &self,
        username: &str,
        address: Option<IpAddr>,
        known_device: bool,
    ) -> Result<(), Wait> {
        let now = DefaultClock::default().now();
        let address = address.map(address_key);
        if let Some(address) = address {
            self.by_address
                .check_key(&address)
                .map_err(|n| Wait(n.wait_time_from(now)))?;
        }
        let account = account_key(username);
        self.by_account_and_address
            .check_key(&(account.clone(), address))
            .map_err(|n| Wait(n.wait_time_from(now)))?;
        // Forget keys whose limits have recovered, so that guessing many names grows nothing.
        self.by_account_and_address.retain_recent();
        self.by_address.retain_recent();
        if known_device {
            return Ok(());
        }
        // Checked and counted under one lock: the attempt is a failure until it succeeds.
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.contains_key(&account) && failures.len() >= MAX_TRACKED_NAMES {
            forget_stalest(&mut failures);
        }
        let recent = failures.entry(account).or_default();
        forget_old(recent);
        if recent.len() >= FAILURES_PER_ACCOUNT_HOURLY {
            let oldest = recent.front().copied().unwrap_or_else(Instant::now);
            return Err(Wait(
                (oldest + HOUR).saturating_duration_since(Instant::now()),
            ));
        }
        recent.push_back(Instant::now());
        Ok(())
    }

    /// The attempt at `username` (from a browser not known to it) succeeded: it is no failure
    /// (see [`Self::attempt`]).
    pub fn succeeded(&self, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let account = account_key(username);
        if let Some(recent) = failures.get_mut(&account) {
            recent.pop_back();
            if recent.is_empty() {
                failures.remove(&account);
            }
        }
    }

    /// Counts a sign-up from `address`; `Err` says how long until another is allowed.
    pub fn sign_up(&self, address: Option<IpAddr>) -> Result<(), Wait> {
        let Some(address) = address.map(address_key) else {
            return Ok(());
        };
        let now = DefaultClock::default().now();
        let checked = self.sign_ups.check_key(&address);
        self.sign_ups.retain_recent();
        checked.map_err(|n| Wait(n.wait_time_from(now)))
    }

    /// Accounts (and names with none) with failed sign-ins in the last hour: the `most` with
    /// the most failures, first, and how many there are in all.
    pub fn lockouts(&self, most: usize) -> (Vec<Lockout>, usize) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Up to 100,000 names are tracked: only the shown ones are sorted and copied.
        let mut listed: Vec<(usize, &String, Instant)> = failures
            .iter_mut()
            .filter_map(|(name, recent)| {
                forget_old(recent);
                Some((recent.len(), name, *recent.front()?))
            })
            .collect();
        let total = listed.len();
        let first = |a: &(usize, &String, Instant), b: &(usize, &String, Instant)| {
            b.0.cmp(&a.0).then(a.1.cmp(b.1))
        };
        if most < listed.len() {
            listed.select_nth_unstable_by(most, first);
            listed.truncate(most);
        }
        listed.sort_by(first);
        let shown = listed
            .into_iter()
            .map(|(count, name, oldest)| Lockout {
                username: name.clone(),
                failures: u32::try_from(count).unwrap_or(u32::MAX),
                locked_for_secs: (count >= FAILURES_PER_ACCOUNT_HOURLY)
                    .then(|| (oldest + HOUR).saturating_duration_since(now).as_secs()),
            })
            .collect();
        (shown, total)
    }

    /// Forgets an account's failures (an admin lifting a lockout). Whether there were any.
    pub fn clear(&self, username: &str) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&account_key(username)).is_some()
    }
}

/// The same throttles counted in the database, so that they hold across replicas on Postgres
/// (`db::throttles`; nothing on SQLite, whose one process counts in memory). Each is asked
/// after this replica's own counts pass; if the database cannot answer, those still hold.
impl SignInThrottle {
    /// [`Self::attempt`], here and across replicas.
    pub async fn attempt_everywhere(
        &self,
        db: &Db,
        username: &str,
        address: Option<IpAddr>,
        known_device: bool,
    ) -> Result<(), Wait> {
        self.attempt(username, address, known_device)?;
        let account = account_key(username);
        let address = address.map(address_key);
        let checks = [
            address.map(|a| (format!("address:{a}"), MINUTE, ATTEMPTS_PER_ADDRESS)),
            Some((
                format!("account-address:{account} {address:?}"),
                MINUTE,
                ATTEMPTS_PER_ACCOUNT_AND_ADDRESS,
            )),
            (!known_device).then(|| (failures_key(&account), HOUR, FAILURES_HOURLY)),
        ];
        for (key, window, limit) in checks.into_iter().flatten() {
            match db::throttles::hit(db, &key, window, limit).await {
                Ok(None) => {}
                Ok(Some(wait)) => {
                    // Refused: not a failure of this attempt's, here either.
                    if !known_device {
                        self.succeeded(username);
                    }
                    return Err(Wait(wait));
                }
                Err(e) => tracing::warn!("could not count a sign-in across replicas: {e}"),
            }
        }
        Ok(())
    }

    /// [`Self::succeeded`], here and across replicas.
    pub async fn succeeded_everywhere(&self, db: &Db, username: &str) {
        self.succeeded(username);
        let key = failures_key(&account_key(username));
        if let Err(e) = db::throttles::forgive(db, &key).await {
            tracing::warn!("could not forgive a sign-in across replicas: {e}");
        }
    }

    /// [`Self::sign_up`], here and across replicas.
    pub async fn sign_up_everywhere(&self, db: &Db, address: Option<IpAddr>) -> Result<(), Wait> {
        self.sign_up(address)?;
        let Some(address) = address.map(address_key) else {
            return Ok(());
        };
        let key = format!("sign-ups:{address}");
        match db::throttles::hit(db, &key, DAY, SIGN_UPS_PER_ADDRESS_DAILY).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(Wait(wait)),
            Err(e) => {
                tracing::warn!("could not count a sign-up across replicas: {e}");
                Ok(())
            }
        }
    }

    /// [`Self::lockouts`]: on Postgres, as counted across replicas.
    pub async fn lockouts_everywhere(
        &self,
        db: &Db,
        most: usize,
    ) -> Result<(Vec<Lockout>, usize), db::DbError> {
        if db.engine() == db::Engine::Sqlite {
            return Ok(self.lockouts(most));
        }
        let counted = db::throttles::counted(db, FAILURES, HOUR).await?;
        let total = counted.len();
        let shown = counted
            .into_iter()
            .take(most)
            .map(|(username, failures, oldest_leaves_ms)| Lockout {
                username,
                failures,
                locked_for_secs: (failures >= FAILURES_HOURLY)
                    .then(|| Duration::from_millis(oldest_leaves_ms).as_secs()),
            })
            .collect();
        Ok((shown, total))
    }

    /// [`Self::clear`], here and across replicas.
    pub async fn clear_everywhere(&self, db: &Db, username: &str) -> Result<bool, db::DbError> {
        let here = self.clear(username);
        let everywhere = db::throttles::clear(db, &failures_key(&account_key(username))).await?;
        Ok(here || everywhere)
    }
}

/// The prefix of an account's failures' key in `db::throttles`.
const FAILURES: &str = "failures:";

fn failures_key(account: &str) -> String {
    format!("{FAILURES}{account}")
}

/// Forgets the name whose last failure is the oldest.
fn forget_stalest(failures: &mut HashMap<String, VecDeque<Instant>>) {
    let stalest = failures
        .iter()
        .min_by_key(|(_, recent)| recent.back().copied())
        .map(|(name, _)| name.clone());
    if let Some(name) = stalest {
        failures.remove(&name);
    }
}

fn forget_old(recent: &mut VecDeque<Instant>) {
    let now = Instant::now();
    while recent
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= HOUR)
    {
        recent.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_unknown_browsers_out_but_not_a_known_one_and_an_admin_clears_them() {
        let throttle = SignInThrottle::default();
        // Sixty failures from sixty addresses (each attempt counts until it succeeds).
        for i in 0..FAILURES_PER_ACCOUNT_HOURLY {
            let ip: IpAddr = format!("198.51.100.{}", i + 1).parse().expect("ip");
            assert!(throttle.attempt("Erin", Some(ip), false).is_ok());
        }
        // From a fresh address (the per-address limits are not what is tested here).
        let fresh: IpAddr = "192.0.2.1".parse().expect("ip");
        let Err(Wait(wait)) = throttle.attempt("erin", Some(fresh), false) else {
            panic!("an unknown browser is locked out");
        };
        assert!(wait > Duration::from_secs(3500) && wait <= HOUR, "{wait:?}");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(throttle.attempt("erin", Some(other), true).is_ok());
        let (lockouts, total) = throttle.lockouts(10);
        assert_eq!((lockouts.len(), total), (1, 1));
        assert_eq!(lockouts[0].username, "erin");
        assert_eq!(lockouts[0].failures, 60);
        assert!(lockouts[0].locked_for_secs.is_some());
        assert!(throttle.clear("ERIN"));
        let third: IpAddr = "192.0.2.3".parse().expect("ip");
        assert!(throttle.attempt("erin", Some(third), false).is_ok());
        throttle.succeeded("erin");
        assert_eq!(
            throttle.lockouts(10),
            (Vec::new(), 0),
            "a success is no failure"
        );
    }

    #[test]
    fn the_lockout_list_is_bounded_and_shows_the_most_failures_first() {
        let throttle = SignInThrottle::default();
        // A guesser spraying names: one failure each from many addresses, and three on one.
        for i in 0..60u32 {
            let ip: IpAddr = format!("198.18.{}.{}", i / 200, i % 200 + 1)
                .parse()
                .expect("ip");
            assert!(throttle
                .attempt(&format!("name{i}"), Some(ip), false)
                .is_ok());
        }
        for i in 0..2 {
            let ip: IpAddr = format!("198.19.0.{}", i + 1).parse().expect("ip");
            assert!(throttle.attempt("name42", Some(ip), false).is_ok());
        }
        let (shown, total) = throttle.lockouts(50);
        assert_eq!((shown.len(), total), (50, 60));
        assert_eq!(
            (shown[0].username.as_str(), shown[0].failures),
            ("name42", 3)
        );
    }

    #[test]
    fn names_with_no_account_lock_the_same_way_and_sign_ups_are_few_per_address() {
        let throttle = SignInThrottle::default();
        for i in 0..FAILURES_PER_ACCOUNT_HOURLY {
            let ip: IpAddr = format!("203.0.113.{}", i + 1).parse().expect("ip");
            assert!(throttle.attempt("nobody-here", Some(ip), false).is_ok());
        }
        let other: IpAddr = "192.0.2.9".parse().expect("ip");
        assert!(throttle.attempt("nobody-here", Some(other), false).is_err());
        let address: IpAddr = "2001:db8:5::1".parse().expect("ip");
        for _ in 0..SIGN_UPS_PER_ADDRESS_DAILY {
            assert!(throttle.sign_up(Some(address)).is_ok());
        }
        let same_64: IpAddr = "2001:db8:5::2".parse().expect("ip");
        let Err(Wait(wait)) = throttle.sign_up(Some(same_64)) else {
            panic!("a fourth sign-up from the same /64 in a day");
        };
        assert!(wait > Duration::from_secs(3600), "{wait:?}");
    }

    #[test]
    fn an_ipv6_64_counts_as_one_address() {
        let throttle = SignInThrottle::default();
        let mut refused = false;
        for i in 0..ATTEMPTS_PER_ADDRESS + 1 {
            // A new address inside the same /64, and a new name, every time.
            let ip: IpAddr = format!("2001:db8:0:1::{:x}", i + 1).parse().expect("ip");
            if throttle
                .attempt(&format!("name{i}"), Some(ip), false)
                .is_err()
            {
                refused = true;
            }
        }
        assert!(refused, "rotating inside a /64 gains nothing");
    }
}
